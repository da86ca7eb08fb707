// Every page: relative times (exact local time on hover), the theme toggle, keyboard shortcuts.
(function () {
  "use strict";

  // --- Times, one mechanism for every page and every fragment drawn live:
  //   <time datetime data-relative>  reads "3 min ago" / "in 2 hours" (refreshed every 15 s);
  //   <time datetime data-clock>     reads the local clock time, 14:03:07 (log lines);
  //   <time datetime data-countdown> reads "2h 5m" / "45s" until then (refreshed every second);
  //   <time datetime data-elapsed>   reads how long since then, "2 h 5 min" (an uptime);
  // and every <time datetime> gets its exact time in the viewer's own zone as a tooltip. The
  // server renders the exact UTC time, so the page reads right without the script.
  var exact = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
    timeZoneName: "short"
  });
  var clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  var units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  var relative = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;

  // Whole days between the viewer's calendar days of two instants: 02:30 the day after tomorrow
  // is "in 2 days", not "tomorrow" (35 hours rounded to one day).
  function calendarDays(at, now) {
    var a = new Date(at), b = new Date(now);
    return Math.round((new Date(a.getFullYear(), a.getMonth(), a.getDate()) -
                       new Date(b.getFullYear(), b.getMonth(), b.getDate())) / 86400000);
  }

  function describe(at, now) {
    var seconds = (at - now) / 1000;
    var abs = Math.abs(seconds);
    if (abs < 5) return "just now";
    if (abs >= 86400) {
      var days = calendarDays(at, now);
      return relative ? relative.format(days, "day") : Math.abs(days) + " days" + (days < 0 ? " ago" : "");
    }
    for (var i = 0; i < units.length; i++) {
      if (abs >= units[i][1] || units[i][0] === "second") {
        var n = Math.round(seconds / units[i][1]);
        return relative ? relative.format(n, units[i][0]) : n + " " + units[i][0] + "s";
      }
    }
  }

  function countdown(seconds) {
    if (seconds <= 0) return "now";
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600);
    var m = Math.floor(seconds % 3600 / 60), s = Math.floor(seconds % 60);
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + s + "s";
    return s + "s";
  }

  // The same words as the server's `duration` filter (pulse_tags.duration).
  function elapsed(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return s % 60 ? m + " min " + (s % 60) + " s" : m + " min";
    var h = Math.floor(m / 60);
    if (h < 24) return m % 60 ? h + " h " + (m % 60) + " min" : h + " h";
    var d = Math.floor(h / 24);
    return h % 24 ? d + " d " + (h % 24) + " h" : d + " d";
  }

  function render(el, now) {
    var at = Date.parse(el.getAttribute("datetime"));
    if (isNaN(at)) return;
    var title = exact.format(new Date(at));
    if (el.title !== title) el.title = title;
    var text = null;
    if (el.hasAttribute("data-countdown")) text = countdown((at - now) / 1000);
    else if (el.hasAttribute("data-relative")) text = describe(at, now);
    else if (el.hasAttribute("data-clock")) text = clock.format(new Date(at));
    else if (el.hasAttribute("data-elapsed")) text = elapsed((now - at) / 1000);
    if (text !== null && el.textContent !== text) el.textContent = text;
  }

  function refreshTimes(root, selector) {
    var now = Date.now();
    var scope = root || document;
    var sel = selector || "time[datetime]";
    if (scope.matches && scope.matches(sel)) render(scope, now);
    if (scope.querySelectorAll) scope.querySelectorAll(sel).forEach(function (el) { render(el, now); });
  }

  // Fragments that live pages insert (rows, status blocks, log lines) read the same way at once.
  function watchInsertions() {
    if (!window.MutationObserver) return;
    var relabel = null;
    new MutationObserver(function (records) {
      records.forEach(function (record) {
        record.addedNodes.forEach(function (node) { if (node.nodeType === 1) refreshTimes(node); });
      });
      if (relabel === null) relabel = setTimeout(function () { relabel = null; labelScrollers(); }, 200);
    }).observe(document.body, { childList: true, subtree: true });
  }

  // --- Tables wider than their box scroll sideways: such a box takes focus (so the keyboard
  // scrolls it) and is named after its section; boxes that fit are left out of the tab order.
  function labelScrollers() {
    document.querySelectorAll(".table-wrap").forEach(function (box) {
      if (box.scrollWidth > box.clientWidth + 1) {
        if (box.getAttribute("tabindex") === "0") return;
        var section = box.closest("section");
        var heading = section && section.querySelector("h2, h3");
        box.setAttribute("tabindex", "0");
        box.setAttribute("role", "region");
        box.setAttribute("aria-label", (heading && heading.firstChild ? heading.firstChild.textContent.trim() : "Table") + " (scrolls sideways)");
      } else if (box.getAttribute("tabindex") === "0") {
        box.removeAttribute("tabindex");
        box.removeAttribute("role");
        box.removeAttribute("aria-label");
      }
    });
  }

  // --- A live redraw replaces server-rendered markup: the keyboard's place goes with it (the
  // element of the same id, else the one at the same place in the tab order), or a keyboard user
  // resting on a row, a link or a figure is thrown back to the top of the page each time it changes.
  var FOCUSABLE = "a[href], button, input, select, textarea, summary, [tabindex]";
  function focusPlace(scope) {
    var active = document.activeElement;
    if (!active || active === document.body || !scope.contains(active)) return null;
    return { id: active.id, index: Array.prototype.indexOf.call(scope.querySelectorAll(FOCUSABLE), active) };
  }
  function restoreFocus(scope, place) {
    if (!place) return;
    var back = (place.id && document.getElementById(place.id)) || scope.querySelectorAll(FOCUSABLE)[place.index];
    if (back && scope.contains(back)) back.focus();
  }
  function replaceKeepingFocus(old, fresh) {
    var place = focusPlace(old);
    old.replaceWith(fresh);
    restoreFocus(fresh, place);
  }
  function fillKeepingFocus(element, html) {
    var place = focusPlace(element);
    element.innerHTML = html;
    restoreFocus(element, place);
  }

  // --- A redrawn block that holds times is no live region (each rewording of "1 minute ago"
  // would be read out): a hidden role=status line beside it says its words once when what it
  // says changed; a time counts as its instant, so a redraw of the same says nothing.
  function words(node) {
    var copy = node.cloneNode(true);
    copy.querySelectorAll("time[datetime]").forEach(function (t) { t.textContent = t.getAttribute("datetime"); });
    return copy.textContent.replace(/\s+/g, " ").trim();
  }
  function redrawAnnouncing(block, announcer, redraw) {
    var before = words(block);
    redraw();
    if (announcer && words(block) !== before) announcer.textContent = block.textContent.replace(/\s+/g, " ").trim();
  }

  // --- A form with data-confirm="…" (remove, revoke, delete) asks before it is sent.
  function setupConfirms() {
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
    }, true);
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
          // The button's words change in place, which screen readers do not read out.
          var announcer = document.getElementById("theme-announce");
          if (announcer) announcer.textContent = "Theme: " + label[theme];
        })
        .catch(function () { form.submit(); });
    });
  }

  // --- The header's menu on a narrow screen (pulse.css folds it below 768 px): the button opens
  // and closes it, Escape inside closes it and gives the button the focus back. Returns a function
  // that opens it (for "/"), or null on a page without one.
  function setupMenu() {
    var button = document.getElementById("menu-toggle");
    var menu = button && document.getElementById(button.getAttribute("aria-controls"));
    if (!menu) return null;
    var header = button.parentElement;
    function isOpen() { return button.getAttribute("aria-expanded") === "true" && !!button.offsetParent; }
    function setOpen(open) {
      // The open menu lies over the page (pulse.css) and ends at the screen's bottom edge.
      if (open) header.style.setProperty("--menu-top", header.offsetHeight + "px");
      button.setAttribute("aria-expanded", open ? "true" : "false");
    }
    button.hidden = false;
    button.addEventListener("click", function () { setOpen(button.getAttribute("aria-expanded") !== "true"); });
    header.addEventListener("keydown", function (e) {
      if (e.key !== "Escape" || !isOpen()) return;
      if (e.target !== button && !menu.contains(e.target)) return;
      setOpen(false);
      button.focus();
    });
    // It covers the page, so a tap on the page or Tab onto it closes it first.
    document.addEventListener("click", function (e) {
      if (isOpen() && e.target !== button && !menu.contains(e.target)) setOpen(false);
    });
    header.addEventListener("focusout", function (e) {
      var to = e.relatedTarget;
      if (isOpen() && to && to !== button && !menu.contains(to)) setOpen(false);
    });
    return function () { setOpen(true); };
  }

  // --- Shortcuts: "/" search, "g" then a letter moves between pages, "?" lists them.
  function setupShortcuts(openMenu) {
    var dialog = document.getElementById("shortcuts");
    var search = document.getElementById("site-search-q");
    var opener = document.getElementById("shortcuts-open");
    if (!dialog) return;
    var pages = { o: "overview", j: "jobs", h: "handlers", s: "schedules", b: "budget", t: "team" };
    var pendingG = 0;
    function show() { if (dialog.showModal && !dialog.open) dialog.showModal(); }
    if (opener) opener.addEventListener("click", show);
    document.addEventListener("keydown", function (e) {
      var target = e.target;
      var typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
      if (typing || e.ctrlKey || e.metaKey || e.altKey || dialog.open) return;
      if (e.key === "/" && search) {
        e.preventDefault();
        // On a phone the search is in the folded menu: a hidden field takes no focus.
        if (!search.getClientRects().length && openMenu) openMenu();
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
  watchInsertions();
  labelScrollers();
  window.addEventListener("resize", labelScrollers);
  setInterval(function () { refreshTimes(document, "time[data-relative], time[data-elapsed]"); }, 15000);
  setInterval(function () { refreshTimes(document, "time[data-countdown]"); }, 1000);
  setupConfirms();
  setupTheme();
  setupShortcuts(setupMenu());
  window.PulseApp = { refreshTimes: refreshTimes, replaceKeepingFocus: replaceKeepingFocus,
                     fillKeepingFocus: fillKeepingFocus,
                     redrawAnnouncing: redrawAnnouncing };
})();
