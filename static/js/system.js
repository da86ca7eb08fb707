// The system page (staff): its figures are one server-rendered fragment, re-fetched every 5 s.
(function () {
  "use strict";
  var holder = document.getElementById("system");
  if (!holder) return;
  function refresh() {
    fetch(holder.dataset.statusUrl, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        var old = document.getElementById("system-status");
        if (!html || !old) return;
        var box = document.createElement("div");
        box.innerHTML = html.trim();
        old.replaceWith(box.firstElementChild);
        if (window.PulseApp) window.PulseApp.refreshTimes();
      });
  }
  setInterval(refresh, 5000);
})();
