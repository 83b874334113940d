// A batch on the stage: when the newest step made several images and none has been picked yet, the viewer
// shows them all side by side instead of quietly showing image 1 as "the latest".

import { outputLabel } from "./describe.js";
import { h, rovingFocus } from "./ui.js";

export class ContactSheet {
  /** actions: { select(assetId) } picks one image of the batch (it then takes the whole stage). */
  constructor(frame, store, actions) {
    this.store = store;
    this.actions = actions;
    this.root = h("div", { class: "contact-sheet", dataset: { contactSheet: "" }, hidden: true });
    frame.append(this.root);
    rovingFocus(this.root, ".contact-sheet-image", ".contact-sheet-grid");
    this.signature = "";
  }

  /** The batch the stage should show as a sheet now, or null: the selection follows the latest output of a batch. */
  batch() {
    const entry = this.store.selected();
    if (!entry || this.store.pinned || entry.count < 2) return null;
    return this.store.outputs().filter((candidate) => candidate.generation.id === entry.generation.id);
  }

  /** Shows the sheet when there is a batch to show; answers whether it is shown. */
  render() {
    const entries = this.batch();
    this.root.hidden = !entries;
    if (!entries) {
      this.signature = "";
      return false;
    }
    const signature = entries.map((entry) => entry.asset.id).join("|");
    if (signature === this.signature) return true;
    this.signature = signature;
    const { step } = entries[0];
    this.root.replaceChildren(
      h("p", { class: "contact-sheet-title", id: "contact-sheet-title" }, `Step ${step}: ${entries.length} images. Pick one to look at it closely and iterate from it.`),
      h(
        "div",
        { class: "contact-sheet-grid", role: "group", "aria-labelledby": "contact-sheet-title", dataset: { count: String(Math.min(entries.length, 4)) } },
        entries.map((entry, index) =>
          h(
            "button",
            {
              type: "button",
              class: "contact-sheet-image",
              tabindex: index === 0 ? "0" : "-1",
              "aria-label": outputLabel(entry),
              dataset: { assetId: entry.asset.id },
              on: { click: () => this.actions.select(entry.asset.id) },
            },
            h("img", { src: entry.asset.thumbnail_url, alt: "", width: entry.asset.width, height: entry.asset.height, decoding: "async" }),
          ),
        ),
      ),
    );
    return true;
  }
}
