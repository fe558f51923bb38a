// Submit forms marked data-autosubmit as soon as the page loads (LTI auto-posted messages).
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
    form.submit();
  });
});
