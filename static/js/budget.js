// Keeps the budget page live: budget.* and job.* events re-render the usage fragment (the same
// partial the server rendered first). Countdowns tick in app.js, like every other time.
(function () {
  "use strict";
  var section = document.getElementById("budget-live-section");
  if (!section) return;
  var target = document.getElementById("budget-live");
  var pending = null;
  var inFlight = false;
  var again = false;

  function refresh() {
    pending = null;
    if (inFlight) { again = true; return; }
    inFlight = true;
    fetch(section.dataset.liveUrl, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html !== null) PulseApp.fillKeepingFocus(target, html);
      })
      .catch(function () { /* the next event or the reconnect replay refreshes again */ })
      .finally(function () {
        inFlight = false;
        if (again) { again = false; schedule(); }
      });
  }

  function schedule() {
    // Coalesce bursts (a worker settling many jobs) into one fetch.
    if (pending === null) pending = setTimeout(refresh, 250);
  }

  PulseLive.follow({
    wsPath: section.dataset.wsPath,
    since: parseInt(section.dataset.since, 10) || 0,
    onEvent: function (event) {
      // Progress moves no money and no slot: only budget events and job state changes redraw.
      if (event.kind.indexOf("budget.") === 0 || (event.kind.indexOf("job.") === 0 && event.kind !== "job.progress")) {
        schedule();
      }
    }
  });
})();
