// The schedule form's live preview: as the cron expression or zone changes, ask the server for
// the description and next five runs (or the field errors) and show them under the zone.
(function () {
  "use strict";
  var form = document.getElementById("schedule-form");
  if (!form) return;
  var cron = form.querySelector('[name="cron"]');
  var zone = form.querySelector('[name="time_zone"]');
  // What a run costs comes from the handler, its payload (its fields, or its JSON box) and the
  // estimate; the server reads the payload as the form does and projects the next 30 days.
  function costs(name) {
    return name === "handler" || name === "estimate_override" || name === "payload" || name.indexOf("payload.") === 0;
  }
  var cost = document.getElementById("preview-cost");
  var over = document.getElementById("preview-over");
  var description = document.getElementById("preview-description");
  var errors = document.getElementById("preview-errors");
  var runs = document.getElementById("preview-runs");
  var label = document.getElementById("preview-runs-label");
  var announcer = document.getElementById("cron-preview-announce");
  var said = "";
  var timer = null;
  var asked = 0;

  function fill(list, items) {
    list.replaceChildren.apply(list, items.map(function (text) {
      var li = document.createElement("li");
      li.textContent = text;
      return li;
    }));
  }

  function show(body) {
    description.textContent = body.description || "";
    fill(runs, body.next_runs || []);
    label.hidden = !(body.next_runs && body.next_runs.length);
    var messages = [];
    Object.keys(body.errors || {}).forEach(function (field) {
      body.errors[field].forEach(function (reason) { messages.push(field.replace("_", " ") + ": " + reason); });
    });
    fill(errors, messages);
    cost.textContent = body.projection || "";
    over.textContent = body.over || "";
    var meaning = [description.textContent].concat(messages, [over.textContent]).filter(Boolean).join(". ");
    if (meaning !== said) announcer.textContent = said = meaning;
  }

  function ask() {
    var mine = ++asked;
    var query = new URLSearchParams({ cron: cron.value, time_zone: zone.value });
    new FormData(form).forEach(function (value, name) { if (costs(name)) query.append(name, value); });
    fetch(form.dataset.previewUrl + "?" + query.toString(), { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (body) { if (mine === asked) show(body); });  // an older answer never overwrites a newer one
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(ask, 250);
  }

  cron.addEventListener("input", soon);
  zone.addEventListener("change", ask);
  function costChanged(event) { if (event.target.name && costs(event.target.name)) soon(); }
  form.addEventListener("input", costChanged);
  form.addEventListener("change", costChanged);
  if (cron.value) ask();
})();
