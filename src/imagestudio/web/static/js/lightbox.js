// The full-screen viewer: one output at a time with zoom (wheel, pinch, buttons, keys) and pan, the arrows
// through the session's outputs, everything that made the image with copy and reuse buttons, and a comparison
// with its source or another output.

import { composePrompt } from "./builder.js";
import { Compare, outputSide, sourceSide } from "./compare.js";
import { outputLabel, shortStepLabel, typeLabel } from "./describe.js";
import { $, announce, formatDuration, formatMoney, h, toast } from "./ui.js";

const ZOOM_STEP = 1.25;
const MAX_SCALE = 8;
const OPTION_NAMES = { shot_type: "Shot", camera_angle: "Angle", style: "Style", location: "Place", lighting: "Lighting", weather: "Weather" };

export class Lightbox {
  /** actions: { useSettings(entry), remix(entry) } fill the composer; duplicate(entry) sends the step again. */
  constructor(store, actions) {
    this.store = store;
    this.actions = actions;
    this.entry = null;
    this.opener = null;
    this.scale = 1;
    this.offset = { x: 0, y: 0 };
    this.pointers = new Map();
    this.build();
  }

  build() {
    const button = (label, action, extra = {}) =>
      h("button", { type: "button", class: "button button-small", dataset: { lightboxAction: action }, ...extra }, label);
    this.title = h("h2", { class: "lightbox-title", id: "lightbox-title" });
    this.zoomText = h("span", { class: "lightbox-zoom", "aria-live": "polite" });
    this.image = h("img", { class: "lightbox-image", alt: "", draggable: "false" });
    this.stage = h("div", { class: "lightbox-stage", dataset: { lightboxStage: "" } }, this.image);
    this.facts = h("dl", { class: "lightbox-facts", dataset: { lightboxFacts: "" } });
    this.compare = new Compare();
    this.compareWith = h("select", { class: "select select-compact", id: "lightbox-compare-with", dataset: { compareWith: "" } });
    this.compareWith.addEventListener("change", () => this.renderCompare());
    const modeButton = (label, mode) =>
      h("button", { type: "button", class: "segmented-button", "aria-pressed": mode === "slider" ? "true" : "false", dataset: { compareMode: mode } }, label);
    this.compareModes = h("div", { class: "segmented", role: "group", "aria-label": "Comparison" }, modeButton("Slider", "slider"), modeButton("Side by side", "side"));
    this.compareModes.addEventListener("click", (event) => {
      const mode = event.target.closest("[data-compare-mode]")?.dataset.compareMode;
      if (!mode) return;
      for (const button of this.compareModes.children) button.setAttribute("aria-pressed", String(button.dataset.compareMode === mode));
      this.compare.mode = mode;
      this.renderCompare();
    });
    this.dialog = h(
      "dialog",
      { class: "lightbox", "aria-labelledby": "lightbox-title" },
      h(
        "div",
        { class: "lightbox-bar" },
        this.title,
        h(
          "div",
          { class: "lightbox-tools", role: "toolbar", "aria-label": "Zoom and move" },
          button("Zoom out", "zoom-out"),
          this.zoomText,
          button("Zoom in", "zoom-in"),
          button("Fit", "fit"),
          button("100 %", "actual"),
          button("Previous", "previous"),
          button("Next", "next"),
          button("Close", "close", { class: "button button-small button-primary" }),
        ),
      ),
      h(
        "div",
        { class: "lightbox-body" },
        this.stage,
        this.compare.root,
        h(
          "aside",
          { class: "lightbox-panel", "aria-label": "How this image was made" },
          this.facts,
          h(
            "div",
            { class: "lightbox-compare-choice" },
            h("label", { for: "lightbox-compare-with" }, "Compare with"),
            this.compareWith,
            this.compareModes,
          ),
          h(
            "div",
            { class: "lightbox-copy" },
            button("Copy prompt", "copy-prompt"),
            button("Copy seed", "copy-seed"),
            button("Use these settings", "use-settings"),
            button("Remix", "remix"),
            button("Duplicate step", "duplicate"),
          ),
        ),
      ),
    );
    document.body.append(this.dialog);
    this.dialog.addEventListener("click", (event) => {
      const action = event.target.closest("[data-lightbox-action]")?.dataset.lightboxAction;
      if (action) this.act(action);
    });
    this.dialog.addEventListener("keydown", (event) => this.onKey(event));
    // Escape closes the dialog natively; focus goes back to what opened it.
    this.dialog.addEventListener("close", () => this.opener?.focus());
    this.stage.addEventListener("wheel", (event) => this.onWheel(event), { passive: false });
    this.stage.addEventListener("pointerdown", (event) => this.onPointerDown(event));
    this.stage.addEventListener("pointermove", (event) => this.onPointerMove(event));
    for (const type of ["pointerup", "pointercancel", "pointerleave"]) this.stage.addEventListener(type, (event) => this.pointers.delete(event.pointerId));
    new ResizeObserver(() => this.entry && this.dialog.open && this.render()).observe(this.stage);
  }

  /** compare: "source", another output's asset id, or "" for the image alone. */
  open(entry, opener = document.activeElement, { compare = "" } = {}) {
    this.opener = opener;
    this.dialog.showModal();
    this.show(entry, { compare });
  }

  show(entry, { compare = this.compareWith.value } = {}) {
    this.entry = entry;
    this.fillCompareChoices(entry, compare);
    this.title.textContent = `${outputLabel(entry)} · ${typeLabel(entry.generation)}`;
    this.image.src = entry.asset.content_url;
    this.image.alt = `${outputLabel(entry)}: ${entry.generation.prompt || typeLabel(entry.generation)}`;
    this.renderFacts(entry);
    this.renderCompare();
    this.fit();
  }

  /** What this image can be compared with: its source, and every other output of the session. */
  fillCompareChoices(entry, wanted) {
    const source = sourceSide(entry, this.store);
    const others = this.store.outputs().filter((other) => other.asset.id !== entry.asset.id);
    this.compareWith.replaceChildren(
      h("option", { value: "" }, "Nothing (this image alone)"),
      // replaceChildren would write a null out as the text "null": leave the source out instead.
      ...(source ? [h("option", { value: "source" }, source.label)] : []),
      ...others.map((other) => h("option", { value: other.asset.id }, outputSide(other).label)),
    );
    const offered = [...this.compareWith.options].some((option) => option.value === wanted);
    this.compareWith.value = offered ? wanted : "";
  }

  /** The other side of the comparison chosen, or null. */
  compareSide() {
    const wanted = this.compareWith.value;
    if (wanted === "source") return sourceSide(this.entry, this.store);
    const other = wanted ? this.store.findAsset(wanted) : null;
    return other ? outputSide(other) : null;
  }

  renderCompare() {
    const other = this.compareSide();
    this.compareModes.hidden = !other;
    this.stage.hidden = Boolean(other);
    this.zoomText.hidden = Boolean(other); // the zoom is the single image's
    for (const action of ["zoom-out", "zoom-in", "fit", "actual"]) $(`[data-lightbox-action="${action}"]`, this.dialog).disabled = Boolean(other);
    if (!other) {
      const wasComparing = this.compare.active();
      this.compare.hide();
      if (wasComparing) this.fit();
      return;
    }
    this.compare.show(other, outputSide(this.entry, "Step"));
  }

  /** The scale at which the whole image fits the stage. */
  fitScale() {
    if (this.stage.hidden) return this.scale;
    const { width, height } = this.entry.asset;
    return Math.min(this.stage.clientWidth / width, this.stage.clientHeight / height) || 1;
  }

  fit() {
    this.zoomTo(this.fitScale(), { reset: true });
  }

  /** Zooms to `scale`, keeping the point `around` (relative to the stage's centre) where it is. */
  zoomTo(scale, { around = { x: 0, y: 0 }, reset = false } = {}) {
    const next = Math.min(MAX_SCALE, Math.max(this.fitScale() / 4, scale));
    if (reset) this.offset = { x: 0, y: 0 };
    else {
      const ratio = next / this.scale;
      this.offset = { x: around.x - (around.x - this.offset.x) * ratio, y: around.y - (around.y - this.offset.y) * ratio };
    }
    this.scale = next;
    this.render();
  }

  render() {
    const { width, height } = this.entry.asset;
    this.image.style.width = `${width * this.scale}px`;
    this.image.style.height = `${height * this.scale}px`;
    this.image.style.transform = `translate(-50%, -50%) translate(${this.offset.x}px, ${this.offset.y}px)`;
    this.zoomText.textContent = `${Math.round(this.scale * 100)} %`;
  }

  move(delta) {
    const outputs = this.store.outputs();
    const index = outputs.findIndex((entry) => entry.asset.id === this.entry.asset.id);
    const next = outputs[index + delta];
    if (!next) return;
    this.show(next);
    announce(`${outputLabel(next)}, ${index + delta + 1} of ${outputs.length}.`);
  }

  act(action) {
    if (action === "zoom-in") this.zoomTo(this.scale * ZOOM_STEP);
    else if (action === "zoom-out") this.zoomTo(this.scale / ZOOM_STEP);
    else if (action === "fit") this.fit();
    else if (action === "actual") this.zoomTo(1);
    else if (action === "previous") this.move(-1);
    else if (action === "next") this.move(1);
    else if (action === "close") this.dialog.close();
    else if (action === "copy-prompt") this.copy(this.entry.generation.prompt, "Prompt");
    else if (action === "copy-seed") this.copy(seedOf(this.entry), "Seed");
    else if (action === "use-settings" || action === "remix" || action === "duplicate") {
      const entry = this.entry;
      this.opener = null; // focus goes to the composer, not back to the image
      this.dialog.close();
      if (action === "remix") this.actions.remix(entry);
      else if (action === "duplicate") this.actions.duplicate(entry);
      else this.actions.useSettings(entry);
    }
  }

  onKey(event) {
    if (event.target.closest("button") && event.key === "Enter") return;
    // The comparison's divider and choice use the arrow keys themselves.
    if (event.target.closest("input, select")) return;
    const actions = { ArrowLeft: "previous", ArrowRight: "next", "+": "zoom-in", "=": "zoom-in", "-": "zoom-out", 0: "fit", 1: "actual" };
    const action = actions[event.key];
    if (!action || event.ctrlKey || event.metaKey || event.altKey) return;
    event.preventDefault();
    this.act(action);
  }

  onWheel(event) {
    event.preventDefault();
    const box = this.stage.getBoundingClientRect();
    const around = { x: event.clientX - box.left - box.width / 2, y: event.clientY - box.top - box.height / 2 };
    // A trackpad pinch arrives as a wheel with ctrlKey and small deltas; a mouse wheel as larger ones.
    const factor = Math.exp(-event.deltaY * (event.ctrlKey ? 0.01 : 0.002));
    this.zoomTo(this.scale * factor, { around });
  }

  onPointerDown(event) {
    this.stage.setPointerCapture(event.pointerId);
    this.pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
  }

  onPointerMove(event) {
    const last = this.pointers.get(event.pointerId);
    if (!last) return;
    const current = { x: event.clientX, y: event.clientY };
    if (this.pointers.size === 2) {
      // Pinch: the distance between the two fingers scales the image.
      const [other] = [...this.pointers].filter(([id]) => id !== event.pointerId).map(([, point]) => point);
      const before = Math.hypot(last.x - other.x, last.y - other.y);
      const after = Math.hypot(current.x - other.x, current.y - other.y);
      if (before > 0) this.zoomTo(this.scale * (after / before));
    } else {
      this.offset = { x: this.offset.x + current.x - last.x, y: this.offset.y + current.y - last.y };
      this.render();
    }
    this.pointers.set(event.pointerId, current);
  }

  async copy(text, what) {
    if (text === null || text === undefined || text === "") return;
    try {
      await navigator.clipboard.writeText(String(text));
      toast(`${what} copied.`);
    } catch {
      toast(`${what}: ${text}`, { kind: "info" });
    }
  }

  renderFacts(entry) {
    const { asset, generation } = entry;
    const params = generation.params || {};
    const options = Object.entries(generation.prompt_options || {})
      .filter(([key, value]) => OPTION_NAMES[key] && value)
      .map(([key, value]) => `${OPTION_NAMES[key]}: ${value}`)
      .join(", ");
    const sent = generation.enhanced_prompt || composePrompt(generation.prompt, generation.prompt_options || {});
    const waited = generation.started_at ? new Date(generation.started_at) - new Date(generation.created_at) : null;
    const rows = [
      ["Prompt as written", generation.prompt],
      ["Prompt sent", sent],
      ["Negative prompt", generation.negative_prompt],
      ["Options", options],
      ["Seed", seedOf(entry)],
      ["Provider", generation.provider],
      ["Model", generation.model],
      ["Size", `${asset.width}×${asset.height}`],
      ["Steps", params.steps],
      ["Guidance", params.guidance],
      ["Strength", params.strength],
      ["Timings", [waited !== null ? `waited ${formatDuration(Math.max(0, waited))}` : null, generation.duration_ms ? `ran ${formatDuration(generation.duration_ms)}` : null].filter(Boolean).join(", ")],
      ["Cost", formatMoney(generation.cost)],
      ["From", parentLabel(entry, this.store)],
    ];
    this.facts.replaceChildren(
      ...rows
        .filter(([, value]) => value !== null && value !== undefined && value !== "")
        .flatMap(([key, value]) => [h("dt", {}, key), h("dd", { dataset: { fact: key } }, String(value))]),
    );
    $('[data-lightbox-action="copy-prompt"]', this.dialog).hidden = !generation.prompt;
    $('[data-lightbox-action="copy-seed"]', this.dialog).hidden = seedOf(entry) === null;
    // An upscale or a variation is remade from its image, not from settings a turn can carry.
    const reusable = Boolean(generation.prompt);
    $('[data-lightbox-action="use-settings"]', this.dialog).hidden = !reusable;
    $('[data-lightbox-action="remix"]', this.dialog).hidden = !reusable;
  }
}

function seedOf({ asset, generation }) {
  return asset.seed ?? (generation.params ? generation.params.seed : null) ?? null;
}

/** "from 2.3": the step and image this one was made from, when it was made from an output of the session. */
function parentLabel(entry, store) {
  const source = (entry.generation.inputs || []).find((input) => input.role === "init");
  const parent = source ? store.findAsset(source.asset_id) : null;
  if (parent) return `from ${shortStepLabel(parent)}`;
  const step = entry.generation.parent_generation_id ? store.step(entry.generation.parent_generation_id) : null;
  return step ? `from ${step}` : null;
}
