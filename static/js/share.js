// Share pages: copy the link or code, and show the date field / the no-check warning only when they apply.
(function () {
  "use strict";

  function copy(button) {
    var input = document.getElementById(button.getAttribute("data-copy-target"));
    var status = document.querySelector(".copy-status");
    if (!input) return;
    input.select();
    var done = function () { if (status) status.textContent = button.textContent.replace("Copy ", "") + " copied."; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  }

  function toggle(selector, visible) {
    document.querySelectorAll(selector).forEach(function (el) { el.hidden = !visible; });
  }

  function refresh() {
    var expiry = document.querySelector('input[name="expiry"]:checked');
    var protection = document.querySelector('input[name="protection"]:checked');
    toggle(".share-date-field", !expiry || expiry.value === "date");
    toggle(".share-none-warning", !!protection && protection.value === "none");
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".copy-button").forEach(function (button) {
      button.addEventListener("click", function () { copy(button); });
    });
    document.querySelectorAll('input[name="expiry"], input[name="protection"]').forEach(function (input) {
      input.addEventListener("change", refresh);
    });
    if (document.querySelector(".share-form")) refresh();
  });
})();
