// MeCDP console: small progressive enhancements; every page works without JavaScript.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Timeline filters apply as soon as a value is chosen.
  for (const form of document.querySelectorAll("form[data-autosubmit]")) {
    for (const select of form.querySelectorAll("select")) {
      select.addEventListener("change", () => form.submit());
    }
  }
});
