// Checklist keys in the rating task: each question's key toggles its checkbox. One listener per
// page, whatever how many task views htmx swaps in (this file is loaded with each of them).
(function () {
  "use strict";
  if (window.concordanceChecklistKeys) return;
  window.concordanceChecklistKeys = true;
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const el = document.activeElement;
    if (el && (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && el.type === "text") || el.isContentEditable)) return;
    const skip = document.getElementById("skip-panel");
    if (skip && skip.contains(el)) return;
    const key = event.key.toLowerCase();
    if (!/^[a-z]$/.test(key)) return;
    const box = document.querySelector('#task #checklist input[data-checklist-key="' + key + '"]');
    if (!box) return;
    event.preventDefault();
    box.checked = !box.checked;
  });
})();
