// "Apply to all matching" on the jobs list: posts batch after batch (the server does 200 at a
// time through the services) and shows the progress; at the end the summary stays and the list's
// rows and count are read again (what matches the filter has changed: cancelled jobs are no
// longer held ones).
(function () {
  "use strict";
  var form = document.getElementById("bulk-matching");
  if (!form || !window.fetch) return;
  var progress = document.getElementById("bulk-progress");
  var status = document.getElementById("bulk-status");
  // The count shown moves every batch (200 jobs); screen readers hear it at most every 10 s,
  // and the start and the end always.
  var announcer = document.getElementById("bulk-announce");
  var announcedAt = 0;
  function say(text, always) {
    status.textContent = text;
    if (!announcer || (!always && Date.now() - announcedAt < 10000)) return;
    announcer.textContent = text;
    announcedAt = Date.now();
  }
  var submit = document.getElementById("bulk-matching-submit");
  // Not form.action: the form's "action" select shadows that property.
  var url = form.getAttribute("action");

  // The list as the server draws it now: its rows, its empty note and the matching count.
  function refreshList() {
    return fetch(location.href, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var count = doc.getElementById("matching-count");
        document.getElementById("matching-count").textContent = count ? count.textContent : "0";
        // In place: the live list (jobs_list.js) holds on to these elements.
        var rows = document.getElementById("job-rows"), freshRows = doc.getElementById("job-rows");
        if (freshRows) rows.replaceChildren.apply(rows, Array.prototype.map.call(freshRows.children, document.adoptNode, document));
        var empty = document.getElementById("jobs-empty"), freshEmpty = doc.getElementById("jobs-empty");
        if (empty && freshEmpty) empty.hidden = freshEmpty.hidden;
      })
      .catch(function () { /* the rows still follow their jobs live */ });
  }

  // Not `disabled` while it runs: a disabled button loses the keyboard's focus to the page's top.
  function running(on) {
    if (on) submit.setAttribute("aria-disabled", "true"); else submit.removeAttribute("aria-disabled");
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    if (submit.getAttribute("aria-disabled") === "true") return;
    var action = form.elements.action;
    var label = action.options[action.selectedIndex].text;
    var count = document.getElementById("matching-count").textContent;
    if (!window.confirm(label + ": apply to all " + count + " matching jobs?")) return;
    var totals = { processed: 0, done: 0, refused: 0 };
    running(true);
    progress.hidden = false;
    say(label + ": applying to " + count + " jobs…", true);

    function batch(cursor) {
      var body = new FormData(form);
      body.set("cursor", cursor || "");
      fetch(url, { method: "POST", body: body, credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.json().then(function (data) { return { ok: response.ok, data: data }; }); })
        .then(function (result) {
          if (!result.ok) throw new Error((result.data.errors || ["The server refused the batch."]).join(" "));
          var data = result.data;
          totals.processed += data.processed; totals.done += data.done; totals.refused += data.refused;
          progress.value = Math.min(progress.max, totals.processed);
          say(totals.processed + " processed: " + totals.done + " done, " + totals.refused + " refused", false);
          if (data.cursor) { batch(data.cursor); return; }
          say("Finished: " + totals.done + " done, " + totals.refused + " refused (not in a state for this action).", true);
          running(false);
          refreshList().finally(function () { form.dataset.finished = "yes"; });
        })
        .catch(function (error) {
          say("Stopped: " + error.message, true);
          running(false);
        });
    }
    batch("");
  });
})();
