// The new-job form's live preview: as the fields change, ask the server what the job would cost
// and whether it would start now, be held (why, until when) or be refused, and show its answer
// (server-rendered, jobs/_submit_preview.html) above the Submit button.
(function () {
  "use strict";
  var form = document.getElementById("submit-form");
  var preview = document.getElementById("submit-preview");
  var announcer = document.getElementById("submit-preview-announce");
  if (!form || !preview) return;
  var timer = null;
  var asked = 0;

  function ask() {
    var mine = ++asked;
    var query = new URLSearchParams(new FormData(form));
    query.delete("csrfmiddlewaretoken");
    fetch(form.dataset.previewUrl + "?" + query.toString(), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) {
        if (mine !== asked) return;  // an older answer never overwrites a newer one
        PulseApp.redrawAnnouncing(preview, announcer, function () { preview.innerHTML = html; });
        PulseApp.refreshTimes(preview);
      });
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(ask, 250);
  }

  form.addEventListener("input", soon);
  form.addEventListener("change", soon);
  ask();
})();
