// Keeps the overview's "Recent activity" live over /ws/ (protocol: hello, event, resync, closed).
(function () {
  "use strict";
  var section = document.getElementById("activity");
  if (!section || !window.WebSocket) return;

  var rows = document.getElementById("activity-rows");
  var template = document.getElementById("activity-row-template");
  var empty = document.getElementById("activity-empty");
  var limit = parseInt(section.dataset.limit, 10) || 50;
  var seen = new Set();

  rows.querySelectorAll("tr[data-event-id]").forEach(function (tr) {
    seen.add(parseInt(tr.dataset.eventId, 10));
  });

  var timeFormat = new Intl.DateTimeFormat("en-CA", {
    timeZone: section.dataset.timeZone || "UTC",
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"
  });

  function formatTime(iso) {
    var parts = {};
    timeFormat.formatToParts(new Date(iso)).forEach(function (p) { parts[p.type] = p.value; });
    return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute + ":" + parts.second;
  }

  // Mirrors pulse_site.selectors.payload_summary so live rows read like rendered ones.
  function summary(payload) {
    var text;
    if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
      text = JSON.stringify(payload);
    } else {
      text = Object.keys(payload).map(function (key) {
        var value = payload[key];
        return key + ": " + (typeof value === "string" ? value : JSON.stringify(value));
      }).join(", ");
    }
    return text.length <= 120 ? text : text.slice(0, 119) + "…";
  }


  function addEvent(event) {
    if (seen.has(event.id)) return;
    seen.add(event.id);
    var tr = template.content.firstElementChild.cloneNode(true);
    var cells = tr.querySelectorAll("td");
    tr.dataset.eventId = event.id;
    var time = cells[0].querySelector("time");
    time.setAttribute("datetime", event.at);
    time.textContent = formatTime(event.at);
    cells[1].querySelector("code").textContent = event.kind;
    cells[2].textContent = event.subject;
    cells[3].textContent = summary(event.payload);
    // Replayed events arrive oldest first, so each new one goes on top.
    rows.insertBefore(tr, rows.firstElementChild);
    while (rows.children.length > limit) rows.removeChild(rows.lastElementChild);
    if (empty) empty.hidden = true;
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
        old.replaceWith(holder.firstElementChild);
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
      if (overview && event.kind !== "job.log" && event.kind !== "job.progress") refreshPulse();
    }
  });
})();
