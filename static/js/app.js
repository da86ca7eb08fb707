// Every page: relative times (exact local time on hover), the theme toggle, keyboard shortcuts.
(function () {
  "use strict";

  // --- Times: <time datetime data-relative> reads "3 min ago" / "in 5 min"; every <time> gets
  // its exact time in the viewer's own zone as a tooltip.
  var exact = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
    timeZoneName: "short"
  });
  var units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  var relative = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;

  function describe(seconds) {
    var abs = Math.abs(seconds);
    if (abs < 5) return "just now";
    for (var i = 0; i < units.length; i++) {
      if (abs >= units[i][1] || units[i][0] === "second") {
        var n = Math.round(seconds / units[i][1]);
        return relative ? relative.format(n, units[i][0]) : n + " " + units[i][0] + "s";
      }
    }
  }

  function refreshTimes(root) {
    var now = Date.now();
    (root || document).querySelectorAll("time[datetime]").forEach(function (el) {
      var at = Date.parse(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      if (!el.dataset.exactSet) {
        el.title = exact.format(new Date(at));
        el.dataset.exactSet = "1";
      }
      if (el.hasAttribute("data-relative")) el.textContent = describe((at - now) / 1000);
    });
  }

  // --- Theme: "" follows the system; the choice is stored on the user by the server.
  function setupTheme() {
    var form = document.getElementById("theme-form");
    var button = document.getElementById("theme-toggle");
    if (!form || !button || !window.fetch) return;
    var next = { "": "dark", dark: "light", light: "" };
    var label = { "": "system", dark: "dark", light: "light" };
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var theme = button.value;
      var body = new FormData(form);
      body.set("theme", theme);
      fetch(form.action, { method: "POST", body: body, credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error("refused");
          document.documentElement.dataset.theme = theme;
          button.dataset.theme = theme;
          button.value = next[theme];
          button.textContent = "Theme: " + label[theme];
        })
        .catch(function () { form.submit(); });
    });
  }

  // --- Shortcuts: "/" search, "g" then a letter moves between pages, "?" lists them.
  function setupShortcuts() {
    var dialog = document.getElementById("shortcuts");
    var search = document.getElementById("site-search-q");
    var opener = document.getElementById("shortcuts-open");
    if (!dialog) return;
    var pages = { o: "overview", j: "jobs", s: "schedules", b: "budget", t: "team" };
    var pendingG = 0;
    function show() { if (dialog.showModal && !dialog.open) dialog.showModal(); }
    if (opener) opener.addEventListener("click", show);
    document.addEventListener("keydown", function (e) {
      var target = e.target;
      var typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
      if (typing || e.ctrlKey || e.metaKey || e.altKey || dialog.open) return;
      if (e.key === "/" && search) {
        e.preventDefault();
        search.focus();
        search.select();
      } else if (e.key === "?") {
        e.preventDefault();
        show();
      } else if (e.key === "g") {
        pendingG = Date.now();
      } else if (pendingG && Date.now() - pendingG < 1500 && pages[e.key]) {
        pendingG = 0;
        location.href = dialog.dataset[pages[e.key]];
      } else {
        pendingG = 0;
      }
    });
  }

  refreshTimes();
  setInterval(refreshTimes, 30000);
  setupTheme();
  setupShortcuts();
  window.PulseApp = { refreshTimes: refreshTimes };
})();
