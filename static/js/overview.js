// Keeps the overview's "Recent events" and its figures live over /ws/ (protocol: hello, event, resync, closed).
(function () {
  "use strict";
  var section = document.getElementById("activity");
  if (!section || !window.WebSocket) return;

  var rows = document.getElementById("activity-rows");
  var empty = document.getElementById("activity-empty");
  var limit = parseInt(section.dataset.limit, 10) || 50;
  var everything = section.dataset.everything === "true";
  var QUIET = { "job.progress": true, "job.log": true };

  // The rows are the server's (pulse/_activity_row.html): when events arrive, the rows after the
  // newest one shown are asked for (at most one request at a time, one more if events came
  // meanwhile), so a live row reads exactly like a rendered one.
  function newestShown() {
    var first = rows.querySelector("tr[data-event-id]");
    return first ? parseInt(first.dataset.eventId, 10) : 0;
  }
  var asking = false, again = false;
  function askForRows() {
    if (asking) { again = true; return; }
    asking = true;
    var url = section.dataset.rowsUrl + (section.dataset.rowsUrl.indexOf("?") < 0 ? "?" : "&") + "after=" + newestShown();
    fetch(url, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) {
        var holder = document.createElement("tbody");
        holder.innerHTML = html.trim();
        var fresh = Array.prototype.filter.call(holder.children, function (tr) {
          return !rows.querySelector('tr[data-event-id="' + tr.dataset.eventId + '"]');
        });
        for (var i = fresh.length - 1; i >= 0; i--) rows.insertBefore(fresh[i], rows.firstElementChild);
        while (rows.children.length > limit) rows.removeChild(rows.lastElementChild);
        if (empty && rows.children.length) empty.hidden = true;
      })
      .catch(function () {})
      .then(function () {
        asking = false;
        if (again) { again = false; askForRows(); }
      });
  }

  function addEvent(event) {
    if (!everything && QUIET[event.kind]) return;
    if (event.id <= newestShown()) return;
    askForRows();
  }

  // The counters, budget, failures and runs are one server-rendered fragment, re-fetched (at most
  // every 2 s) when a job, schedule or budget event arrives and every 30 s; the charts every minute.
  var overview = document.getElementById("overview");
  var pending = null;
  function refetch(id, url) {
    return fetch(url, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        var old = document.getElementById(id);
        if (!html || !old) return;
        var holder = document.createElement("div");
        holder.innerHTML = html.trim();
        PulseApp.replaceKeepingFocus(old, holder.firstElementChild);
        if (window.PulseApp) window.PulseApp.refreshTimes();
      });
  }
  function refreshPulse() {
    if (pending) return;
    pending = setTimeout(function () { pending = null; refetch("overview-pulse", overview.dataset.pulseUrl); }, 2000);
  }
  if (overview) {
    setInterval(refreshPulse, 30000);
    setInterval(function () { refetch("overview-charts", overview.dataset.chartsUrl); }, 60000);
  }

  PulseLive.follow({
    wsPath: section.dataset.wsPath,
    since: parseInt(section.dataset.since, 10) || 0,
    onEvent: function (event) {
      addEvent(event);
      if (overview && !QUIET[event.kind]) refreshPulse();
    }
  });
})();
