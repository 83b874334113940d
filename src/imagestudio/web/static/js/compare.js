// Two images compared in the full-screen viewer: a before/after slider (the "after" image drawn over the
// "before" one from the divider to the right edge; the divider is a range input, so arrow keys, Home and End
// move it, and dragging on the picture moves it too) or the two side by side.

import { shortStepLabel } from "./describe.js";
import { h } from "./ui.js";

const KEY_STEP = 5;

/** One side of a comparison: { url, label, width, height }. */
export class Compare {
  constructor() {
    this.mode = "slider";
    this.before = null;
    this.after = null;
    this.dragging = false;

    this.beforeImage = h("img", { class: "compare-image", alt: "", draggable: "false" });
    this.afterImage = h("img", { class: "compare-image compare-after", alt: "", draggable: "false" });
    this.divider = h("div", { class: "compare-divider", "aria-hidden": "true" });
    this.frame = h("div", { class: "compare-frame", dataset: { compareFrame: "" } }, this.beforeImage, this.afterImage, this.divider);
    this.range = h("input", {
      type: "range",
      class: "compare-range",
      min: "0",
      max: "100",
      step: "1",
      value: "50",
      dataset: { compareRange: "" },
    });
    this.beforeLabel = h("span", { class: "compare-label" });
    this.afterLabel = h("span", { class: "compare-label" });
    this.slider = h(
      "div",
      { class: "compare-slider", dataset: { compareSlider: "" } },
      this.frame,
      h("div", { class: "compare-controls" }, this.beforeLabel, this.range, this.afterLabel),
    );
    this.sideBefore = h("img", { class: "compare-side-image", alt: "" });
    this.sideAfter = h("img", { class: "compare-side-image", alt: "" });
    this.sideBeforeCaption = h("figcaption", {});
    this.sideAfterCaption = h("figcaption", {});
    this.side = h(
      "div",
      { class: "compare-side", dataset: { compareSide: "" } },
      h("figure", { class: "compare-figure" }, this.sideBefore, this.sideBeforeCaption),
      h("figure", { class: "compare-figure" }, this.sideAfter, this.sideAfterCaption),
    );
    this.root = h("div", { class: "lightbox-compare", dataset: { compare: "" }, hidden: true }, this.slider, this.side);

    this.range.addEventListener("input", () => this.renderDivider());
    this.range.addEventListener("keydown", (event) => {
      // Larger steps than the browser's 1 %, so a few presses cross the picture.
      const delta = { ArrowLeft: -KEY_STEP, ArrowDown: -KEY_STEP, ArrowRight: KEY_STEP, ArrowUp: KEY_STEP }[event.key];
      if (delta === undefined) return;
      event.preventDefault();
      this.setPosition(Number(this.range.value) + delta);
    });
    this.frame.addEventListener("pointerdown", (event) => {
      this.dragging = true;
      this.frame.setPointerCapture(event.pointerId);
      this.followPointer(event);
    });
    this.frame.addEventListener("pointermove", (event) => this.dragging && this.followPointer(event));
    for (const type of ["pointerup", "pointercancel"]) this.frame.addEventListener(type, () => (this.dragging = false));
    new ResizeObserver(() => this.active() && this.fit()).observe(this.root);
  }

  active() {
    return !this.root.hidden;
  }

  /** Shows `before` and `after` ({ url, label, width, height }) in `mode` ("slider" or "side"). */
  show(before, after, mode = this.mode) {
    this.before = before;
    this.after = after;
    this.mode = mode;
    this.root.hidden = false;
    this.slider.hidden = mode !== "slider";
    this.side.hidden = mode !== "side";
    for (const [image, side] of [
      [this.beforeImage, before],
      [this.afterImage, after],
      [this.sideBefore, before],
      [this.sideAfter, after],
    ]) {
      if (image.getAttribute("src") !== side.url) image.src = side.url;
    }
    this.sideBefore.alt = before.label;
    this.sideAfter.alt = after.label;
    this.sideBeforeCaption.textContent = before.label;
    this.sideAfterCaption.textContent = after.label;
    this.beforeLabel.textContent = before.label;
    this.afterLabel.textContent = after.label;
    this.range.setAttribute("aria-label", `Divider between ${before.label} (left) and ${after.label} (right)`);
    this.renderDivider();
    this.fit();
  }

  hide() {
    this.root.hidden = true;
    this.before = null;
    this.after = null;
  }

  setPosition(percent) {
    this.range.value = String(Math.max(0, Math.min(100, Math.round(percent))));
    this.renderDivider();
  }

  position() {
    return Number(this.range.value);
  }

  followPointer(event) {
    const box = this.frame.getBoundingClientRect();
    if (box.width > 0) this.setPosition(((event.clientX - box.left) / box.width) * 100);
  }

  renderDivider() {
    const value = this.position();
    this.afterImage.style.clipPath = `inset(0 0 0 ${value}%)`;
    this.divider.style.left = `${value}%`;
    this.range.setAttribute("aria-valuetext", `${100 - value} % of ${this.after ? this.after.label : "after"} shown`);
  }

  /** The slider's picture takes the largest box of the after image's shape that fits the space left. */
  fit() {
    if (this.mode !== "slider" || !this.after) return;
    const controls = this.slider.querySelector(".compare-controls");
    const width = this.slider.clientWidth;
    const height = this.slider.clientHeight - controls.offsetHeight;
    const scale = Math.min(width / this.after.width, height / this.after.height);
    if (!(scale > 0)) return;
    this.frame.style.width = `${Math.floor(this.after.width * scale)}px`;
    this.frame.style.height = `${Math.floor(this.after.height * scale)}px`;
  }
}

/** The image an output was made from (img2img, inpaint, upscale, variation), as a side; null for a text prompt. */
export function sourceSide(entry, store) {
  const input = (entry.generation.inputs || []).find((candidate) => candidate.role === "init");
  if (!input) return null;
  const parent = store.findAsset(input.asset_id);
  if (parent) return outputSide(parent, "Source, step");
  // An upload: its size is unknown here, and the slider takes the output's shape anyway.
  const { width, height } = entry.asset;
  return { key: "source", url: `/api/v1/assets/${input.asset_id}/content`, label: "Source, your image", width, height };
}

export function outputSide(entry, prefix = "Step") {
  const { asset } = entry;
  return { key: asset.id, url: asset.content_url, label: `${prefix} ${shortStepLabel(entry)}`, width: asset.width, height: asset.height };
}
