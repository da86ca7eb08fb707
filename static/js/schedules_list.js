// Keeps the schedules list live over /ws/: a schedule or execution event redraws that schedule's
// row from the server's own partial (schedules/_row.html), so a live row never drifts.
(function () {
  "use strict";
  var section = document.getElementById("schedules");
  if (!section) return;
  var rows = document.getElementById("schedule-rows");

  // Two redraws of one row may answer out of order: only the latest asked is applied.
  var asked = {};
  function redraw(id) {
    if (!rows.querySelector('tr[data-schedule-id="' + CSS.escape(id) + '"]')) return;
    var mine = asked[id] = (asked[id] || 0) + 1;
    fetch(section.dataset.rowUrl.replace("SCHEDULE_ID", encodeURIComponent(id)), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        var old = rows.querySelector('tr[data-schedule-id="' + CSS.escape(id) + '"]');
        if (!html || !old || mine !== asked[id]) return;
        var holder = document.createElement("tbody");
        holder.innerHTML = html.trim();
        PulseApp.replaceKeepingFocus(old, holder.firstElementChild);
      });
  }

  // The page was rendered with everything up to `since`; an older event replayed or relayed late
  // is already shown (and must not reload the page).
  var since = parseInt(section.dataset.since, 10) || 0;

  function onEvent(event) {
    if (event.id <= since) return;
    if (event.kind.indexOf("schedule.") === 0) {
      if (event.kind === "schedule.deleted") {
        var gone = rows.querySelector('tr[data-schedule-id="' + CSS.escape(event.subject) + '"]');
        if (gone) gone.remove();
      } else {
        redraw(event.subject);
      }
    } else if (event.kind.indexOf("execution.") === 0) {
      redraw(event.payload.schedule);
    } else if (event.kind.indexOf("job.") === 0 && event.kind !== "job.progress" && event.kind !== "job.log" &&
               event.payload.source === "schedule" && event.payload.origin) {
      // A run staged ahead of its slot starts (or is held) at the slot: it moves from the
      // row's next run to its last run.
      redraw(event.payload.origin);
    }
  }

  PulseLive.loadMore(rows, "scheduleId");

  PulseLive.follow({ wsPath: section.dataset.wsPath, since: since, onEvent: onEvent });
})();
