// The large viewer: the selected image, its facts as badges, and what can be done with it.

import { sourceSide } from "./compare.js";
import { ContactSheet } from "./contact-sheet.js";
import { downloadName, downloadUrl, outputLabel, typeLabel } from "./describe.js";
import { LivePreview } from "./preview.js";
import { $, formatDuration, h } from "./ui.js";

export class Viewer {
  /**
   * actions: { fullscreen(entry, opener, options), iterate(entry), mask(entry), variation(entry), upscale(entry, factor),
   *   describe(entry, button), shown(entry), abilities(), select(assetId) }
   * abilities() -> { mask: bool, variation: bool, upscaleFactors: [2, 4] } for the current provider.
   */
  constructor(root, store, actions) {
    this.root = root;
    this.store = store;
    this.actions = actions;
    this.image = $("[data-viewer-image]", root);
    this.empty = $("[data-viewer-empty]", root);
    this.meta = $("[data-viewer-meta]", root);
    this.toolbar = $("[data-viewer-actions]", root);
    this.upscaleGroup = $("[data-upscale-group]", root);
    this.download = $('[data-image-action="download"]', root);
    this.shownAssetId = null;
    this.masking = false;

    this.frame = $("[data-viewer-frame]", root);
    this.sheet = new ContactSheet(this.frame, store, { select: (assetId) => this.actions.select(assetId) });
    this.preview = new LivePreview(store);
    // The picture is sized from the asset's dimensions, so its box is right before any byte arrives and
    // does not jump when the sharp image replaces the thumbnail.
    new ResizeObserver(() => this.fit()).observe(this.frame);
    this.toolbar.addEventListener("click", (event) => {
      const button = event.target.closest("[data-image-action]");
      const entry = this.store.selected();
      if (!button || !entry || button.dataset.imageAction === "download") return;
      const action = button.dataset.imageAction;
      if (action === "fullscreen") this.actions.fullscreen(entry, button);
      else if (action === "compare") this.actions.fullscreen(entry, button, { compare: this.compareTarget(entry) });
      else if (action === "iterate") this.actions.iterate(entry);
      else if (action === "mask") this.actions.mask(entry);
      else if (action === "variation") this.actions.variation(entry);
      else if (action === "upscale") this.actions.upscale(entry, Number(button.dataset.factor));
      else if (action === "describe") this.actions.describe(entry, button);
    });
    // Click or Enter on the image opens it full screen (not while painting a mask: the canvas covers it then).
    this.image.addEventListener("click", () => this.store.selected() && this.actions.fullscreen(this.store.selected(), this.image));
    this.image.addEventListener("keydown", (event) => {
      if ((event.key === "Enter" || event.key === " ") && this.store.selected()) {
        event.preventDefault();
        this.actions.fullscreen(this.store.selected(), this.image);
      }
    });
    store.on("change", () => this.render());
    store.on("progress", () => {
      if (!this.store.selected()) this.renderPlaceholder();
    });
    store.on("preview", () => {
      if (!this.store.selected()) this.renderPlaceholder();
    });
  }

  setMasking(masking) {
    this.masking = masking;
    this.render();
  }

  render() {
    const entry = this.store.selected();
    if (!entry) {
      this.actions.shown(null);
      this.shownAssetId = null;
      this.image.hidden = true;
      this.image.removeAttribute("src");
      this.toolbar.hidden = true;
      this.meta.replaceChildren();
      this.renderPlaceholder();
      return;
    }
    this.empty.hidden = true;
    if (this.sheet.render()) {
      // A batch nobody has picked from yet: all of it, and nothing that would act on one image silently.
      this.actions.shown(null);
      this.shownAssetId = null;
      this.image.hidden = true;
      this.toolbar.hidden = true;
      this.meta.replaceChildren();
      return;
    }
    this.image.hidden = false;
    if (this.shownAssetId !== entry.asset.id) {
      this.shownAssetId = entry.asset.id;
      this.show(entry);
    }
    this.renderMeta(entry);
    this.renderActions(entry);
    this.actions.shown(entry);
  }

  /** The thumbnail at once (usually cached already), the full image as soon as it has decoded. */
  show(entry) {
    const { asset } = entry;
    this.fit();
    this.image.alt = `${outputLabel(entry)}: ${entry.generation.prompt || "image"}`;
    this.image.src = asset.thumbnail_url;
    this.root.classList.add("viewer-loading");
    const full = new Image();
    full.src = asset.content_url;
    full
      .decode()
      .catch(() => {})
      .then(() => {
        if (this.shownAssetId !== asset.id) return;
        this.image.src = asset.content_url;
        this.root.classList.remove("viewer-loading");
      });
  }

  fit() {
    const entry = this.store.selected();
    if (!entry) return;
    const frame = window.getComputedStyle(this.frame);
    const available = this.frame.clientWidth - parseFloat(frame.paddingLeft) - parseFloat(frame.paddingRight);
    const tallest = parseFloat(window.getComputedStyle(this.image).maxHeight) || available;
    const { width, height } = entry.asset;
    const scale = Math.min(available / width, tallest / height);
    if (!(scale > 0)) return;
    this.image.style.width = `${Math.floor(width * scale)}px`;
    this.image.style.height = `${Math.floor(height * scale)}px`;
  }

  renderPlaceholder() {
    this.empty.hidden = false;
    this.sheet.render();
    const running = this.store.running()[0];
    if (running) {
      const node = this.preview.render(running);
      if (node.parentNode !== this.empty || this.empty.childElementCount !== 1) this.empty.replaceChildren(node);
      return;
    }
    const text = this.store.generations.size > 0 ? "No images yet." : "Your images will appear here.";
    this.empty.replaceChildren(h("div", { class: "viewer-placeholder" }), h("div", { class: "viewer-placeholder-text" }, h("p", {}, text)));
  }

  /** What "Compare" opens with: the image's source, else the output before it. */
  compareTarget(entry) {
    if (sourceSide(entry, this.store)) return "source";
    const outputs = this.store.outputs();
    const index = outputs.findIndex((candidate) => candidate.asset.id === entry.asset.id);
    const other = outputs[index - 1] || outputs[index + 1];
    return other ? other.asset.id : "";
  }

  renderMeta(entry) {
    const { asset, generation } = entry;
    const badge = (key, value, extra = "") =>
      value === null || value === undefined || value === ""
        ? null
        : h("span", { class: `badge ${extra}` }, h("span", { class: "badge-key" }, key), ` ${value}`);
    const seed = asset.seed ?? (generation.params ? generation.params.seed : null);
    const badges = h(
      "div",
      { class: "viewer-badges" },
      h("span", { class: "badge badge-accent" }, outputLabel(entry)),
      badge("Model", generation.model),
      badge("Size", `${asset.width}×${asset.height}`),
      badge("Seed", seed),
      badge("Type", typeLabel(generation)),
      badge("Time", generation.duration_ms ? formatDuration(generation.duration_ms) : null),
    );
    // An upscale or a variation has no prompt; replaceChildren would print the missing one as "null".
    const prompt = generation.prompt ? h("p", { class: "viewer-prompt", title: generation.enhanced_prompt || generation.prompt }, generation.prompt) : null;
    this.meta.replaceChildren(...[badges, prompt].filter(Boolean));
  }

  renderActions(entry) {
    const abilities = this.actions.abilities(entry);
    this.toolbar.hidden = this.masking;
    $('[data-image-action="mask"]', this.toolbar).hidden = !abilities.mask;
    $('[data-image-action="variation"]', this.toolbar).hidden = !abilities.variation;
    $('[data-image-action="compare"]', this.toolbar).hidden = !this.compareTarget(entry);
    // Offer only upscales that stay within the size limit.
    const longest = Math.max(entry.asset.width, entry.asset.height);
    const factors = abilities.upscaleFactors.filter((factor) => !abilities.maxSide || longest * factor <= abilities.maxSide);
    this.upscaleGroup.replaceChildren(
      ...factors.map((factor) =>
        h("button", { type: "button", class: "button button-small", dataset: { imageAction: "upscale", factor: String(factor) } }, `Upscale ×${factor}`),
      ),
    );
    const title = this.store.session && this.store.session.title;
    this.download.href = downloadUrl(entry, title);
    this.download.setAttribute("download", downloadName(entry, title));
  }
}
