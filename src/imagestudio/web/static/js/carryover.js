// What carries over into the next turn: prompt builder choices and parameters stay set after a turn is
// sent, so the composer says which ones differ from a fresh start, with one button to clear them all.

import { announce, h } from "./ui.js";

const OPTION_NAMES = { shot_type: "Shot", camera_angle: "Angle", style: "Style", location: "Place", lighting: "Lighting", weather: "Weather" };

export class CarryOver {
  constructor(anchor, builder, params) {
    this.builder = builder;
    this.params = params;
    this.fresh = this.current().params;
    this.text = h("span", { class: "carry-text", dataset: { carryText: "" } });
    this.clear = h(
      "button",
      { type: "button", class: "button button-small button-quiet", dataset: { carryClear: "" }, on: { click: () => this.clearAll() } },
      "Clear",
    );
    this.root = h("div", { class: "composer-carry", dataset: { carryOver: "" }, hidden: true }, this.text, this.clear);
    this.clear.setAttribute("aria-label", "Clear what carries over");
    anchor.after(this.root);
    const form = anchor.closest("form");
    form.addEventListener("input", () => this.render());
    form.addEventListener("change", () => this.render());
    this.render();
  }

  /** The builder's choices and the parameters as the next turn would send them (null when invalid). */
  current() {
    let params = null;
    try {
      params = this.params.values();
    } catch {
      // An unfinished field: shown by the composer's own error when sending.
    }
    return { options: this.builder.values(), params };
  }

  /** "Style: watercolor · 2 images · 320×256 · seed 1234": what differs from a fresh composer. */
  describe() {
    const { options, params } = this.current();
    const parts = Object.entries(options)
      .filter(([key, value]) => OPTION_NAMES[key] && value)
      .map(([key, value]) => `${OPTION_NAMES[key]}: ${value}`);
    const fresh = this.fresh;
    if (!params || !fresh) return parts;
    const differs = (read) => JSON.stringify(read(params)) !== JSON.stringify(read(fresh));
    if (differs((p) => [p.provider, p.model])) parts.push(params.model || params.provider);
    if (differs((p) => p.num_images)) parts.push(`${params.num_images} images`);
    if (differs((p) => [p.width, p.height, p.aspect_ratio])) parts.push(params.aspect_ratio || `${params.width}×${params.height}`);
    const sampling = params.params || {};
    if (differs((p) => (p.params || {}).steps)) parts.push(`${sampling.steps} steps`);
    if (differs((p) => (p.params || {}).guidance)) parts.push(`guidance ${sampling.guidance}`);
    if (differs((p) => (p.params || {}).strength)) parts.push(`strength ${sampling.strength}`);
    if (sampling.seed !== undefined) parts.push(`seed ${sampling.seed}`);
    if (params.negative_prompt) parts.push(`not: ${params.negative_prompt}`);
    return parts;
  }

  render() {
    const parts = this.describe();
    this.root.hidden = parts.length === 0;
    this.text.textContent = parts.length ? `Carried into the next turn: ${parts.join(" · ")}` : "";
  }

  clearAll() {
    this.builder.reset();
    this.params.reset();
    this.render();
    announce("The prompt options and parameters are back to their defaults.");
    this.builder.prompt.focus();
  }
}
