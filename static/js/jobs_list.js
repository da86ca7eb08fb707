// Keeps the jobs list live over /ws/: progress moves in place, other job.* events redraw the row
// from the server's own partial (jobs/_row.html), and the team's new jobs appear on top.
(function () {
  "use strict";
  var section = document.getElementById("jobs");
  if (!section) return;

  var rows = document.getElementById("job-rows");
  var empty = document.getElementById("jobs-empty");

  function rowFor(id) {
    return rows.querySelector('tr[data-job-id="' + CSS.escape(id) + '"]');
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
  // Two redraws of one row may answer out of order: only the latest asked is applied. A new job
  // is inserted only if the server finds it matches the list's filter (204 otherwise).
  var asked = {};
  function redraw(id, insert) {
    var mine = asked[id] = (asked[id] || 0) + 1;
    // The list's filter goes along: a new job is inserted only if it matches, and a row whose job
    // no longer does comes back marked (data-unmatched) rather than silently wrong.
    var query = [section.dataset.filterQuery, insert ? "insert=1" : ""].filter(Boolean).join("&");
    var url = section.dataset.rowUrl.replace("JOB_ID", encodeURIComponent(id)) + (query ? "?" + query : "");
    fetch(url, { credentials: "same-origin" })
      .then(function (response) { return response.ok && response.status !== 204 ? response.text() : null; })
      .then(function (html) {
        if (!html || mine !== asked[id]) return;
        var holder = document.createElement("tbody");
        holder.innerHTML = html.trim();
        var fresh = holder.firstElementChild;
        var old = rowFor(id);
        if (old) {
          var box = old.querySelector('input[type="checkbox"]');
          var newBox = fresh.querySelector('input[type="checkbox"]');
          if (box && newBox) newBox.checked = box.checked;
          PulseApp.replaceKeepingFocus(old, fresh);
        } else if (insert) {
          rows.insertBefore(fresh, rows.firstElementChild);
          if (empty) empty.hidden = true;
        }
      });
  }

  function onEvent(event) {
    if (event.kind.indexOf("job.") !== 0 || event.kind === "job.log") return;
    var tr = rowFor(event.subject);
    if (event.kind === "job.progress") {
      if (tr) setProgress(tr, event.payload);
      return;
    }
    if (event.kind === "job.deleted") {
      // Gone for good: there is no row to redraw (fetching it would only 404).
      if (tr) tr.remove();
      return;
    }
    if (tr) {
      redraw(event.subject, false);
    } else if (event.kind === "job.created" && section.dataset.liveInserts === "yes") {
      redraw(event.subject, true);
    }
  }



  PulseLive.loadMore(rows, "jobId");

  PulseLive.follow({
    wsPath: section.dataset.wsPath,
    since: parseInt(section.dataset.since, 10) || 0,
    onEvent: onEvent
  });
})();
