// Behaviour that used to sit in inline handlers, which the Content-Security-Policy refuses.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm-submit");
    if (message && !window.confirm(message)) event.preventDefault();
  });
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target.hasAttribute && target.hasAttribute("data-select-on-click")) target.select();
    if (target.hasAttribute && target.hasAttribute("data-history-back") && window.history.length > 1) {
      event.preventDefault();
      window.history.back();
    }
  });
})();
