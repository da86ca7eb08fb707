// The team's live event stream (/ws/), shared by every live page: connects, resumes after a drop
// from the last event id it saw, and shows the state in #live-indicator.
// Protocol: {"type": "hello" | "event" | "resync" | "closed", ...}; events carry a sequence id.
(function () {
  "use strict";

  function follow(options) {
    var indicator = document.getElementById("live-indicator");
    var lastId = options.since || 0;
    var attempts = 0;
    var stopped = false;

    function setState(state, label) {
      if (!indicator) return;
      indicator.dataset.state = state;
      indicator.textContent = label;
    }

    function connect() {
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      var socket = new WebSocket(scheme + location.host + options.wsPath + "?since=" + lastId);
      socket.onmessage = function (message) {
        var data = JSON.parse(message.data);
        if (data.type === "hello") {
          attempts = 0;
          setState("live", "live");
        } else if (data.type === "event") {
          lastId = Math.max(lastId, data.id);
          options.onEvent(data);
        } else if (data.type === "resync") {
          // More was missed than the server replays: the page is re-rendered from the database.
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

    if (window.WebSocket) connect();
  }

  window.PulseLive = { follow: follow };
})();
