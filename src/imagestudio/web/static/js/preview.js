// Work in progress: the intermediate pictures a provider sends while it renders (progress events that carry
// a preview), each image's own progress, and an estimate of the time left from the pace so far.

import { progressText } from "./describe.js";
import { formatDuration, h } from "./ui.js";

const MAX_TILES = 4;
// Intermediate pictures asked for per image (the API's `partial_images`, at most 3).
const PREVIEWS_PER_IMAGE = 3;
// Below this many observed steps the pace says little; no estimate is shown yet.
const MIN_STEPS_FOR_ESTIMATE = 2;

/** A chat turn that asks providers able to show their work for intermediate pictures. */
export function withPreviews(turn) {
  const params = turn.params || {};
  return { ...turn, params: { ...params, extra: { partial_images: PREVIEWS_PER_IMAGE, ...(params.extra || {}) } } };
}

/** The preview picture's address: the generation's current attempt, by the number the event gave it. */
export function previewUrl(generationId, number) {
  return `/api/v1/generations/${generationId}/previews/${number}`;
}

/**
 * How far image `index` of the batch is, from 0 to 1. A provider that renders the batch one image after
 * another says which image each step belongs to (`image`), and its total counts the steps of every image;
 * one that renders them together reports shared steps, which are every image's.
 */
export function imageFraction(generation, index) {
  const { step = 0, total = 0, image = null } = generation.progress || {};
  if (!total) return 0;
  if (image === null || image === undefined) return Math.min(1, step / total);
  if (index !== image) return index < image ? 1 : 0;
  const share = total / (generation.num_images || 1);
  return Math.max(0, Math.min(1, (step - index * share) / share));
}

/** "about 20 s left", from the pace of the steps seen on this page (their events' times); null until there is one. */
export function timeLeft(generation) {
  const pace = generation.pace;
  const { step = 0, total = 0, at = 0 } = generation.progress || {};
  if (!pace || !total || step - pace.step < MIN_STEPS_FOR_ESTIMATE || step >= total || !(at > pace.at)) return null;
  const perStep = (at - pace.at) / (step - pace.step);
  return `about ${formatDuration(Math.max(1000, perStep * (total - step)))} left`;
}

/** The running turn's tiles: one per image (up to four), its latest preview or a skeleton, and its progress. */
export function previewTiles(generation) {
  const count = Math.min(generation.num_images || 1, MAX_TILES);
  const previews = generation.previews || {};
  return Array.from({ length: count }, (_, index) => {
    const preview = previews[index];
    const percent = Math.round(imageFraction(generation, index) * 100);
    return h(
      "div",
      { class: preview ? "turn-tile turn-tile-preview" : "turn-tile skeleton", dataset: { previewTile: String(index) } },
      preview ? h("img", { src: previewUrl(generation.id, preview.number), alt: `Image ${index + 1} so far`, width: preview.width, height: preview.height }) : null,
      h("span", { class: "turn-tile-progress", dataset: { imageProgress: String(index) } }, `${percent} %`),
    );
  });
}

/** The stage while nothing is finished yet: the newest preview, the progress and the time left. Updated in
 * place, so the picture is not reloaded at every step. */
export class LivePreview {
  constructor(store) {
    this.store = store;
    this.image = h("img", { class: "viewer-live-image", alt: "The image so far" });
    this.skeleton = h("div", { class: "viewer-placeholder skeleton" });
    this.text = h("p", {});
    this.bar = h("progress", { class: "progress", "aria-hidden": "true" });
    this.caption = h("div", { class: "viewer-placeholder-text" }, this.text, this.bar);
    this.node = h("div", { class: "viewer-live", dataset: { livePreview: "" } }, this.skeleton, this.image, this.caption);
    this.shown = null;
  }

  render(generation) {
    const previews = Object.values(generation.previews || {});
    const newest = previews.sort((a, b) => b.number - a.number)[0];
    const key = newest ? `${generation.id}/${newest.number}` : null;
    if (key !== this.shown) {
      this.shown = key;
      if (newest) {
        this.image.width = newest.width;
        this.image.height = newest.height;
        this.image.src = previewUrl(generation.id, newest.number);
      } else this.image.removeAttribute("src");
    }
    this.image.hidden = !newest;
    this.skeleton.hidden = Boolean(newest);
    this.caption.className = newest ? "viewer-live-text" : "viewer-placeholder-text";
    const { step = 0, total = 0 } = generation.progress || {};
    const left = timeLeft(generation);
    this.text.textContent = left ? `${progressText(generation)} · ${left}` : progressText(generation);
    this.bar.hidden = !total;
    if (total) {
      this.bar.max = total;
      this.bar.value = Math.min(step, total);
    }
    return this.node;
  }
}
