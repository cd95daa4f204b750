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
// A compute form says it is working and cannot be sent twice while the run goes.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.busyText) return;
  const button = form.querySelector("button[type=submit]");
  if (button) {
    setTimeout(() => { button.disabled = true; button.textContent = form.dataset.busyText; }, 0);
  }
});
