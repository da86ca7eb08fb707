// Keeps a schedule's run history and next runs live: when one of its executions fires or ends, or
// the job of a shown run changes, both are redrawn from the server's partials
// (schedules/_executions.html, schedules/_next_runs.html).
(function () {
  "use strict";
  var section = document.getElementById("executions");
  if (!section) return;
  var rows = document.getElementById("execution-rows");
  var nextRuns = document.getElementById("next-runs");
  var scheduleId = section.dataset.scheduleId;
  var inFlight = false;
  var again = false;
  var loadedMore = false;
  function wireMore() {
    var more = document.getElementById("load-more");
    if (more) more.addEventListener("click", function () { loadedMore = true; });
    PulseLive.loadMore(rows, "executionId");
  }
  wireMore();

  // The first page redrawn: "Load more" goes on from its new last row (X-Next-Url), appears once
  // new runs pushed rows off it, and goes when there is nothing further.
  function setMore(url) {
    var more = document.getElementById("load-more");
    if (!url) {
      if (more) more.parentNode.remove();
      return;
    }
    if (more) {
      more.href = url;
      return;
    }
    var p = document.createElement("p");
    var link = document.createElement("a");
    link.className = "button";
    link.id = "load-more";
    link.href = url;
    link.textContent = "Load more";
    p.appendChild(link);
    rows.closest(".table-wrap").after(p);
    wireMore();
  }

  // One redraw at a time, and one more after it when an event came meanwhile (dropping it left
  // a run "running" that had ended).
  function redraw() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    function fill(url, element) {
      var next = null;
      return fetch(url, { credentials: "same-origin" })
        .then(function (response) {
          next = response.headers.get("X-Next-Url");
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html === null) return;
          PulseApp.fillKeepingFocus(element, html);
          if (element === rows && next !== null) setMore(next);
        });
    }
    // A later page, or rows loaded below the first page, stay as they are: only the next runs move.
    var liveRows = section.dataset.liveRows === "yes" && !loadedMore;
    Promise.all([liveRows ? fill(section.dataset.rowsUrl, rows) : null, fill(nextRuns.dataset.url, nextRuns)])
      .catch(function () { /* the next event redraws */ })
      .finally(function () {
        inFlight = false;
        if (again) { again = false; redraw(); }
      });
  }

  function showsJob(jobId) {
    return !!rows.querySelector('tr[data-job-id="' + CSS.escape(jobId) + '"]');
  }

  // The page was rendered with everything up to `since`; an older event replayed or relayed late
  // is already shown (and must not reload the page).
  var since = parseInt(section.dataset.since, 10) || 0;

  function onEvent(event) {
    if (event.id <= since) return;
    if (event.kind.indexOf("execution.") === 0 && event.payload.schedule === scheduleId) {
      redraw();
    } else if (event.kind.indexOf("job.") === 0 && event.kind !== "job.progress" && event.kind !== "job.log" &&
               showsJob(event.subject)) {
      redraw();
    } else if ((event.kind === "schedule.changed" || event.kind === "schedule.broken") && event.subject === scheduleId) {
      location.reload();
    } else if (event.kind === "schedule.deleted" && event.subject === scheduleId) {
      location.assign("/schedules/");
    }
  }

  PulseLive.follow({ wsPath: section.dataset.wsPath, since: since, onEvent: onEvent });
})();
