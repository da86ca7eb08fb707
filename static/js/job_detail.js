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

  function child(parent, attr, value, templateId, title) {
    var found = Array.prototype.find.call(parent.children, function (el) { return el.dataset[attr] === value; });
    if (found) return found;
    var el = document.getElementById(templateId).content.firstElementChild.cloneNode(true);
    el.dataset[attr] = value;
    var heading = el.querySelector("h3, h4");
    if (title) heading.textContent = title; else heading.remove();
    var emptyNote = document.getElementById("logs-empty");
    parent.insertBefore(el, emptyNote.parentNode === parent ? emptyNote : null);
    return el;
  }

  function appendLog(line) {
    if (groups.querySelector('[data-log-id="' + line.id + '"]')) return;
    var stage = child(groups, "stage", line.stage || "", "log-stage-template", line.stage || "Job");
    var task = child(stage, "task", line.task || "", "log-task-template", line.task);
    var li = document.getElementById("log-line-template").content.firstElementChild.cloneNode(true);
    li.dataset.logId = line.id;
    li.className = "log-line level-" + line.level;
    var time = li.querySelector("time");
    time.setAttribute("datetime", line.at);  // app.js shows it as the viewer's clock time
    li.querySelector(".level").textContent = line.level;
    li.querySelector(".message").textContent = line.message;
    task.querySelector("ol").appendChild(li);
    document.getElementById("logs-empty").hidden = true;
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
      .then(function (html) { if (html) holder.innerHTML = html; })
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
    else redrawStatus();
  }


  PulseLive.follow({
    wsPath: section.dataset.wsPath,
    since: parseInt(section.dataset.since, 10) || 0,
    onEvent: onEvent
  });
})();
