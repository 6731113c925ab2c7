/* Reviewdesk pairwise page: keys pick a side, r writes a reason, Enter submits, s skips.
   reviewdesk.js (on every page) already opens the shortcut sheet (?) and the guidelines (g),
   leaves a text field on Esc, and reports htmx errors; this file only adds the pairwise keys
   and the time on task. */
(() => {
  "use strict";
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const form = () => $("[data-pairwise-form]");
  const TEXT_INPUTS = new Set(["text", "search", "email", "url", "password", "number", "tel"]);

  function isTyping(el) {
    if (!el || !el.tagName) return false;
    return el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT" ||
      (el.tagName === "INPUT" && TEXT_INPUTS.has(el.type));
  }

  function choiceFor(f, key) {
    return $$('input[name="choice"]', f).find((input) => input.dataset.keys.split(" ").includes(key));
  }

  function markReady(f) {
    $("[data-submit]", f)?.classList.toggle("ready", $$('input[name="choice"]', f).some((i) => i.checked));
  }

  function submit(f) {
    f.requestSubmit($("[data-submit]", f));
  }

  // Time on task: visible time only, per lease, kept across re-renders of the same pair (errors).
  let timer = { lease: null, ms: 0, since: null };
  const now = () => performance.now();
  const elapsed = () => Math.round(timer.ms + (timer.since === null ? 0 : now() - timer.since));
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && timer.since !== null) {
      timer.ms += now() - timer.since;
      timer.since = null;
    } else if (!document.hidden && timer.since === null) timer.since = now();
  });
  // Capture phase: runs before htmx reads the form's values.
  document.addEventListener("submit", (e) => {
    const input = e.target.querySelector && e.target.querySelector("[data-pair-time]");
    if (input) input.value = String(elapsed());
  }, true);

  function init() {
    const f = form();
    const lease = f ? f.dataset.lease : null;
    if (lease !== timer.lease) {
      timer = { lease, ms: 0, since: document.hidden ? null : now() };
      window.scrollTo({ top: 0 });
      // A new pair starts with the keys on the page, not in a text field left over from the last one.
      if (isTyping(document.activeElement)) document.activeElement.blur();
    }
    if (!f) return;
    markReady(f);
    f.dataset.ready = "true"; // htmx has bound the form: keys now submit through it
  }

  document.addEventListener("keydown", (e) => {
    if (e.defaultPrevented || e.isComposing || $("dialog[open]")) return;
    const f = form();
    if (!f) return;
    const t = e.target;
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      submit(f);
      return;
    }
    if (isTyping(t)) {
      // The reason is short: Enter submits it, Shift+Enter starts a new line.
      if (e.key === "Enter" && !e.shiftKey && t.matches("[data-reason]")) {
        e.preventDefault();
        submit(f);
      }
      return;
    }
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const input = choiceFor(f, e.key);
    let handled = true;
    if (input) {
      input.checked = true;
      input.dispatchEvent(new Event("change", { bubbles: true }));
    } else if (e.key === "r") {
      const reason = $("[data-reason]", f);
      reason.focus();
      reason.setSelectionRange(reason.value.length, reason.value.length);
    } else if (e.key === "c") {
      const contexts = $$("[data-context]", f);
      const open = !contexts.every((d) => d.open);
      for (const d of contexts) d.open = open;
    } else if (e.key === "s") $("[data-skip]", f)?.click();
    else if (e.key === "Enter") {
      // A focused control keeps its own Enter, except a dialog's button just after the dialog closed
      // (the browser moves the focus away from it only at its next frame).
      const control = t.closest && t.closest("button, a, summary, select");
      if (control && !control.closest("dialog:not([open])")) handled = false;
      else submit(f);
    } else handled = false;
    if (handled) e.preventDefault();
  });

  document.addEventListener("change", (e) => {
    const f = form();
    if (!f || !f.contains(e.target)) return;
    markReady(f);
    const choices = e.target.name === "choice" && e.target.closest("[data-choices]");
    if (choices) {
      // The "pick one" error is answered now.
      choices.classList.remove("has-error");
      choices.querySelector(".err")?.remove();
    }
  });
  // htmx:load fires once htmx has processed new content (the page at start-up, then each swapped
  // panel). Before that, a key would submit the form without htmx: it still works, as a full page load.
  document.addEventListener("htmx:load", (e) => {
    if (e.target.matches && (e.target.matches("[data-pairwise-panel]") || e.target.querySelector("[data-pairwise-panel]"))) init();
  });
})();
