/* Concordance annotator keyboard and time on task.
 *
 * Everything here is an enhancement: the forms post without it. One delegated keydown
 * handler on the document survives htmx swapping #task; state is re-read from the DOM after
 * each swap.
 */
(function () {
  "use strict";

  let started = performance.now();
  let hiddenTotal = 0;
  let hiddenSince = document.hidden ? performance.now() : null;
  let focusIndex = 0;
  let viewKey = null; // the task view the keyboard and the clock are set up for

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const taskForm = () => $("#task-form");
  const rows = () => $$("#task-form .attribute");

  // Time on task counts only while the page is visible: a task left in a background tab
  // should not look like a slow, careful judgement.
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      hiddenSince = performance.now();
    } else if (hiddenSince !== null) {
      hiddenTotal += performance.now() - hiddenSince;
      hiddenSince = null;
    }
  });
  function resetTimer() {
    started = performance.now();
    hiddenTotal = 0;
    hiddenSince = document.hidden ? performance.now() : null;
  }
  function elapsedMs() {
    const now = performance.now();
    const hidden = hiddenTotal + (hiddenSince !== null ? now - hiddenSince : 0);
    return Math.max(0, Math.round(now - started - hidden));
  }

  // Capture phase: runs before htmx reads the form on its own submit listener.
  document.addEventListener("submit", (event) => {
    const field = event.target.querySelector("input[name=time_on_task_ms]");
    if (field) field.value = String(elapsedMs());
  }, true);

  function submitButton() {
    const form = taskForm();
    return form ? $("button[type=submit]", form) : null;
  }

  function setFocus(index) {
    const all = rows();
    if (!all.length) return;
    focusIndex = Math.max(0, Math.min(index, all.length));
    all.forEach((row, k) => row.classList.toggle("is-focused", k === focusIndex));
    const button = submitButton();
    if (button) button.classList.toggle("is-focused", focusIndex === all.length);
    const target = focusIndex < all.length ? all[focusIndex] : button;
    if (target) {
      target.focus({ preventScroll: true });
      target.scrollIntoView({ block: "nearest" });
    }
  }

  function firstUnanswered() {
    const all = rows();
    const index = all.findIndex((row) => !$("input:checked", row));
    return index === -1 ? all.length : index;
  }

  function chooseRating(digit) {
    const all = rows();
    if (focusIndex >= all.length) return;
    const input = $(`input[type=radio][value="${digit}"]`, all[focusIndex]);
    if (!input) {
      all[focusIndex].classList.add("shake");
      setTimeout(() => all[focusIndex] && all[focusIndex].classList.remove("shake"), 300);
      return;
    }
    input.checked = true;
    const note = $(".field-error.js-missing", all[focusIndex]);
    if (note) { note.remove(); all[focusIndex].removeAttribute("aria-describedby"); }
    setFocus(focusIndex + 1);
  }

  function syncJustification() {
    const form = taskForm();
    if (!form || !form.classList.contains("ranking")) return;
    const checked = $("input[name=shown_strength]:checked", form);
    const box = $("textarea[name=justification]", form);
    const above = Number(form.dataset.requiredAbove);
    const needed = checked !== null && Math.abs(Number(checked.value)) > above;
    box.required = needed;
    const label = $("label.justification", form);
    if (label) label.classList.toggle("is-required", needed);
    if (!needed || box.value.trim()) clearJustificationError();
    return needed;
  }

  // Say what is missing beside the field, in words a screen reader announces (role=alert, and
  // the box's aria-describedby points at it): moving focus alone told nobody why.
  function justificationMessage(form) {
    return "Say why: a justification is required when one response is clearly better (beyond \u00b1" +
      form.dataset.requiredAbove + ").";
  }
  function showJustificationError() {
    const form = taskForm();
    const box = form && $("textarea[name=justification]", form);
    const note = $("#justification-error");
    if (!box || !note) return;
    note.textContent = justificationMessage(form);
    note.hidden = false;
    box.setAttribute("aria-invalid", "true");
    box.focus();
  }
  function clearJustificationError() {
    const note = $("#justification-error");
    const box = $("#task-form textarea[name=justification]");
    if (note && !note.hidden) { note.hidden = true; note.textContent = ""; }
    if (box) box.removeAttribute("aria-invalid");
  }
  function justificationMissing() {
    const form = taskForm();
    if (!form || !form.classList.contains("ranking")) return false;
    const box = $("textarea[name=justification]", form);
    return Boolean(syncJustification()) && !box.value.trim();
  }

  // An attribute left unanswered: the same, beside its scale.
  function showRatingMissing(row) {
    let note = $(".field-error.js-missing", row);
    if (!note) {
      note = document.createElement("p");
      note.className = "error field-error js-missing";
      note.setAttribute("role", "alert");
      note.id = "missing-" + (row.dataset.attribute || "attribute");
      row.appendChild(note);
      row.setAttribute("aria-describedby", note.id);
    }
    const name = $(".attr-name", row);
    note.textContent = "Choose a value for " + (name ? name.textContent : "this attribute") + ".";
  }

  function chooseStrength(input) {
    if (!input) return;
    input.checked = true;
    const needed = syncJustification();
    const box = $("textarea[name=justification]", taskForm());
    if (needed && !box.value.trim()) {
      box.focus();
    } else {
      const button = submitButton();
      if (button) button.focus();
    }
  }

  function submitTask() {
    const form = taskForm();
    if (!form) return;
    if (form.classList.contains("rating")) {
      const missing = firstUnanswered();
      if (missing < rows().length) {
        setFocus(missing);
        showRatingMissing(rows()[missing]);
        rows()[missing].classList.add("shake");
        setTimeout(() => rows()[missing] && rows()[missing].classList.remove("shake"), 300);
        return;
      }
    }
    if (justificationMissing()) { showJustificationError(); return; }
    form.requestSubmit();
  }

  // A click on Submit runs the browser's own check of `required` fields: show our message
  // instead of its transient bubble, which screen readers do not reliably announce.
  document.addEventListener("invalid", (event) => {
    const field = event.target;
    if (!field.form || field.form !== taskForm()) return;
    if (field.name === "justification") {
      event.preventDefault();
      showJustificationError();
    } else if (field.type === "radio" && field.name.startsWith("attr-")) {
      const row = field.closest(".attribute");
      if (row && row === $(".attribute:not(:has(input:checked))", field.form)) {
        event.preventDefault();
        setFocus(rows().indexOf(row));
        showRatingMissing(row);
      }
    }
  }, true);
  document.addEventListener("input", (event) => {
    if (event.target.name === "justification" && event.target.value.trim()) clearJustificationError();
  });

  function toggleHelp() {
    const dialog = $("#help");
    if (!dialog) return;
    if (dialog.open) dialog.close();
    else dialog.showModal();
  }

  function openSkip() {
    const panel = $("#skip-panel");
    if (!panel) return;
    panel.open = true;
    const first = $("input[name=reason]", panel);
    if (first) {
      first.focus();
      panel.scrollIntoView({ block: "nearest" });
    }
  }

  function isTyping(el) {
    if (!el) return false;
    if (el.isContentEditable) return true;
    const tag = el.tagName;
    return tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && !["radio", "checkbox", "button", "submit"].includes(el.type));
  }

  document.addEventListener("keydown", (event) => {
    const task = $("#task");
    // Keys typed between a swap and its settle belong to the new task: set it up first.
    if (task && task.dataset.viewKey !== viewKey) onTask();
    const el = document.activeElement;
    const help = $("#help");
    if (help && help.open) {
      if (event.key === "?") { event.preventDefault(); help.close(); }
      return; // Escape closes the dialog natively
    }
    if (isTyping(el)) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        if (el.form === taskForm()) submitTask(); else if (el.form) el.form.requestSubmit();
      } else if (event.key === "Escape") {
        el.blur();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    const skipPanel = $("#skip-panel");
    const inSkip = skipPanel && skipPanel.contains(el);

    if (key === "?") { event.preventDefault(); toggleHelp(); return; }
    if (inSkip) {
      if (key === "Escape") { skipPanel.open = false; setFocus(firstUnanswered()); }
      else if (key === "Enter" && el.tagName !== "BUTTON") { event.preventDefault(); el.form.requestSubmit(); }
      else if (/^[1-9]$/.test(key)) {
        const reasons = $$("input[name=reason]", skipPanel);
        const pick = reasons[Number(key) - 1];
        if (pick) { event.preventDefault(); pick.checked = true; pick.focus(); }
      }
      return;
    }
    // Buttons and links keep their native Enter/Space, so a submit never fires twice.
    if ((key === "Enter" || key === " ") && el && (el.tagName === "BUTTON" || el.tagName === "A" || el.tagName === "SUMMARY")) return;

    const form = taskForm();
    const lower = key.toLowerCase();
    if (key === "Enter") { event.preventDefault(); submitTask(); return; }
    if (lower === "s" && form) { event.preventDefault(); openSkip(); return; }
    if (lower === "u") {
      const undo = $(".undo-form");
      if (undo) { event.preventDefault(); undo.requestSubmit(); }
      return;
    }
    if (lower === "c") {
      const turns = $("#task details.conversation");
      if (turns) { event.preventDefault(); turns.open = !turns.open; }
      return;
    }
    if (lower === "g") {
      const guide = $("#guidelines");
      if (guide) { event.preventDefault(); guide.open = !guide.open; }
      return;
    }
    if (!form) return;
    if (form.classList.contains("rating")) {
      if (/^[0-9]$/.test(key)) { event.preventDefault(); chooseRating(key); }
      else if (key === "ArrowDown" || lower === "j") { event.preventDefault(); setFocus(focusIndex + 1); }
      else if (key === "ArrowUp" || lower === "k") { event.preventDefault(); setFocus(focusIndex - 1); }
      return;
    }
    if (form.classList.contains("ranking")) {
      const options = $$("input[name=shown_strength]", form);
      if (/^[1-9]$/.test(key)) {
        const input = options[Number(key) - 1];
        if (input) { event.preventDefault(); chooseStrength(input); }
      } else if (lower === "a" || lower === "b" || lower === "t") {
        const value = lower === "a" ? form.dataset.keyA : lower === "b" ? form.dataset.keyB : "0";
        event.preventDefault();
        chooseStrength(options.find((o) => o.value === value));
      }
    }
  });

  // A click on a rating choice answers that attribute: move on as the keys do.
  document.addEventListener("change", (event) => {
    const input = event.target;
    if (input.name === "shown_strength") { syncJustification(); return; }
    const row = input.closest && input.closest("#task-form .attribute");
    if (row) {
      const note = $(".field-error.js-missing", row);
      if (note) { note.remove(); row.removeAttribute("aria-describedby"); }
      const index = rows().indexOf(row);
      if (index >= 0) setFocus(index + 1);
    }
  });

  function onTask() {
    const task = $("#task");
    if (!task) return;
    const key = task.dataset.viewKey || "";
    // Tests and tools wait for this: the keyboard belongs to this task view now.
    document.body.dataset.taskReady = key;
    if (key !== viewKey) {
      // A new task view (not the same form back with errors): the clock starts again.
      viewKey = key;
      resetTimer();
    }
    const form = taskForm();
    if (!form) {
      // A training task's feedback: Enter continues to the next task.
      const next = $("#training-continue");
      if (next) next.focus({ preventScroll: true });
      return;
    }
    if (form.classList.contains("rating")) {
      const error = $(".attribute.has-error");
      setFocus(error ? rows().indexOf(error) : firstUnanswered());
    } else {
      syncJustification();
      const fieldset = $("fieldset.strength", form);
      if (fieldset) fieldset.focus({ preventScroll: true });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    onTask();
    const open = $("[data-help-open]");
    if (open) open.addEventListener("click", toggleHelp);
  });
  // After settle: htmx keeps the old #task's attributes on the new element until then.
  document.addEventListener("htmx:afterSettle", onTask);
})();
