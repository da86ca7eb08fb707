// Keeps the jobs list live over /ws/: progress moves in place, other job.* events redraw the row
// from the server's own partial (jobs/_row.html), and the team's new jobs appear on top.
(function () {
  "use strict";
  var section = document.getElementById("jobs");
  if (!section) return;

  var rows = document.getElementById("job-rows");
  var empty = document.getElementById("jobs-empty");
  var indicator = document.getElementById("live-indicator");
  var lastId = parseInt(section.dataset.since, 10) || 0;
  var attempts = 0;
  var stopped = false;

  function rowFor(id) {
    return rows.querySelector('tr[data-job-id="' + CSS.escape(id) + '"]');
  }

  function matchesFilters(job) {
    var d = section.dataset;
    return (!d.filterStatus || d.filterStatus === job.status) &&
      (!d.filterHandler || d.filterHandler === job.handler) &&
      (!d.filterSource || d.filterSource === job.source);
  }

  function setProgress(tr, progress) {
    var bar = tr.querySelector('[data-field="progress"]');
    var text = tr.querySelector('[data-field="progress-text"]');
    if (!progress.total) return;
    bar.max = progress.total;
    bar.value = progress.current;
    text.textContent = progress.current + "/" + progress.total;
  }

  // Status, cost and hold reason are redrawn by the server so a live row never drifts from a
  // rendered one; the checkbox is carried over so a redraw does not drop a selection.
  function redraw(id, insert) {
    fetch(section.dataset.rowUrl.replace("JOB_ID", encodeURIComponent(id)), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) return;
        var holder = document.createElement("tbody");
        holder.innerHTML = html.trim();
        var fresh = holder.firstElementChild;
        var old = rowFor(id);
        if (old) {
          var box = old.querySelector('input[type="checkbox"]');
          var newBox = fresh.querySelector('input[type="checkbox"]');
          if (box && newBox) newBox.checked = box.checked;
          old.replaceWith(fresh);
        } else if (insert) {
          rows.insertBefore(fresh, rows.firstElementChild);
          if (empty) empty.hidden = true;
        }
      });
  }

  function onEvent(event) {
    lastId = Math.max(lastId, event.id);
    if (event.kind.indexOf("job.") !== 0 || event.kind === "job.log") return;
    var tr = rowFor(event.subject);
    if (event.kind === "job.progress") {
      if (tr) setProgress(tr, event.payload);
      return;
    }
    if (tr) {
      redraw(event.subject, false);
    } else if (event.kind === "job.created" && section.dataset.liveInserts === "yes" && matchesFilters(event.payload)) {
      redraw(event.subject, true);
    }
  }

  function setState(state, label) {
    indicator.dataset.state = state;
    indicator.textContent = label;
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
        onEvent(data);
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
      var delay = Math.min(30000, 1000 * Math.pow(2, attempts - 1)) * (0.75 + Math.random() * 0.5);
      setState("reconnecting", "reconnecting…");
      setTimeout(connect, delay);
    };
  }

  // "Load more" appends the next keyset page instead of leaving this one.
  var more = document.getElementById("load-more");
  if (more) {
    more.addEventListener("click", function (click) {
      click.preventDefault();
      fetch(more.href, { credentials: "same-origin" })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          doc.querySelectorAll("#job-rows > tr").forEach(function (tr) {
            if (!rowFor(tr.dataset.jobId)) rows.appendChild(document.adoptNode(tr));
          });
          var next = doc.getElementById("load-more");
          if (next) more.href = next.href; else more.remove();
        });
    });
  }

  if (window.WebSocket) connect();
})();
