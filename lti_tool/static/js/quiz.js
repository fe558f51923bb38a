// The attempt page: a countdown to the server's deadline, and saving each answer as it changes.
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var timer = document.getElementById("timer");
  if (timer) {
    var deadline = Date.parse(timer.dataset.deadline);
    var lang = document.documentElement.lang;
    var tick = function () {
      var left = Math.max(0, Math.floor((deadline - Date.now()) / 1000));
      var minutes = Math.floor(left / 60), seconds = left % 60;
      var text = lang === "ja"
        ? "残り時間 " + minutes + "分" + String(seconds).padStart(2, "0") + "秒"
        : "Time left " + minutes + ":" + String(seconds).padStart(2, "0");
      timer.textContent = text;
      if (left === 60 || left === 300) { timer.setAttribute("aria-live", "assertive"); }
      if (left === 0) { window.location.reload(); return; }
      window.setTimeout(tick, 1000);
    };
    tick();
  }
  var form = document.getElementById("attempt-form");
  var status = document.getElementById("save-status");
  if (!form || !window.fetch) { return; }
  form.addEventListener("change", function (event) {
    var fieldset = event.target.closest("fieldset.question");
    if (!fieldset) { return; }
    var body = new FormData();
    body.append("ts", form.elements.ts.value);
    body.append("csrf_token", form.elements.csrf_token.value);
    fieldset.querySelectorAll("input, select").forEach(function (input) {
      if ((input.type === "radio" || input.type === "checkbox") && !input.checked) { return; }
      if (input.name === "flagged") { body.append("flagged", input.value); return; }
      body.append(input.name, input.value);
    });
    body.append("go", "stay");
    fetch(form.action, { method: "POST", body: body, credentials: "include",
                         headers: { "X-Requested-With": "fetch" } })
      .then(function (response) {
        if (status) { status.textContent = response.ok ? status.dataset.saved || "✓" : "!"; }
      });
  });
});
