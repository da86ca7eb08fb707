// The jobs page's daemons panel (templates/jobs/_daemons.html): re-rendered by the server when an
// event of a daemon's job arrives (its payload carries "daemon"), at most once a second; the
// panel appears above the jobs list when the first daemon starts and goes when the last ends.
(function () {
  "use strict";
  var jobs = document.getElementById("jobs");
  if (!jobs || !window.PulseLive || !PulseLive.listen) return;
  var url = jobs.dataset.daemonsUrl || "/jobs/daemons/";
  var pending = null;

  function redraw() {
    pending = null;
    fetch(url, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("daemons");
        var old = document.getElementById("daemons");
        if (fresh) fresh = document.adoptNode(fresh);
        if (old && fresh) PulseApp.replaceKeepingFocus(old, fresh);
        else if (old) old.remove();
        else if (fresh) jobs.parentNode.insertBefore(fresh, jobs);
        if (window.PulseApp) window.PulseApp.refreshTimes();
      })
      .catch(function () { /* the next daemon event redraws it */ });
  }

  PulseLive.listen(function (data) {
    var daemonEvent = data.type === "event" && data.kind.indexOf("job.") === 0 && data.kind !== "job.log" &&
      data.kind !== "job.progress" && data.payload && data.payload.daemon;
    if ((daemonEvent || (data.type === "hello" && data.reconnected)) && !pending) pending = setTimeout(redraw, 1000);
  });
})();
