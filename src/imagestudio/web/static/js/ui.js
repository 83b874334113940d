// Small DOM helpers shared by every page: element building, announcements, toasts, dialogs, formatting.

/**
 * h("button", { class: "button", on: { click } , dataset: { id }, attrs: { "aria-label": "x" } }, "Text")
 * Children may be strings, nodes, arrays or null/false (skipped). Text is always set as text, never as HTML.
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "on") for (const [name, handler] of Object.entries(value)) node.addEventListener(name, handler);
    else if (key === "attrs") for (const [name, v] of Object.entries(value)) setAttribute(node, name, v);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  append(node, children);
  return node;
}

function setAttribute(node, name, value) {
  if (value === undefined || value === null || value === false) return;
  node.setAttribute(name, value === true ? "" : String(value));
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

let announceTimer = null;

/** Says something to screen readers through the page's polite live region. */
export function announce(message) {
  const region = document.getElementById("announcer");
  if (!region) return;
  // Clear first so that the same message twice is announced twice.
  region.textContent = "";
  window.clearTimeout(announceTimer);
  announceTimer = window.setTimeout(() => {
    region.textContent = message;
  }, 60);
}

/** An assertive announcement, for errors. */
export function alertMessage(message) {
  const region = document.getElementById("alerts");
  if (!region) return;
  region.textContent = "";
  window.setTimeout(() => {
    region.textContent = message;
  }, 60);
}

/** A visible, dismissible note in the corner; also announced. */
export function toast(message, { kind = "info", timeout = 5000 } = {}) {
  const container = document.getElementById("toasts");
  if (kind === "error") alertMessage(message);
  else announce(message);
  if (!container) return;
  const close = h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss" }, "×");
  const item = h("div", { class: `toast toast-${kind}` }, h("span", { class: "toast-text", text: message }), close);
  const remove = () => item.remove();
  close.addEventListener("click", remove);
  container.append(item);
  if (timeout) window.setTimeout(remove, kind === "error" ? timeout * 2 : timeout);
  while (container.children.length > 4) container.firstElementChild.remove();
}

/** Asks for confirmation in the page's <dialog>; resolves true when confirmed. Focus returns where it was. */
export function confirmAction({ title, message, confirmLabel = "Confirm", danger = true }) {
  const dialog = document.getElementById("confirm-dialog");
  if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(window.confirm(message));
  const previous = document.activeElement;
  dialog.querySelector("#confirm-title").textContent = title;
  dialog.querySelector("#confirm-message").textContent = message;
  const ok = dialog.querySelector("[data-confirm-ok]");
  ok.textContent = confirmLabel;
  ok.className = `button ${danger ? "button-danger" : "button-primary"}`;
  dialog.returnValue = "cancel";
  dialog.showModal();
  dialog.querySelector("[data-confirm-cancel]").focus();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        if (previous && previous.isConnected) previous.focus();
        resolve(dialog.returnValue === "confirm");
      },
      { once: true },
    );
  });
}

/** Marks a button as working (spinner, disabled) and back. */
export function setBusy(button, busy) {
  if (!button) return;
  button.disabled = busy;
  if (busy) button.setAttribute("aria-busy", "true");
  else button.removeAttribute("aria-busy");
}

/** Shows an API error on a form: the summary in [data-form-error], field messages next to their inputs. */
export function showFormError(form, error, message) {
  clearFormError(form);
  const summary = form.querySelector("[data-form-error]");
  const fields = (error && error.fieldErrors) || [];
  let placedAll = fields.length > 0;
  for (const { field, message: text } of fields) {
    const name = field.split(".").pop();
    const slot = form.querySelector(`[data-field-error="${CSS.escape(name)}"]`);
    const input = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (input) input.setAttribute("aria-invalid", "true");
    if (slot) {
      slot.textContent = text;
      slot.hidden = false;
      if (input && slot.id) input.setAttribute("aria-describedby", slot.id);
    } else {
      placedAll = false;
    }
  }
  if (summary && (!placedAll || message)) {
    summary.textContent = message || (error && (error.detail || error.title || error.message)) || "Something went wrong.";
    summary.hidden = false;
  }
}

export function clearFormError(form) {
  for (const slot of form.querySelectorAll("[data-form-error], [data-field-error]")) {
    slot.textContent = "";
    slot.hidden = true;
  }
  for (const input of form.querySelectorAll('[aria-invalid="true"]')) input.removeAttribute("aria-invalid");
}

const isApple = /Mac|iPhone|iPad|iPod/.test(navigator.platform || navigator.userAgent);

/**
 * Enter sends, as in chat apps (Ctrl+Enter and Cmd+Enter too); Shift+Enter is left to make a new line, and
 * Enter that confirms an input method's composition is not a send.
 */
export function isSubmitShortcut(event) {
  return event.key === "Enter" && !event.shiftKey && !event.altKey && !event.isComposing;
}

export function labelModifierKeys(root = document) {
  if (!isApple) return;
  for (const key of root.querySelectorAll("[data-mod-key]")) key.textContent = "⌘";
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** "3 minutes ago", "yesterday", or a date for anything older than a week. */
export function relativeTime(value) {
  const date = value instanceof Date ? value : new Date(value);
  const seconds = Math.round((date.getTime() - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return "just now";
  if (abs < 3600) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(seconds / 3600), "hour");
  if (abs < 7 * 86400) return relative.format(Math.round(seconds / 86400), "day");
  return dateFormat.format(date);
}

export function absoluteTime(value) {
  return dateFormat.format(value instanceof Date ? value : new Date(value));
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds % 60)} s`;
}

/** "0.01113 USD" from an API amount {amount: "0.011130", currency}: the decimal string as given
 * (never through a float), trailing zeros dropped down to cents. */
export function formatMoney(money) {
  if (!money) return "";
  const [whole, fraction = ""] = String(money.amount).split(".");
  const digits = fraction.replace(/0+$/, "").padEnd(2, "0");
  return `${whole}.${digits} ${money.currency}`;
}

/** The sum of API amounts (in one currency), added as whole millionths so no float rounds them. */
export function sumMoney(amounts) {
  let micros = 0n;
  let currency = null;
  for (const money of amounts) {
    if (!money) continue;
    const [whole, fraction = ""] = String(money.amount).split(".");
    micros += BigInt(whole) * 1000000n + BigInt(fraction.padEnd(6, "0").slice(0, 6));
    currency = money.currency;
  }
  if (currency === null) return null;
  const whole = micros / 1000000n;
  const fraction = String(micros % 1000000n).padStart(6, "0");
  return { amount: `${whole}.${fraction}`, currency };
}

export function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

/** Coalesces calls made within `wait` ms into one. */
export function debounce(fn, wait) {
  let timer = null;
  return (...args) => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => fn(...args), wait);
  };
}

/** Grows a textarea with its content, up to its CSS max-height. */
export function autoResize(textarea) {
  const fit = () => {
    textarea.style.height = "auto";
    textarea.style.height = `${textarea.scrollHeight + 2}px`;
  };
  textarea.addEventListener("input", fit);
  fit();
  return fit;
}

const ROVING_KEYS = { ArrowLeft: -1, ArrowUp: -1, ArrowRight: 1, ArrowDown: 1, Home: -Infinity, End: Infinity };

/**
 * One tab stop per list of thumbnails: Tab reaches the current item of each group (the element matching
 * groupSelector around it), arrows, Home and End move between the items of that group.
 */
export function rovingFocus(root, itemSelector, groupSelector) {
  const groupItems = (item) => $$(itemSelector, item.closest(groupSelector) || root);
  root.addEventListener("keydown", (event) => {
    if (!(event.key in ROVING_KEYS) || !event.target.matches(itemSelector)) return;
    const items = groupItems(event.target);
    const index = items.indexOf(event.target);
    const step = ROVING_KEYS[event.key];
    const next = step === -Infinity ? 0 : step === Infinity ? items.length - 1 : Math.max(0, Math.min(items.length - 1, index + step));
    event.preventDefault();
    setTabStop(items, items[next]);
    items[next].focus();
  });
  root.addEventListener("focusin", (event) => {
    if (event.target.matches(itemSelector)) setTabStop(groupItems(event.target), event.target);
  });
}

/** Makes `current` (or the first item) the group's only tab stop. */
export function setTabStop(items, current) {
  const stop = current && items.includes(current) ? current : items[0];
  for (const item of items) item.tabIndex = item === stop ? 0 : -1;
}
