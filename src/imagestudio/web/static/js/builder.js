// The prompt builder: shot type, camera angle and style, plus an optional scene (location, lighting,
// weather). The choices travel as `prompt_options`; the preview shows the prompt they add up to.

import { $, $$ } from "./ui.js";

const OPTION_KEYS = ["shot_type", "camera_angle", "style", "location", "lighting", "weather"];
const SCENE_KEYS = new Set(["location", "lighting", "weather"]);

// The same phrases, in the same order, as the server uses when it folds the options into the prompt.
const PHRASES = [
  ["shot_type", (value) => value],
  ["camera_angle", (value) => value],
  ["style", (value) => `${value} style`],
  ["location", (value) => `set in ${value}`],
  ["lighting", (value) => `${value} lighting`],
  ["weather", (value) => `${value} weather`],
];

/** The prompt a provider receives once the chosen options are folded in. */
export function composePrompt(prompt, options) {
  const phrases = PHRASES.filter(([key]) => options[key]).map(([key, phrase]) => phrase(options[key]));
  const text = prompt || "";
  if (!phrases.length) return text.trim();
  const base = text.replace(/[ ,.;]+$/, "").trim();
  return [base, ...phrases].filter(Boolean).join(", ");
}

export class PromptBuilder {
  constructor(panel, promptInput) {
    this.panel = panel;
    this.prompt = promptInput;
    this.fields = Object.fromEntries(OPTION_KEYS.map((key) => [key, $(`[data-option="${key}"]`, panel)]));
    this.custom = $('[data-option="custom"]', panel);
    this.preview = $("[data-prompt-preview]", panel);
    this.count = $("[data-builder-count]", panel);
    panel.addEventListener("input", () => this.update());
    panel.addEventListener("change", () => this.update());
    promptInput.addEventListener("input", () => this.update());
    $('[data-action="builder-reset"]', panel).addEventListener("click", () => this.reset());
    this.update();
  }

  /** The `prompt_options` of a request; empty choices are left out. */
  values() {
    const values = { custom: this.custom.checked };
    for (const key of OPTION_KEYS) {
      if (SCENE_KEYS.has(key) && !this.custom.checked) continue;
      const value = this.fields[key].value.trim();
      if (value) values[key] = value;
    }
    return values;
  }

  chosenCount() {
    return Object.entries(this.values()).filter(([key, value]) => key !== "custom" && value).length;
  }

  update() {
    for (const block of $$("[data-scene-field]", this.panel)) {
      block.hidden = !this.custom.checked;
      for (const field of block.querySelectorAll("input, select")) field.disabled = !this.custom.checked;
    }
    const values = this.values();
    const composed = composePrompt(this.prompt.value, values);
    this.preview.textContent = composed || "Type a prompt, then pick options to see the full prompt.";
    this.preview.classList.toggle("prompt-preview-empty", !composed);
    const count = this.chosenCount();
    this.count.textContent = count ? `${count} chosen` : "";
  }

  /** Fills the builder with a past step's `prompt_options`. */
  apply(options) {
    for (const key of OPTION_KEYS) this.fields[key].value = options[key] || "";
    this.custom.checked = Boolean(options.custom) || [...SCENE_KEYS].some((key) => options[key]);
    this.update();
  }

  reset() {
    for (const field of Object.values(this.fields)) field.value = "";
    this.custom.checked = false;
    this.update();
  }
}
