// Keeps one job's page live over /ws/: progress moves in place, log lines are appended under their
// stage and task, and any other change of this job redraws the status block from jobs/_status.html.
(function () {
  "use strict";
  var section = document.getElementById("job");
  if (!section || !window.WebSocket) return;

  var jobId = section.dataset.jobId;
  var holder = section.querySelector(".module-body");
  var groups = document.getElementById("log-groups");

  function setProgress(progress) {
    if (!progress.total) return;
    var bar = document.getElementById("job-progress");
    bar.max = progress.total;
    bar.value = progress.current;
    document.getElementById("job-progress-text").textContent = progress.current + "/" + progress.total;
    document.getElementById("job-progress-message").textContent = progress.message || "";
  }

  function insert(parent, el) {
    var emptyNote = document.getElementById("logs-empty");
    parent.insertBefore(el, emptyNote.parentNode === parent ? emptyNote : null);
  }

  // A stage's lines of one attempt: a retry's stages are its own ("step-1 · attempt 2"), as the
  // server groups them (jobs.views._log_groups).
  function stageGroup(stageName, attempt) {
    var found = Array.prototype.find.call(groups.children, function (el) {
      return el.dataset.stage === stageName && el.dataset.attempt === attempt;
    });
    if (found) return found;
    var el = document.getElementById("log-stage-template").content.firstElementChild.cloneNode(true);
    el.dataset.stage = stageName;
    el.dataset.attempt = attempt;
    el.querySelector("h3").textContent = (stageName || "Job") + (attempt !== "1" ? " · attempt " + attempt : "");
    insert(groups, el);
    return el;
  }

  function taskGroup(stage, taskName) {
    var found = Array.prototype.find.call(stage.children, function (el) { return el.dataset.task === taskName; });
    if (found) return found;
    var el = document.getElementById("log-task-template").content.firstElementChild.cloneNode(true);
    el.dataset.task = taskName;
    var heading = el.querySelector("h4");
    if (taskName) heading.textContent = taskName; else heading.remove();
    stage.appendChild(el);
    return el;
  }

  function appendLog(line) {
    if (groups.querySelector('[data-log-id="' + line.id + '"]')) return;
    var stage = stageGroup(line.stage || "", String(Math.max(1, line.attempt || 1)));
    var task = taskGroup(stage, line.task || "");
    var li = document.getElementById("log-line-template").content.firstElementChild.cloneNode(true);
    li.dataset.logId = line.id;
    li.className = "log-line level-" + line.level;
    var time = li.querySelector("time");
    time.setAttribute("datetime", line.at);  // app.js shows it as the viewer's clock time
    li.querySelector(".level").textContent = line.level;
    li.querySelector(".message").textContent = line.message;
    // In id order: a line read back (below) may be older than one the socket brought first.
    var list = task.querySelector("ol");
    var after = Array.prototype.find.call(list.children, function (el) { return Number(el.dataset.logId) > line.id; });
    list.insertBefore(li, after || null);
    document.getElementById("logs-empty").hidden = true;
  }

  // Pulse's own lines (an attempt started, how it ended) are written with the job's change, not
  // sent one by one: after each change the lines newer than the newest shown are read back.
  var logsSection = document.getElementById("logs");
  var readingLogs = false;
  var readAgain = false;
  function readNewLogs() {
    if (logsSection.dataset.truncated === "yes") return;  // the API pages through the rest
    if (readingLogs) { readAgain = true; return; }
    readingLogs = true;
    var newest = 0;
    groups.querySelectorAll("[data-log-id]").forEach(function (el) {
      newest = Math.max(newest, Number(el.dataset.logId) || 0);
    });
    fetch(logsSection.dataset.logsUrl + "?after=" + newest, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : []; })
      .then(function (lines) {
        lines.forEach(function (line) { line.at = line.created_at; appendLog(line); });
      })
      .catch(function () { /* the next change reads them */ })
      .finally(function () {
        readingLogs = false;
        if (readAgain) { readAgain = false; readNewLogs(); }
      });
  }

  // The block is replaced whole: the control that had the keyboard's focus gets it back (or the
  // first action left, when it went), and only a changed status is announced.
  var announcer = document.getElementById("job-announce");
  function swapStatus(html) {
    var focused = holder.contains(document.activeElement) ? document.activeElement.id : "";
    var before = document.getElementById("job-status").dataset.status;
    holder.innerHTML = html;
    var badge = document.getElementById("status-badge");
    if (document.getElementById("job-status").dataset.status !== before) {
      announcer.textContent = "Status: " + badge.textContent.trim();
    }
    if (!focused) return;
    var back = document.getElementById(focused) || holder.querySelector(".job-actions button, .job-actions a");
    if (back) back.focus();
  }

  // One redraw at a time, and one more after it when an event came meanwhile: two fetches in
  // flight could answer out of order and leave the older state ("Running") on the page.
  var inFlight = false;
  var again = false;
  function redrawStatus() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    fetch(section.dataset.statusUrl, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) { if (html) swapStatus(html); })
      .catch(function () { /* the next event redraws */ })
      .finally(function () {
        inFlight = false;
        if (again) { again = false; redrawStatus(); }
        pollWhileWaiting();
      });
  }

  // A job in the backlog moves up as the team's other jobs start, and this socket is sent only
  // this job's events: while it says where it waits, its place is read again every few seconds.
  var WAITING_POLL_MS = 5000;
  var waitingTimer = null;
  function pollWhileWaiting() {
    if (waitingTimer || !document.getElementById("job-waiting")) return;
    waitingTimer = setTimeout(function () { waitingTimer = null; redrawStatus(); }, WAITING_POLL_MS);
  }
  pollWhileWaiting();

  function onEvent(event) {
    if (event.subject !== jobId || event.kind.indexOf("job.") !== 0) return;
    if (event.kind === "job.progress") setProgress(event.payload);
    else if (event.kind === "job.log") appendLog(event.payload);
    else { redrawStatus(); readNewLogs(); }
  }


  PulseLive.follow({
    wsPath: section.dataset.wsPath,
    since: parseInt(section.dataset.since, 10) || 0,
    onEvent: onEvent
  });
})();
