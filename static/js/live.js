// The team's live event stream (/ws/), one socket per page: connects, resumes after a drop from
// the last id the server said it had sent everything up to ("synced"), dropping the events it
// already has, and shows the state in #live-indicator. A page's own script calls
// PulseLive.follow; every other team page follows without a replay, so the queue banner (shown on
// every page) appears and goes away live.
// Protocol: {"type": "hello" | "event" | "synced" | "resync" | "closed", ...}; events carry a
// sequence id; close codes 4401 and 4403 are refusals, not retried. Resuming from the last id seen could skip one the server's catch-up had not yet
// re-sent (pulse_site/live/consumers.py).
(function () {
  "use strict";
  if (window.PulseLive) return;  // base.html loads it; a page that loads it again gets the same one

  var listeners = [];
  var following = false;
  var leaving = false;  // a form submitted or a link followed: this page is being replaced
  window.addEventListener("beforeunload", function () { leaving = true; });
  window.addEventListener("pageshow", function () { leaving = false; });  // back from the history cache

  function follow(options) {
    following = true;
    var indicator = document.getElementById("live-indicator");
    var notice = document.getElementById("live-notice");
    var team = document.body.dataset.liveTeam;
    // Every event up to `synced` has arrived (the page was rendered at options.since); `seen` holds
    // the ids above it that have, so a replay from `synced` passes each event on once.
    var synced = options.since;
    var seen = new Set();
    var attempts = 0;
    var stopped = false;

    function setState(state, label, reason) {
      document.body.dataset.live = state;  // on every page, with or without an indicator
      var why = reason && explain(reason);
      if (why && notice) {
        notice.textContent = why;
        notice.hidden = false;
      }
      if (!indicator) return;
      indicator.dataset.state = state;
      indicator.textContent = label;
    }

    function tell(data) {
      listeners.forEach(function (listener) { listener(data); });
    }

    function connect() {
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      var replay = synced !== null && synced !== undefined;
      // The team the page was drawn for: the server sends that team's events or refuses, never
      // another of the user's teams.
      var params = team ? ["team=" + encodeURIComponent(team)] : [];
      if (replay) params.push("since=" + synced);
      var query = params.length ? "?" + params.join("&") : "";
      var socket = new WebSocket(scheme + location.host + options.wsPath + query);
      socket.onmessage = function (message) {
        var data = JSON.parse(message.data);
        if (data.type === "hello") {
          data.reconnected = attempts > 0;
          attempts = 0;
          setState("live", "live");
          tell(data);
        } else if (data.type === "event") {
          if (replay) {
            if (seen.has(data.id)) return;
            seen.add(data.id);
          }
          options.onEvent(data);
          tell(data);
        } else if (data.type === "synced") {
          if (!replay || data.to <= synced) return;
          synced = data.to;
          seen.forEach(function (id) { if (id <= synced) seen.delete(id); });
        } else if (data.type === "resync") {
          // More was missed than the server replays: the page is re-rendered from the database.
          stopped = true;
          location.reload();
        } else if (data.type === "closed") {
          stopped = true;
          // This member's role changed: the page and its socket are opened again (same team) with
          // what the new role sees.
          if (data.reason === "role changed") {
            if (!leaving) location.reload();
            return;
          }
          // Anything else ends this page's access to its team. The page keeps what it shows (a
          // reload would show another team, or its 404) and says why. A team switched in another
          // tab included: the page's forms are refused then (409), and its redraws would fetch
          // the new team's rows into it. (The tab that switched is leaving already.)
          if (!leaving) setState("closed", "closed: " + (data.reason || "by the server"), data.reason);
        }
      };
      socket.onclose = function (closing) {
        if (stopped) return;
        if (closing.code === 4401 || closing.code === 4403) {
          // Refused (signed out, not in the team any more): another try would be refused again.
          stopped = true;
          if (closing.code === 4401) setState("closed", "closed: signed out", "signed out");
          else setState("closed", "closed: refused");
          return;
        }
        attempts += 1;
        // 1 s, 2 s, 4 s … up to 30 s, with jitter so a restarted server is not hit all at once.
        var delay = Math.min(30000, 1000 * Math.pow(2, attempts - 1)) * (0.75 + Math.random() * 0.5);
        setState("reconnecting", "reconnecting…");
        setTimeout(connect, delay);
      };
    }

    if (window.WebSocket) connect();
  }

  // The words for a socket's `closed` reason (pulse_site/live/services.py), naming the page's team.
  function explain(reason) {
    var name = document.body.dataset.liveTeamName || "this team";
    var lost = "You no longer have access to " + name + ".";
    var signIn = "Sign in again to follow " + name + " live.";
    return {
      "membership removed": lost,
      "not in the team": lost,
      "signed out": "You were signed out. " + signIn,
      "password changed": "Your password was changed. " + signIn,
      "team retired": name + " was retired: its history stays here, and nothing new runs in it to follow live.",
      "team switched": "This browser now shows another team (switched in another tab): this page still shows " +
        name + ", no longer live. Load it again to follow the team switched to."
    }[reason] || null;
  }

  function listen(listener) {
    listeners.push(listener);
  }

  // --- The banners of every team page (jobs/_queue_banner.html: the queue's pauses;
  // budgets/_alert_banner.html: the budget's alerts): each slot is redrawn by the server (its
  // data-url) when an event of one of its data-kinds arrives (a kind ending in "." is a prefix),
  // and after a reconnect (a socket without replay may have missed one).
  function followBanner(slot) {
    var kinds = (slot.dataset.kinds || "").split(" ").filter(Boolean);
    var inFlight = false;
    function redraw() {
      if (inFlight) return;
      inFlight = true;
      fetch(slot.dataset.url, { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (html === null) return;
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(slot.id);
          if (!fresh) return;
          PulseApp.redrawAnnouncing(slot, document.getElementById(slot.dataset.announce), function () {
            slot.replaceChildren.apply(slot, Array.prototype.slice.call(fresh.childNodes));
          });
        })
        .catch(function () { /* the next event or reconnect redraws it */ })
        .finally(function () { inFlight = false; });
    }
    function wanted(kind) {
      return kinds.some(function (k) { return k.slice(-1) === "." ? kind.indexOf(k) === 0 : kind === k; });
    }
    listen(function (data) {
      if ((data.type === "event" && wanted(data.kind)) || (data.type === "hello" && data.reconnected)) redraw();
    });
  }

  function followBanners() {
    var slots = document.querySelectorAll(".banner-slot[data-url]");
    if (!slots.length) return;
    slots.forEach(followBanner);
    if (!following) follow({ wsPath: slots[0].dataset.wsPath || "/ws/", since: null, onEvent: function () {} });
  }

  document.addEventListener("DOMContentLoaded", followBanners);
  // A list's "Load more" (#load-more) appends the rows of the next keyset page to `rows` (a tbody)
  // instead of leaving this page; a row already shown (by id, its `data-<key>` attribute) is not
  // added twice. Without JavaScript the link simply opens the next page.
  function loadMore(rows, key) {
    var more = document.getElementById("load-more");
    if (!more) return;
    var attribute = "data-" + key.replace(/[A-Z]/g, function (c) { return "-" + c.toLowerCase(); });
    more.addEventListener("click", function (click) {
      click.preventDefault();
      fetch(more.href, { credentials: "same-origin" })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          var first = null;
          doc.querySelectorAll("#" + rows.id + " > tr").forEach(function (tr) {
            var id = tr.dataset[key];
            if (rows.querySelector("tr[" + attribute + '="' + CSS.escape(id) + '"]')) return;
            rows.appendChild(document.adoptNode(tr));
            first = first || tr;
          });
          var next = doc.getElementById("load-more");
          if (next) { more.href = next.href; return; }
          // The last page: the button goes, and a keyboard user goes on from the first row it brought.
          var focused = document.activeElement === more;
          more.remove();
          var target = focused && first && first.querySelector("a[href], input, button");
          if (target) target.focus();
        });
    });
  }

  window.PulseLive = { follow: follow, listen: listen, loadMore: loadMore };
})();
