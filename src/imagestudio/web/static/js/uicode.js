// UI code in the chat: each assistant message of type "code" is a UI generation, shown as a card with its
// sandboxed preview at desktop, tablet or phone width, its highlighted code (copy, download), and actions
// to revise, compare side by side, cancel, retry or delete it. The preview is an iframe with
// sandbox="allow-scripts" (never allow-same-origin) on a signed link: the code runs in an opaque origin.

import { api, describeError } from "./api.js";
import { highlightedCode } from "./code-highlight.js";
import { STATUS_BADGES, STATUS_LABELS } from "./describe.js";
import { announce, confirmAction, debounce, h, toast } from "./ui.js";

export const WIDTHS = { desktop: [1280, 800], tablet: [768, 1024], phone: [390, 844] };
const WIDTH_LABELS = { desktop: "Desktop", tablet: "Tablet", phone: "Phone" };
const FINAL = new Set(["succeeded", "failed", "canceled"]);

export class UiCodePanel {
  /** actions: { revise(ui, label), refresh() } */
  constructor(sessionId, store, actions) {
    this.sessionId = sessionId;
    this.store = store;
    this.actions = actions;
    this.byMessage = new Map(); // assistant message id -> UI generation
    this.versions = []; // oldest first
    this.codes = new Map(); // UI generation id -> { code, preview_url }
    this.cards = new Map(); // assistant message id -> { node, signature, width, showCode }
    this.load = debounce(() => this.refresh(), 100);
    store.on("change", () => {
      if (this.codeMessages().some((message) => this.stale(message))) this.load();
    });
  }

  codeMessages() {
    return this.store.messages.filter((message) => message.role === "assistant" && message.type === "code");
  }

  stale(message) {
    const ui = this.byMessage.get(message.id);
    return !ui || ui.status !== message.status || (ui.status === "succeeded" && !this.codes.has(ui.id));
  }

  async refresh() {
    try {
      const page = await api.get(`/sessions/${this.sessionId}/ui-generations?limit=100`);
      this.versions = page.items.slice().reverse();
      this.loaded = true;
      this.byMessage = new Map(this.versions.filter((ui) => ui.assistant_message_id).map((ui) => [ui.assistant_message_id, ui]));
      await Promise.all(this.versions.filter((ui) => ui.status === "succeeded" && !this.codes.has(ui.id)).map((ui) => this.fetchCode(ui)));
    } catch (error) {
      toast(describeError(error), { kind: "error" });
      return;
    }
    for (const [messageId, card] of this.cards) this.update(messageId, card);
  }

  async fetchCode(ui) {
    const full = await api.get(`/ui-generations/${ui.id}`);
    if (full.code !== null) this.codes.set(ui.id, { code: full.code, preview_url: full.preview_url });
  }

  version(ui) {
    return this.versions.findIndex((known) => known.id === ui.id) + 1;
  }

  label(ui) {
    return `UI v${this.version(ui)}`;
  }

  /** The card of a code message; the same node is kept and updated as its UI generation changes. */
  turn(message) {
    let card = this.cards.get(message.id);
    if (!card) {
      card = { node: h("li", { class: "turn turn-assistant turn-ui", tabindex: "-1", dataset: { messageId: message.id } }), signature: null, width: "desktop", showCode: false };
      this.cards.set(message.id, card);
    }
    this.update(message.id, card);
    if (this.stale(message)) this.load();
    return card.node;
  }

  update(messageId, card) {
    const ui = this.byMessage.get(messageId);
    const message = this.store.messages.find((known) => known.id === messageId);
    const signature = ui ? [ui.id, ui.status, this.codes.has(ui.id), card.width, card.showCode, this.version(ui)].join("|") : `pending|${message?.status}`;
    if (signature === card.signature) return;
    card.signature = signature;
    const focused = card.node.contains(document.activeElement) ? document.activeElement.dataset.uiAction : null;
    const waiting = this.loaded && message && FINAL.has(message.status) ? "This UI generation is no longer here." : "Writing the code…";
    card.node.replaceChildren(h("div", { class: "turn-card" }, ui ? this.renderCard(ui, card) : h("p", { class: "turn-note" }, waiting)));
    if (ui) {
      card.node.id = `ui-${ui.id}`;
      card.node.dataset.uiGenerationId = ui.id;
      card.node.dataset.status = ui.status;
      card.node.setAttribute("aria-label", `${this.label(ui)}: ${STATUS_LABELS[ui.status] || ui.status}`);
    }
    if (focused) card.node.querySelector(`[data-ui-action="${focused}"]`)?.focus();
  }

  renderCard(ui, card) {
    const parent = ui.parent_id ? this.versions.find((known) => known.id === ui.parent_id) : null;
    const origin = [parent ? `Revises ${this.label(parent)}` : null, ui.source_asset_id ? "From an image" : null].filter(Boolean).join(" · ");
    const head = h(
      "div",
      { class: "turn-head" },
      h("span", { class: "turn-step" }, this.label(ui)),
      h("span", { class: "turn-type" }, "UI code", origin ? ` · ${origin}` : ""),
      h("span", { class: `badge ${STATUS_BADGES[ui.status] || ""}` }, STATUS_LABELS[ui.status] || ui.status),
    );
    const title = ui.title ? h("p", { class: "turn-text", text: ui.title }) : null;
    let body;
    if (ui.status === "succeeded") body = this.renderCode(ui, card);
    else if (FINAL.has(ui.status)) body = this.renderStopped(ui);
    else body = this.renderRunning(ui);
    return [head, title, body];
  }

  renderRunning(ui) {
    const progress = h("progress", { class: "progress", "aria-label": "Writing the code" });
    return h(
      "div",
      { class: "turn-running" },
      h("div", { class: "turn-progress" }, progress, h("span", { class: "turn-progress-text" }, ui.status === "queued" ? "Waiting in the queue" : "Writing the code")),
      h("div", { class: "turn-actions" }, this.action("cancel", "Cancel", () => this.post(ui, "cancel"))),
    );
  }

  renderStopped(ui) {
    const failed = ui.status === "failed";
    const reason = failed ? (ui.error && ui.error.message) || "Writing the code failed." : "This UI generation was canceled.";
    return h(
      "div",
      { class: failed ? "turn-error" : "turn-canceled-note" },
      h("p", { class: "turn-reason" }, reason, failed && ui.error ? h("span", { class: "turn-code" }, ` (${ui.error.code})`) : null),
      h("div", { class: "turn-actions" }, this.action("retry", "Retry", () => this.post(ui, "retry")), this.action("delete", "Delete", () => this.remove(ui), "button-danger-quiet")),
    );
  }

  renderCode(ui, card) {
    const stored = this.codes.get(ui.id);
    if (!stored) return h("p", { class: "turn-note" }, "Loading the code…");
    const widths = h(
      "div",
      { class: "segmented ui-widths", role: "group", "aria-label": `Preview width of ${this.label(ui)}` },
      Object.keys(WIDTHS).map((name) =>
        h(
          "button",
          {
            type: "button",
            class: "segmented-button",
            "aria-pressed": card.width === name ? "true" : "false",
            dataset: { uiAction: `width-${name}`, uiWidth: name },
            on: { click: () => this.setWidth(card, name, ui) },
          },
          WIDTH_LABELS[name],
        ),
      ),
    );
    const by = ui.by_ai === false ? "Built-in composer (not an AI model)" : ui.model;
    const tokens = ui.by_ai === false ? null : `${ui.prompt_tokens ?? 0} + ${ui.completion_tokens ?? 0} tokens`;
    const facts = [by, tokens, `${(ui.code_bytes / 1024).toFixed(1)} KB`].filter(Boolean).join(" · ");
    const codeId = `ui-code-${ui.id}`;
    const toggle = this.action("code", card.showCode ? "Hide code" : "Show code", () => {
      card.showCode = !card.showCode;
      this.update(ui.assistant_message_id, card);
    });
    toggle.setAttribute("aria-expanded", card.showCode ? "true" : "false");
    toggle.setAttribute("aria-controls", codeId);
    const copy = this.action("copy", "Copy code", () => copyCode(stored.code, copy));
    return h(
      "div",
      { class: "ui-result" },
      widths,
      previewFrame(stored.preview_url, card.width, `Preview of ${this.label(ui)} at ${WIDTH_LABELS[card.width].toLowerCase()} width`),
      h("p", { class: "turn-facts" }, facts),
      h(
        "div",
        { class: "turn-actions" },
        toggle,
        copy,
        h("a", { class: "button button-small", download: `${slug(ui.title)}.html`, href: downloadUrl(stored.code), dataset: { uiAction: "download" } }, "Download"),
        this.action("revise", "Revise this", () => this.actions.revise(ui, this.label(ui))),
        this.versions.filter((known) => known.status === "succeeded").length > 1 ? this.action("compare", "Compare", () => this.compare(ui)) : null,
        this.action("delete", "Delete", () => this.remove(ui), "button-danger-quiet"),
      ),
      h("pre", { class: "ui-code", id: codeId, hidden: !card.showCode, tabindex: "0", "aria-label": `Code of ${this.label(ui)}` }, card.showCode ? highlightedCode(stored.code) : null),
    );
  }

  action(name, label, onClick, extra = "") {
    return h("button", { type: "button", class: `button button-small ${extra}`.trim(), dataset: { uiAction: name }, on: { click: onClick } }, label);
  }

  setWidth(card, name, ui) {
    card.width = name;
    this.update(ui.assistant_message_id, card);
    announce(`${this.label(ui)} at ${WIDTH_LABELS[name].toLowerCase()} width.`);
  }

  async post(ui, verb) {
    try {
      await api.post(`/ui-generations/${ui.id}/${verb}`, {});
      announce(verb === "retry" ? `Asking for ${this.label(ui)} again.` : `Canceling ${this.label(ui)}.`);
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    }
    this.actions.refresh();
  }

  async remove(ui) {
    const confirmed = await confirmAction({ title: `Delete ${this.label(ui)}?`, message: "Its code and preview are removed.", confirmLabel: "Delete" });
    if (!confirmed) return;
    try {
      await api.delete(`/ui-generations/${ui.id}`);
      announce(`${this.label(ui)} deleted.`);
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    }
    this.actions.refresh();
  }

  /** Two versions side by side in a dialog, at one width. */
  compare(ui) {
    const done = this.versions.filter((known) => known.status === "succeeded" && this.codes.has(known.id));
    const other = done.find((known) => known.id === ui.parent_id) || done.filter((known) => known.id !== ui.id).at(-1);
    const state = { left: other.id, right: ui.id, width: "phone" };
    const dialog = h("dialog", { class: "dialog ui-compare", "aria-labelledby": "ui-compare-title" });
    const render = () => {
      const picker = (side) =>
        h(
          "label",
          { class: "ui-compare-pick" },
          side === "left" ? "Left " : "Right ",
          h(
            "select",
            { class: "select select-compact", dataset: { compareSide: side }, on: { change: (event) => { state[side] = event.target.value; render(); } } },
            done.map((known) => h("option", { value: known.id, selected: known.id === state[side] }, this.label(known))),
          ),
        );
      const widths = h(
        "div",
        { class: "segmented", role: "group", "aria-label": "Width of both previews" },
        Object.keys(WIDTHS).map((name) =>
          h("button", { type: "button", class: "segmented-button", "aria-pressed": state.width === name ? "true" : "false", on: { click: () => { state.width = name; render(); } } }, WIDTH_LABELS[name]),
        ),
      );
      const pane = (id) => {
        const known = done.find((candidate) => candidate.id === id);
        return h("figure", { class: "ui-compare-pane" }, h("figcaption", {}, `${this.label(known)}${known.title ? `: ${known.title}` : ""}`), previewFrame(this.codes.get(id).preview_url, state.width, `Preview of ${this.label(known)}`));
      };
      dialog.replaceChildren(
        h(
          "div",
          { class: "dialog-body" },
          h("h2", { id: "ui-compare-title", class: "dialog-title" }, "Compare versions"),
          h("div", { class: "ui-compare-bar" }, picker("left"), picker("right"), widths),
          h("div", { class: "ui-compare-panes" }, pane(state.left), pane(state.right)),
          h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "button button-primary", dataset: { compareClose: "" }, on: { click: () => dialog.close() } }, "Close")),
        ),
      );
    };
    render();
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
  }
}

/** The sandboxed preview, scaled to the width of its column. */
export function previewFrame(url, width, title) {
  const [frameWidth, frameHeight] = WIDTHS[width];
  const frame = h("iframe", { class: "ui-frame", src: url, title, sandbox: "allow-scripts", referrerpolicy: "no-referrer", loading: "lazy" });
  frame.setAttribute("sandbox", "allow-scripts");
  frame.style.setProperty("width", `${frameWidth}px`);
  frame.style.setProperty("height", `${frameHeight}px`);
  const wrap = h("div", { class: `ui-frame-wrap ui-frame-${width}`, dataset: { previewWidth: String(frameWidth) } }, frame);
  const fit = () => {
    const available = wrap.clientWidth;
    if (!available) return;
    const scale = Math.min(1, available / frameWidth);
    frame.style.setProperty("transform", `scale(${scale})`);
    wrap.style.setProperty("height", `${Math.round(frameHeight * scale)}px`);
  };
  new ResizeObserver(fit).observe(wrap);
  return wrap;
}

async function copyCode(code, button) {
  try {
    await navigator.clipboard.writeText(code);
    button.textContent = "Copied";
    announce("The code is on the clipboard.");
  } catch {
    button.textContent = "Copy failed";
  }
}

function downloadUrl(code) {
  return URL.createObjectURL(new Blob([code], { type: "text/html" }));
}

function slug(title) {
  return (title || "interface").toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 60) || "interface";
}
