// Mark a unit as read once its end scrolls into view (the button does the same without JS).
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var end = document.getElementById("unit-end");
  if (!end || end.dataset.read === "true" || !("IntersectionObserver" in window)) {
    return;
  }
  var observer = new IntersectionObserver(function (entries) {
    if (!entries.some(function (entry) { return entry.isIntersecting; })) {
      return;
    }
    observer.disconnect();
    var body = new FormData();
    body.append("ts", end.dataset.token);
    body.append("csrf_token", end.dataset.csrf);
    fetch(end.dataset.readUrl, {
      method: "POST",
      body: body,
      credentials: "include",
      headers: { "X-Requested-With": "fetch" }
    }).then(function (response) {
      if (response.ok) {
        end.dataset.read = "true";
        var form = end.querySelector("form");
        if (form) { form.hidden = true; }
      }
    });
  }, { threshold: 0.5 });
  observer.observe(end);
});
