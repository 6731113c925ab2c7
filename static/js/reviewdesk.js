/* Reviewdesk: keyboard-first review forms (review, adjudication, pairwise). htmx does the requests;
   this file only adds keys, the highlighted ("active") question, time on task, and error toasts.
   A review form answers questions ([data-review-form]); a pairwise form picks a side ([data-pairwise-form]). */
(() => {
  "use strict";
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const TEXT_INPUTS = new Set(["text", "search", "email", "url", "password", "number", "tel", "date", "time"]);
  const form = () => $("[data-review-form]");
  const pairForm = () => $("[data-pairwise-form]");
  // A preview of the review form (the schema editor's) answers keys but never submits.
  const submit = (f) => { if (!f.hasAttribute("data-preview")) f.requestSubmit($("[data-submit]", f)); };
  const isPreview = (f) => !!f && f.hasAttribute("data-preview");
  let active = null;

  function isTyping(el) {
    if (!el || !el.tagName) return false;
    return el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT" ||
      (el.tagName === "INPUT" && TEXT_INPUTS.has(el.type));
  }

  // Keyboard stops in answer order; a context-relevance question stands for its per-chunk controls.
  function stops(f) {
    const out = [];
    for (const q of $$(".questions > fieldset", f)) {
      if (q.dataset.stopGroup === "rel") out.push(...$$("[data-rel]", f));
      else if (q.hasAttribute("data-stop")) out.push(q);
    }
    return out;
  }

  function activate(stop, focus = true) {
    if (!stop) return;
    for (const el of $$(".is-active")) el.classList.remove("is-active");
    stop.classList.add("is-active");
    if (stop.hasAttribute("data-rel")) {
      stop.closest(".chunk").classList.add("is-active");
      $('[data-stop-group="rel"]')?.classList.add("is-active");
    }
    active = stop;
    if (focus && !stop.contains(document.activeElement)) stop.focus({ preventScroll: true });
    stop.scrollIntoView({ block: "nearest" });
  }

  function move(delta) {
    const list = stops(form());
    if (!list.length) return;
    const i = list.indexOf(active);
    activate(list[i < 0 ? 0 : Math.max(0, Math.min(list.length - 1, i + delta))]);
  }

  // Pick the option bound to `key` in `stop`; true when the question is answered (advance).
  function choose(stop, key) {
    const input = $$("input[data-key]", stop).find((el) => el.dataset.key === key);
    if (!input) return false;
    input.checked = input.type === "checkbox" ? !input.checked : true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    return input.type === "radio";
  }

  function markAnswered(f) {
    const relRequired = !!$('[data-stop-group="rel"][data-required]', f);
    let ready = true;
    for (const s of stops(f)) {
      const done = $$("input", s).some((i) => i.checked) || $$("textarea", s).some((t) => t.value.trim());
      s.classList.toggle("answered", done);
      if (!done && (s.hasAttribute("data-required") || (relRequired && s.hasAttribute("data-rel")))) ready = false;
    }
    $("[data-submit]", f)?.classList.toggle("ready", ready);
  }

  function edit(textarea) {
    if (!textarea) return;
    activate(textarea.closest("[data-stop]"), false);
    textarea.focus();
    textarea.setSelectionRange(textarea.value.length, textarea.value.length);
  }

  function openDialog(id) {
    const d = document.getElementById(id);
    if (d && !d.open) d.showModal();
  }

  function toast(text) {
    const t = $("#toast");
    if (!t) return;
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 8000);
  }

  // Time on task: visible time only, per lease, kept across re-renders of the same lease (validation
  // errors). True when `f` is a new lease.
  let timer = { id: null, ms: 0, since: null };
  const now = () => performance.now();
  function startTimer(f) {
    const id = f ? f.dataset.lease : null;
    if (id === timer.id) return false;
    timer = { id, ms: 0, since: document.hidden ? null : now() };
    return true;
  }
  const elapsed = () => Math.round(timer.ms + (timer.since === null ? 0 : now() - timer.since));
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && timer.since !== null) {
      timer.ms += now() - timer.since;
      timer.since = null;
    } else if (!document.hidden && timer.since === null) timer.since = now();
  });
  // Capture phase: runs before htmx reads the form's values.
  document.addEventListener("submit", (e) => {
    const input = e.target.querySelector && e.target.querySelector("[data-time-on-task]");
    if (input) input.value = String(elapsed());
  }, true);

  function init() {
    const f = form();
    const fresh = startTimer(f);
    active = null;
    if (!f) return;
    markAnswered(f);
    const list = stops(f);
    const relError = !!$('[data-stop-group="rel"].has-error', f);
    const firstError = list.find((s) => s.hasAttribute("data-rel")
      ? !!s.querySelector(".err") || (relError && !s.classList.contains("answered"))
      : s.matches(".has-error"));
    // A preview highlights its first question without taking the keyboard from the editor beside it.
    if (fresh && !firstError && !isPreview(f)) window.scrollTo({ top: 0 });
    activate(firstError || list[0], !isPreview(f));
  }

  // The pairwise form: a choice marks Submit ready; keys only once htmx has bound the form.
  const markReady = (f) => $("[data-submit]", f)?.classList.toggle("ready", $$('input[name="choice"]', f).some((i) => i.checked));
  function initPair() {
    const f = pairForm();
    if (startTimer(f)) {
      window.scrollTo({ top: 0 });
      // A new pair starts with the keys on the page, not in a text field left over from the last one.
      if (isTyping(document.activeElement)) document.activeElement.blur();
    }
    if (!f) return;
    markReady(f);
    f.dataset.ready = "true"; // htmx has bound the form: keys now submit through it
  }

  function pairKey(e, f, t) {
    const input = $$('input[name="choice"]', f).find((i) => i.dataset.keys.split(" ").includes(e.key));
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
      if (control && !control.closest("dialog:not([open])")) return false;
      submit(f);
    } else return false;
    return true;
  }

  document.addEventListener("keydown", (e) => {
    if (e.defaultPrevented || e.isComposing || $("dialog[open]")) return;
    const t = e.target;
    const pf = pairForm();
    let f = form();
    // A preview's keys work only while the keyboard is in it (its editor's buttons keep theirs).
    if (isPreview(f) && !f.contains(t)) f = null;
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      const sf = pf || f;
      if (sf && (pf || sf.contains(t) || !isTyping(t))) {
        e.preventDefault();
        submit(sf);
      }
      return;
    }
    if (isTyping(t)) {
      if (e.key === "Escape") {
        e.preventDefault();
        t.blur();
        const s = t.closest("[data-stop]");
        if (s) activate(s);
      } else if (pf && e.key === "Enter" && !e.shiftKey && t.matches("[data-reason]")) {
        // The reason is short: Enter submits it, Shift+Enter starts a new line.
        e.preventDefault();
        submit(pf);
      }
      return;
    }
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    let handled = true;
    if (e.key === "?") openDialog("shortcuts-dialog");
    else if (e.key === "g") openDialog("guidelines-dialog");
    else if (pf) handled = pairKey(e, pf, t);
    else if (!f) handled = false;
    else if (e.key === "j" || e.key === "ArrowDown") move(1);
    else if (e.key === "k" || e.key === "ArrowUp") move(-1);
    else if (/^[0-9]$/.test(e.key)) {
      if (active && choose(active, e.key)) move(1);
    } else if (e.key === "y" || e.key === "n") {
      const target = active && active.dataset.kind === "pass_fail" ? active : $('[data-kind="pass_fail"]', f);
      if (target && choose(target, e.key) && target === active) move(1);
    } else if (e.key === "e") edit($("[data-expected]", f));
    else if (e.key === "m" && $("[data-from-model]", f)) $("[data-from-model]", f).click();
    else if (e.key === "c") edit($("[data-comment]", f));
    else if (e.key === "i") edit(active && $("textarea", active));
    else if (e.key === "o") {
      const d = active && active.closest(".chunk")?.querySelector("details");
      if (d) d.open = !d.open;
    } else if (e.key === "s") $("[data-skip]", f)?.click();
    else if (e.key === "f" && $("[data-flag]", f)) openDialog("flag-dialog");
    else if (e.key === "Enter") {
      if (t.closest && t.closest("button, a, summary, select")) handled = false;
      else submit(f);
    } else handled = false;
    if (handled) e.preventDefault();
  });

  document.addEventListener("focusin", (e) => {
    const s = e.target.closest && e.target.closest("[data-stop]");
    if (s && s !== active && form()?.contains(s)) activate(s, false);
  });
  for (const type of ["change", "input"]) {
    document.addEventListener(type, (e) => {
      const f = form();
      if (f && f.contains(e.target)) markAnswered(f);
    });
  }
  document.addEventListener("change", (e) => {
    const f = pairForm();
    if (!f || !f.contains(e.target)) return;
    markReady(f);
    // The "pick one" error is answered now.
    const choices = e.target.name === "choice" && e.target.closest("[data-choices]");
    if (choices) {
      choices.classList.remove("has-error");
      choices.querySelector(".err")?.remove();
    }
  });
  document.addEventListener("click", (e) => {
    const opener = e.target.closest && e.target.closest("[data-open]");
    if (opener) {
      e.preventDefault(); // the Skip button also submits without JavaScript; with it, it opens the dialog
      openDialog(opener.dataset.open);
    }
    // Copy a text into a field: a reviewer's answer into a decision, or the model's answer into the
    // expected response (only on request: an untouched field stays empty).
    const filler = e.target.closest && e.target.closest("[data-fill]");
    const fillTarget = filler && document.getElementById(filler.dataset.fill);
    if (fillTarget) {
      fillTarget.value = filler.dataset.value || "";
      fillTarget.dispatchEvent(new Event("input", { bubbles: true }));
      edit(fillTarget);
    }
    const copier = e.target.closest && e.target.closest("[data-copy]");
    if (copier) {
      const input = document.getElementById(copier.dataset.copy);
      input.select();
      navigator.clipboard?.writeText(input.value).then(() => { copier.textContent = "Copied"; }, () => {});
    }
  });

  // htmx:load fires once htmx has processed new content (the page at start-up, then each swapped
  // panel). Before that, a key would submit a pairwise form without htmx: it still works, as a full page load.
  document.addEventListener("htmx:load", (e) => {
    if (e.target.matches && (e.target.matches("[data-pairwise-panel]") || e.target.querySelector("[data-pairwise-panel]"))) initPair();
  });
  document.addEventListener("htmx:afterSettle", (e) => {
    if (e.target.querySelector && (e.target.matches("[data-review-panel], .review") || e.target.querySelector("[data-review-form]"))) init();
  });
  // A dialog whose form did its job (e.g. the flag dialog) closes; the answers behind it stay as typed.
  document.addEventListener("htmx:afterRequest", (e) => {
    const d = e.detail.elt && e.detail.elt.closest && e.detail.elt.closest("dialog[data-close-on-success]");
    if (d && e.detail.successful && d.open) d.close();
  });
  document.addEventListener("htmx:responseError", (e) => {
    const status = e.detail.xhr.status;
    toast(status === 403
      ? "The server refused this request (403). Your session may have expired: reload the page and try again."
      : `Something went wrong (HTTP ${status}). Your answers are still here; try again.`);
  });
  document.addEventListener("htmx:sendError", () => toast("Cannot reach the server. Check your connection and try again."));

  if (!$("[data-pairwise-panel]")) init();
})();
