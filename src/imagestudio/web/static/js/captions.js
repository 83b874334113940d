// "Describe": a caption of the selected image, written by the server's language model (or measured by
// the built-in describer, which says so), shown beside the image with a way to use it as the prompt.

import { api, describeError } from "./api.js";
import { $, announce, h, setBusy } from "./ui.js";

const FINAL = new Set(["succeeded", "failed", "canceled"]);
// The caption job runs in the generations queue; its status is read until it ends, for at most this long.
const POLL_MS = 400;
const GIVE_UP_MS = 180_000;

export class CaptionPanel {
  /** actions: { usePrompt(text) } */
  constructor(root, actions) {
    this.root = root;
    this.actions = actions;
    this.assetId = null;
    this.caption = null;
    this.run = 0;
    root.addEventListener("click", (event) => {
      if (event.target.closest("[data-caption-action='use']") && this.caption && this.caption.text) {
        this.actions.usePrompt(this.caption.text);
      }
    });
  }

  /** Forget what was shown: a different image is selected. */
  reset(assetId) {
    if (assetId === this.assetId) return;
    this.assetId = assetId;
    this.caption = null;
    this.run += 1;
    this.root.hidden = true;
    this.root.replaceChildren();
  }

  async describe(assetId, button) {
    this.reset(assetId);
    const run = ++this.run;
    setBusy(button, true);
    this.render({ status: "queued" });
    try {
      let caption = await api.post(`/assets/${assetId}/captions`, { style: "prompt" });
      const started = Date.now();
      while (!FINAL.has(caption.status) && Date.now() - started < GIVE_UP_MS) {
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        if (run !== this.run) return;
        const page = await api.get(`/assets/${assetId}/captions?limit=1`);
        caption = page.items.find((item) => item.id === caption.id) || caption;
      }
      if (run !== this.run) return;
      this.render(caption);
      if (caption.status === "succeeded") announce("The description is ready.");
    } catch (error) {
      if (run === this.run) this.render({ status: "failed", error: { message: describeError(error) } });
    } finally {
      setBusy(button, false);
    }
  }

  render(caption) {
    this.caption = caption;
    this.root.hidden = false;
    if (!FINAL.has(caption.status)) {
      this.root.replaceChildren(h("p", { class: "caption-text caption-pending" }, "Describing the image…"));
      return;
    }
    if (caption.status !== "succeeded") {
      const reason = caption.error && caption.error.message ? caption.error.message : "It was canceled.";
      this.root.replaceChildren(h("p", { class: "caption-text caption-error", role: "alert" }, `No description: ${reason}`));
      return;
    }
    const source = caption.by_ai === false ? "Measured by the built-in describer (not an AI model)" : `By ${caption.model}`;
    this.root.replaceChildren(
      h("p", { class: "caption-text", "data-caption-text": "" }, caption.text),
      h(
        "div",
        { class: "caption-footer" },
        h("span", { class: "caption-source" }, source),
        h("button", { type: "button", class: "button button-small", dataset: { captionAction: "use" } }, "Use as prompt"),
      ),
    );
  }
}

export function captionPanel(root, actions) {
  return new CaptionPanel($("[data-viewer-caption]", root), actions);
}
