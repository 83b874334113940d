// The chat timeline: each prompt, and each assistant turn with its live progress, images or failure.
// Rendering is keyed by message, so progress updates never rebuild the list or steal focus.

import { STATUS_BADGES, STATUS_LABELS, originLabel, outputLabel, progressText, typeLabel } from "./describe.js";
import { imageFraction, previewTiles, timeLeft } from "./preview.js";
import { plainFailure } from "./failures.js";
import { isFinal } from "./store.js";
import { absoluteTime, formatDuration, h, relativeTime, rovingFocus } from "./ui.js";

const NEAR_BOTTOM_PX = 120;

export class Timeline {
  /**
   * actions: { select(assetId), cancel(generation), retry(generation), remove(generation), usePrompt(text),
   *            sendPrompt(text), ask(question), cancelReply(generationId), replyError(generationId) -> Promise,
   *            codeTurn(message) (the node of a code message, kept up to date by its owner) }
   */
  constructor(root, store, actions) {
    this.root = root;
    this.store = store;
    this.actions = actions;
    this.items = new Map(); // message id -> { node, signature }
    store.on("change", (change) => this.render(change));
    this.setUpOlder();
    rovingFocus(root, ".turn-image", ".turn-images");
    store.on("progress", ({ generationId }) => this.updateProgress(generationId));
    store.on("preview", ({ generationId }) => this.updatePreviews(generationId));
    store.on("delta", ({ generationId }) => this.updateReply(generationId));
  }

  nearBottom() {
    const scroller = this.scroller();
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
  }

  scroller() {
    // On wide screens the list scrolls by itself; on narrow ones the page does.
    const style = window.getComputedStyle(this.root);
    return style.overflowY === "auto" || style.overflowY === "scroll" ? this.root : document.scrollingElement;
  }

  scrollToEnd() {
    const scroller = this.scroller();
    if (scroller === this.root) scroller.scrollTop = scroller.scrollHeight;
    else if (this.root.lastElementChild) this.root.lastElementChild.scrollIntoView({ block: "nearest" });
  }

  /**
   * Older steps load when the person scrolls up to the top of the list (a sentinel watched by an
   * IntersectionObserver), or with its button. Only after the person scrolled: a page that starts at its
   * top (narrow screens) must not load every step on arrival.
   */
  setUpOlder() {
    this.more = h(
      "li",
      { class: "timeline-more", dataset: { timelineMore: "" } },
      h("button", { type: "button", class: "button button-small", on: { click: () => this.loadOlder() } }, "Show earlier steps"),
    );
    this.scrolledByPerson = false;
    const person = () => {
      this.scrolledByPerson = true;
    };
    for (const type of ["wheel", "touchmove", "keydown"]) window.addEventListener(type, person, { passive: true });
    if (!("IntersectionObserver" in window)) return;
    this.observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting) && this.scrolledByPerson) this.loadOlder();
      },
      { root: this.scroller() === this.root ? this.root : null, rootMargin: "300px 0px 0px 0px" },
    );
    this.observer.observe(this.more);
  }

  async loadOlder() {
    if (!this.actions.older || this.loadingOlder) return;
    this.loadingOlder = true;
    this.more.setAttribute("aria-busy", "true");
    try {
      await this.actions.older();
    } catch {
      // Told by a toast; the button stays for another try.
    } finally {
      this.loadingOlder = false;
      this.more.setAttribute("aria-busy", "false");
    }
    // Still in view (a short page of turns): look again, which loads the next page.
    if (this.observer && this.more.isConnected) {
      this.observer.unobserve(this.more);
      this.observer.observe(this.more);
    }
  }

  render(change = {}) {
    const { store } = this;
    const stick = this.items.size === 0 || this.nearBottom();
    // Older turns go in above what the person is reading: keep it where it is on the screen.
    const scroller = this.scroller();
    const fromBottom = change.older ? scroller.scrollHeight - scroller.scrollTop : null;
    const seen = new Set();
    if (store.olderCursor) {
      if (this.root.firstChild !== this.more) this.root.prepend(this.more);
    } else this.more.remove();
    let previous = store.olderCursor ? this.more : null;
    let added = false;
    for (const message of store.messages) {
      if (message.role === "system" || message.role === "tool") continue;
      seen.add(message.id);
      const signature = this.signature(message);
      let item = this.items.get(message.id);
      if (!item) {
        item = { node: null, signature: null };
        this.items.set(message.id, item);
        added = true;
      }
      if (item.signature !== signature) {
        const node = this.renderMessage(message);
        const hadFocus = item.node && item.node.contains(document.activeElement) ? document.activeElement : null;
        if (item.node) item.node.replaceWith(node);
        item.node = node;
        item.signature = signature;
        if (hadFocus) restoreFocus(node, hadFocus);
      }
      // Keep document order equal to message order.
      const expected = previous ? previous.nextSibling : this.root.firstChild;
      if (expected !== item.node) this.root.insertBefore(item.node, expected);
      previous = item.node;
    }
    for (const [id, item] of this.items) {
      if (!seen.has(id)) {
        item.node.remove();
        this.items.delete(id);
      }
    }
    this.root.setAttribute("aria-busy", "false");
    if (!this.root.children.length) this.root.append(h("li", { class: "timeline-empty" }, "No turns yet. Describe an image below to begin."));
    else this.root.querySelector(".timeline-empty")?.remove();
    // A list that scrolls by itself starts at its newest turn; the page itself (narrow screens) is only
    // scrolled for turns added later, so arriving on a phone shows the image first.
    if (fromBottom !== null) scroller.scrollTop = scroller.scrollHeight - fromBottom;
    else if (added && stick && (this.rendered || this.scroller() === this.root)) this.scrollToEnd();
    this.rendered = true;
  }

  /** The generation a user message asked for (its reply's), if known. */
  requested(message) {
    const reply = this.store.messages.find((candidate) => candidate.parent_message_id === message.id && candidate.generation_id);
    return reply ? this.store.generations.get(reply.generation_id) || null : null;
  }

  signature(message) {
    if (message.role === "user") {
      const requested = this.requested(message);
      return `${message.id}:${message.content.length}:${requested ? this.store.step(requested.id) : ""}`;
    }
    const generation = message.generation_id ? this.store.generations.get(message.generation_id) : null;
    if (!generation) return `${message.id}:${message.status}:${message.content.length}:${message.suggested_prompt || ""}`;
    const selected = (generation.outputs || []).some((asset) => asset.id === this.store.selectedAssetId);
    return [
      generation.status,
      generation.cancel_requested,
      (generation.outputs || []).length,
      generation.error ? generation.error.code : "",
      selected ? this.store.selectedAssetId : "",
      this.store.step(generation.id),
      generation.prompt_method || "",
      generation.attempt,
    ].join("|");
  }

  renderMessage(message) {
    if (message.role === "user") return this.renderUser(message);
    if (message.type === "code" && this.actions.codeTurn) return this.actions.codeTurn(message);
    const generation = message.generation_id ? this.store.generations.get(message.generation_id) : null;
    if (!generation && message.generation_id) return this.renderReply(message);
    if (!generation) {
      return h("li", { class: "turn turn-assistant", dataset: { messageId: message.id } }, h("div", { class: "turn-card" }, h("p", { class: "turn-text", text: message.content })));
    }
    return this.renderGeneration(message, generation);
  }

  /** A text answer: streaming while its job runs, then the stored answer and any suggested prompt. */
  renderReply(message) {
    const status = message.status || "succeeded";
    const generationId = message.generation_id;
    const header = h(
      "div",
      { class: "turn-head" },
      h("span", { class: "turn-step" }, "Answer"),
      h("span", { class: `badge ${STATUS_BADGES[status] || ""}` }, status === "processing" ? "Writing" : STATUS_LABELS[status] || status),
    );
    let body;
    if (status === "succeeded") body = this.renderAnswer(message);
    else if (status === "failed" || status === "canceled") body = this.renderUnanswered(message, status);
    else {
      const streamed = this.store.replyText(generationId);
      const cancel = h("button", { type: "button", class: "button button-small", dataset: { turnAction: "cancel" }, on: { click: () => this.actions.cancelReply(generationId) } }, "Cancel");
      body = h(
        "div",
        { class: "turn-running" },
        h("p", { class: "turn-text turn-reply-text", dataset: { replyText: "" }, text: streamed }),
        h("p", { class: "turn-progress-text", dataset: { replyState: "" } }, streamed ? "Writing…" : status === "queued" ? "Waiting in the queue…" : "Thinking…"),
        h("div", { class: "turn-actions" }, cancel),
      );
    }
    return h(
      "li",
      {
        class: `turn turn-assistant turn-reply turn-${status}`,
        tabindex: "-1",
        dataset: { messageId: message.id, replyId: generationId, status },
        "aria-label": `Answer: ${STATUS_LABELS[status] || status}`,
      },
      h("div", { class: "turn-card" }, header, body),
    );
  }

  renderAnswer(message) {
    const source = message.by_ai === false ? "Not an AI answer: no language model is configured" : message.model ? `By ${message.model}` : null;
    const suggestion = message.suggested_prompt
      ? h(
          "div",
          { class: "turn-suggestion", dataset: { suggestedPrompt: "" } },
          h("p", { class: "turn-suggestion-label" }, "Suggested prompt"),
          h("p", { class: "turn-text", dataset: { suggestedPromptText: "" }, text: message.suggested_prompt }),
          h(
            "div",
            { class: "turn-actions" },
            h("button", { type: "button", class: "button button-small button-primary", dataset: { turnAction: "send-suggestion" }, on: { click: () => this.actions.sendPrompt(message.suggested_prompt) } }, "Send this prompt"),
            h("button", { type: "button", class: "button button-small", dataset: { turnAction: "edit-suggestion" }, on: { click: () => this.actions.usePrompt(message.suggested_prompt) } }, "Edit first"),
          ),
        )
      : null;
    return h(
      "div",
      { class: "turn-result" },
      h("p", { class: "turn-text turn-reply-text", dataset: { replyText: "" }, text: message.content }),
      suggestion,
      source ? h("p", { class: "turn-facts" }, source) : null,
    );
  }

  renderUnanswered(message, status) {
    const question = this.store.messages.find((candidate) => candidate.id === message.parent_message_id);
    const reason = h("p", { class: "turn-reason", dataset: { replyReason: "" } }, status === "failed" ? "The language model could not answer this question." : "This question was canceled.");
    if (status === "failed" && this.actions.replyError) {
      // The job's error says why (a refusal, a rate limit that outlasted its retries, ...).
      this.actions
        .replyError(message.generation_id)
        .then((error) => {
          if (error && error.message) reason.textContent = `${error.message} (${error.code})`;
        })
        .catch(() => {});
    }
    return h(
      "div",
      { class: status === "failed" ? "turn-error" : "turn-canceled-note" },
      reason,
      question && question.content
        ? h("div", { class: "turn-actions" }, h("button", { type: "button", class: "button button-small", dataset: { turnAction: "ask-again" }, on: { click: () => this.actions.ask(question.content) } }, "Ask again"))
        : null,
    );
  }

  /** A reply's text grew: update it in place (no rebuild, so nothing loses focus). */
  updateReply(generationId) {
    const node = this.root.querySelector(`[data-reply-id="${generationId}"]`);
    const text = node && node.querySelector("[data-reply-text]");
    if (!text || node.dataset.status === "succeeded") return;
    const stick = this.nearBottom();
    text.textContent = this.store.replyText(generationId);
    const state = node.querySelector("[data-reply-state]");
    if (state) state.textContent = "Writing…";
    if (stick) this.scrollToEnd();
  }

  renderUser(message) {
    const attachments = (message.attachments || []).map((asset) =>
      h("img", { class: "turn-attachment", src: asset.thumbnail_url, alt: "Attached image", loading: "lazy" }),
    );
    return h(
      "li",
      { class: "turn turn-user", dataset: { messageId: message.id } },
      h(
        "div",
        { class: "turn-bubble" },
        message.content
          ? h("p", { class: "turn-text", text: message.content })
          : h("p", { class: "turn-text turn-text-muted" }, this.describeRequest(message)),
        attachments.length ? h("div", { class: "turn-attachments" }, attachments) : null,
        h("time", { class: "turn-time", datetime: message.created_at, title: absoluteTime(message.created_at) }, relativeTime(message.created_at)),
      ),
    );
  }

  /** Words for a turn sent without a prompt: an upscale or a variation says what it did. */
  describeRequest(message) {
    const requested = this.requested(message);
    if (!requested) return "(no prompt)";
    return originLabel(requested, this.store) || typeLabel(requested);
  }

  renderGeneration(message, generation) {
    const step = this.store.step(generation.id);
    const origin = originLabel(generation, this.store);
    const header = h(
      "div",
      { class: "turn-head" },
      h("span", { class: "turn-step" }, `Step ${step}`),
      h("span", { class: "turn-type" }, typeLabel(generation), origin ? ` · ${origin}` : ""),
      h("span", { class: `badge ${STATUS_BADGES[generation.status] || ""}` }, STATUS_LABELS[generation.status] || generation.status),
    );
    let body;
    if (generation.status === "succeeded") body = this.renderOutputs(generation);
    else if (generation.status === "failed" || generation.status === "canceled") body = this.renderStopped(generation);
    else body = this.renderRunning(generation);
    return h(
      "li",
      {
        class: `turn turn-assistant turn-${generation.status}`,
        id: `turn-${generation.id}`,
        tabindex: "-1",
        dataset: { messageId: message.id, generationId: generation.id, status: generation.status },
        "aria-label": `Step ${step}: ${STATUS_LABELS[generation.status] || generation.status}`,
      },
      h("div", { class: "turn-card" }, header, message.content ? h("p", { class: "turn-text", text: message.content }) : null, this.renderSentPrompt(generation), body),
    );
  }

  /** The prompt the provider was sent, when it is not the one written: how it was made, to copy or edit. */
  renderSentPrompt(generation) {
    const sent = generation.enhanced_prompt;
    if (!sent) return null;
    const plan = generation.prompt_plan || {};
    const how = generation.prompt_method === "language_model" ? `written by ${plan.model || "the language model"}` : "the prompt with its options";
    const fallback = plan.failure ? h("p", { class: "turn-note" }, `The language model was not used: ${plan.failure.message}`) : null;
    const copy = h("button", { type: "button", class: "button button-small", on: { click: () => copyText(sent, copy) } }, "Copy");
    return h(
      "details",
      { class: "turn-sent", dataset: { sentPrompt: generation.prompt_method || "" } },
      h("summary", {}, `Sent prompt (${how})`),
      h("p", { class: "turn-text", dataset: { sentPromptText: "" }, text: sent }),
      fallback,
      h(
        "div",
        { class: "turn-actions" },
        copy,
        h("button", { type: "button", class: "button button-small", on: { click: () => this.actions.usePrompt(sent) } }, "Edit as the next prompt"),
      ),
    );
  }

  renderRunning(generation) {
    const { step = 0, total = 0 } = generation.progress || {};
    const progress = h("progress", { class: "progress", max: String(Math.max(total, 1)), dataset: { progress: "" }, "aria-label": "Progress" });
    if (total > 0) progress.value = Math.min(step, total);
    else progress.removeAttribute("value"); // indeterminate until the first step
    const tiles = previewTiles(generation);
    const cancel = h(
      "button",
      { type: "button", class: "button button-small", dataset: { turnAction: "cancel" }, on: { click: () => this.actions.cancel(generation) } },
      generation.cancel_requested ? "Canceling…" : "Cancel",
    );
    cancel.disabled = Boolean(generation.cancel_requested);
    return h(
      "div",
      { class: "turn-running" },
      h("div", { class: "turn-tiles", dataset: { count: String(tiles.length) } }, tiles),
      h("div", { class: "turn-progress" }, progress, h("span", { class: "turn-progress-text", dataset: { progressText: "" } }, runningText(generation))),
      h("div", { class: "turn-actions" }, cancel),
    );
  }

  renderOutputs(generation) {
    const entries = this.store.outputs().filter((entry) => entry.generation.id === generation.id);
    // One tab stop per step: the selected image, else the first; arrows move within (rovingFocus).
    const stop = entries.find((entry) => entry.asset.id === this.store.selectedAssetId) || entries[0];
    const grid = h(
      "div",
      { class: "turn-images", dataset: { count: String(Math.min(entries.length, 4)) } },
      entries.map((entry) => {
        const selected = entry.asset.id === this.store.selectedAssetId;
        return h(
          "button",
          {
            type: "button",
            class: "turn-image",
            "aria-pressed": selected ? "true" : "false",
            tabindex: entry === stop ? "0" : "-1",
            "aria-label": `${outputLabel(entry)}. Select to view and iterate from it`,
            dataset: { assetId: entry.asset.id },
            on: { click: () => this.actions.select(entry.asset.id) },
          },
          h("img", { src: entry.asset.thumbnail_url, alt: "", loading: "lazy", decoding: "async", width: entry.asset.width, height: entry.asset.height }),
        );
      }),
    );
    const facts = [generation.model, generation.duration_ms ? formatDuration(generation.duration_ms) : null].filter(Boolean).join(" · ");
    const remove = h(
      "button",
      { type: "button", class: "button button-small button-danger-quiet", dataset: { turnAction: "delete" }, on: { click: () => this.actions.remove(generation) } },
      "Delete step",
    );
    return h(
      "div",
      { class: "turn-result" },
      grid,
      entries.length === 0 ? h("p", { class: "turn-note" }, "This step produced no images.") : null,
      facts ? h("p", { class: "turn-facts" }, facts) : null,
      h("div", { class: "turn-actions" }, remove),
    );
  }

  renderStopped(generation) {
    const failed = generation.status === "failed";
    const failure = plainFailure(failed ? generation.error : null);
    const reason = failed ? failure.text : "This step was canceled.";
    const secondary = failed && (failure.detail || failure.code)
      ? h("p", { class: "turn-code" }, [failure.detail, failure.code ? `Code: ${failure.code}` : null].filter(Boolean).join(" · "))
      : null;
    return h(
      "div",
      { class: failed ? "turn-error" : "turn-canceled-note" },
      h("p", { class: "turn-reason" }, reason),
      secondary,
      h(
        "div",
        { class: "turn-actions" },
        generation.error && generation.error.retriable === false
          ? null
          : h("button", { type: "button", class: "button button-small", dataset: { turnAction: "retry" }, on: { click: () => this.actions.retry(generation) } }, "Retry"),
        h(
          "button",
          { type: "button", class: "button button-small button-danger-quiet", dataset: { turnAction: "delete" }, on: { click: () => this.actions.remove(generation) } },
          "Delete step",
        ),
      ),
    );
  }

  updateProgress(generationId) {
    const generation = this.store.generations.get(generationId);
    const node = this.root.querySelector(`[data-generation-id="${generationId}"]`);
    if (!generation || !node || isFinal(generation)) return;
    const bar = node.querySelector("[data-progress]");
    const text = node.querySelector("[data-progress-text]");
    const { step = 0, total = 0 } = generation.progress || {};
    if (bar && total > 0) {
      bar.max = total;
      bar.value = Math.min(step, total);
    }
    if (text) text.textContent = runningText(generation);
    for (const label of node.querySelectorAll("[data-image-progress]")) {
      label.textContent = `${Math.round(imageFraction(generation, Number(label.dataset.imageProgress)) * 100)} %`;
    }
  }

  /** A new intermediate picture: the running turn's tiles show it. */
  updatePreviews(generationId) {
    const generation = this.store.generations.get(generationId);
    const tiles = this.root.querySelector(`[data-generation-id="${generationId}"] .turn-tiles`);
    if (generation && tiles && !isFinal(generation)) tiles.replaceChildren(...previewTiles(generation));
  }

  focusGeneration(generationId) {
    const node = document.getElementById(`turn-${generationId}`);
    if (node) {
      node.scrollIntoView({ block: "nearest", behavior: "smooth" });
      node.focus({ preventScroll: true });
    }
  }
}

function runningText(generation) {
  const left = generation.status === "processing" && !generation.cancel_requested ? timeLeft(generation) : null;
  return left ? `${progressText(generation)} · ${left}` : progressText(generation);
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
}

function restoreFocus(node, previous) {
  const key = previous.dataset && (previous.dataset.turnAction || previous.dataset.assetId);
  if (!key) return;
  const match = node.querySelector(`[data-turn-action="${key}"], [data-asset-id="${key}"]`);
  if (match && !match.disabled) match.focus();
  else node.focus();
}
