// Keeps the overview's "Recent activity" live over /ws/ (protocol: hello, event, resync, closed).
(function () {
  "use strict";
  var section = document.getElementById("activity");
  if (!section || !window.WebSocket) return;

  var rows = document.getElementById("activity-rows");
  var template = document.getElementById("activity-row-template");
  var empty = document.getElementById("activity-empty");
  var indicator = document.getElementById("live-indicator");
  var limit = parseInt(section.dataset.limit, 10) || 50;
  var lastId = parseInt(section.dataset.since, 10) || 0;
  var seen = new Set();
  var attempts = 0;
  var stopped = false;

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

  function setState(state, label) {
    indicator.dataset.state = state;
    indicator.textContent = label;
  }

  function addEvent(event) {
    if (seen.has(event.id)) return;
    seen.add(event.id);
    lastId = Math.max(lastId, event.id);
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

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + section.dataset.wsPath + "?since=" + lastId);
    socket.onmessage = function (message) {
      var data = JSON.parse(message.data);
      if (data.type === "hello") {
        attempts = 0;
        setState("live", "live");
      } else if (data.type === "event") {
        addEvent(data);
      } else if (data.type === "resync") {
        stopped = true;
        location.reload();
      } else if (data.type === "closed") {
        stopped = true;
        setState("closed", "closed: " + (data.reason || "by the server"));
      }
    };
    socket.onclose = function () {
      if (stopped) return;
      attempts += 1;
      // 1 s, 2 s, 4 s … up to 30 s, with jitter so a restarted server is not hit all at once.
      var delay = Math.min(30000, 1000 * Math.pow(2, attempts - 1)) * (0.75 + Math.random() * 0.5);
      setState("reconnecting", "reconnecting…");
      setTimeout(connect, delay);
    };
  }

  connect();
})();
