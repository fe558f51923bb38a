// Tell the LMS that registration is finished, so it closes its dialog (LTI Dynamic Registration).
(function () {
  "use strict";
  function close() {
    var target = window.opener || window.parent;
    if (target && target !== window) {
      target.postMessage({ subject: "org.imsglobal.lti.close" }, "*");
    }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("close-registration");
    if (button) {
      button.addEventListener("click", close);
    }
    close();
  });
})();
