// The composer's "Model and parameters" panel, shaped by the chosen provider's capabilities.

import {
  defaultChoice,
  describeChoice,
  fillModelOnlySelect,
  fillProviderSelect,
  findModel,
  findProvider,
  isUsable,
  supportsType,
} from "./models.js";
import { $, $$, h } from "./ui.js";

const ASPECT_RATIOS = [
  ["1:1", "Square 1:1"],
  ["4:3", "Landscape 4:3"],
  ["3:2", "Landscape 3:2"],
  ["16:9", "Wide 16:9"],
  ["3:4", "Portrait 3:4"],
  ["2:3", "Portrait 2:3"],
  ["9:16", "Tall 9:16"],
];
const CUSTOM_SIZE = "custom";
const MAX_SEED = 2 ** 53 - 1;

export function randomSeed() {
  const values = new Uint32Array(2);
  crypto.getRandomValues(values);
  // 53 bits: what a JavaScript number (and the API) holds exactly.
  return (values[0] % 2 ** 21) * 2 ** 32 + values[1];
}

/** Offers a server's list in a select (keeping the choice when still offered); false when there is none. */
function fillChoices(select, names, emptyLabel) {
  const list = names || [];
  const previous = select.value;
  select.replaceChildren(h("option", { value: "" }, emptyLabel), ...list.map((name) => h("option", { value: name }, name)));
  select.value = list.includes(previous) ? previous : "";
  return list.length > 0;
}

function selectIfOffered(select, value) {
  select.value = value && [...select.options].some((option) => option.value === value) ? value : "";
}

export class ParamsPanel {
  constructor(panel, providers, settings) {
    this.panel = panel;
    this.providers = providers;
    this.settings = settings || {};
    this.defaults = this.settings.default_params || {};
    this.field = (name) => $(`[data-param="${name}"]`, panel);
    this.summary = $("[data-params-summary]", panel);
    this.note = $("[data-model-note]", panel);
    this.strengthTouched = false;

    this.field("provider").addEventListener("change", () => {
      const provider = this.provider();
      fillModelOnlySelect(this.field("model"), provider, findModel(provider, null)?.id);
      this.applyCapabilities();
    });
    this.field("model").addEventListener("change", () => this.applyCapabilities());
    this.field("size").addEventListener("change", () => this.showCustomSize());
    this.field("strength").addEventListener("input", () => {
      this.strengthTouched = true;
      this.showStrength();
    });
    $('[data-action="new-seed"]', panel).addEventListener("click", () => {
      this.field("seed").value = String(randomSeed());
      this.updateSummary();
    });
    $('[data-action="params-reset"]', panel).addEventListener("click", () => this.reset());
    panel.addEventListener("input", () => this.updateSummary());
    panel.addEventListener("change", () => this.updateSummary());
    this.reset();
  }

  reset() {
    const choice = defaultChoice(this.providers, this.settings);
    fillProviderSelect(this.field("provider"), this.providers, choice.provider);
    fillModelOnlySelect(this.field("model"), this.provider(), choice.model);
    this.field("negative_prompt").value = "";
    this.field("num_images").value = "1";
    this.field("steps").value = this.defaults.steps ?? "";
    this.field("guidance").value = this.defaults.guidance ?? "";
    this.field("seed").value = "";
    this.field("sampler").value = "";
    this.field("schedule").value = "";
    this.field("strength").value = String(this.defaults.strength ?? 0.6);
    this.strengthTouched = this.defaults.strength !== undefined && this.defaults.strength !== null;
    this.showStrength();
    this.applyCapabilities();
  }

  provider() {
    return findProvider(this.providers, this.field("provider").value);
  }

  model() {
    return findModel(this.provider(), this.field("model").value);
  }

  capabilities() {
    const provider = this.provider();
    return (provider && provider.capabilities) || {};
  }

  applyCapabilities() {
    const provider = this.provider();
    const model = this.model();
    const caps = this.capabilities();
    describeChoice(this.note, provider);
    const toggle = (name, shown) => {
      const block = $(`[data-capability="${name}"]`, this.panel);
      if (block) block.hidden = !shown;
    };
    toggle("negative_prompt", caps.honours_negative_prompt !== false);
    toggle("strength", caps.honours_strength !== false);
    toggle("seed", caps.honours_seed !== false);
    // Sampler and scheduler come from the server's own lists (AUTOMATIC1111, ComfyUI).
    toggle("samplers", fillChoices(this.field("sampler"), caps.samplers, "Server default"));
    toggle("schedulers", fillChoices(this.field("schedule"), caps.schedulers, "Server default"));

    const maxImages = Math.min(caps.max_images || 10, (model && model.max_images) || 10, 10);
    const count = this.field("num_images");
    count.max = String(maxImages);
    if (Number(count.value) > maxImages) count.value = String(maxImages);

    const width = this.field("width");
    const height = this.field("height");
    for (const input of [width, height]) {
      input.min = String(caps.min_size || 64);
      input.max = String(caps.max_size || 2048);
      input.step = String(caps.size_multiple || 8);
    }
    if (!width.value) width.value = "1024";
    if (!height.value) height.value = "1024";
    this.fillSizes(model);
    this.updateSummary();
  }

  fillSizes(model) {
    const select = this.field("size");
    const previous = select.value;
    const options = [];
    if (model && model.sizes && model.sizes.length) {
      for (const [w, hgt] of model.sizes) options.push([`${w}x${hgt}`, `${w} × ${hgt}`]);
    } else {
      const ratios = model && model.aspect_ratios && model.aspect_ratios.length ? model.aspect_ratios.map((ratio) => [ratio, ratio]) : ASPECT_RATIOS;
      options.push(["", "Model default"], ...ratios);
      if (!(model && model.aspect_ratios && model.aspect_ratios.length)) options.push([CUSTOM_SIZE, "Custom size…"]);
    }
    select.replaceChildren(...options.map(([value, label]) => h("option", { value }, label)));
    const preferred = [previous].find((value) => value && options.some(([option]) => option === value));
    select.value = preferred || options[0][0];
    this.showCustomSize();
  }

  /** Fills the panel with a past step's settings; `seed` null leaves the seed empty (a new random one). */
  apply(generation, { seed }) {
    const provider = this.providers.find((candidate) => candidate.name === generation.provider);
    if (provider && isUsable(provider)) {
      fillProviderSelect(this.field("provider"), this.providers, provider.name);
      fillModelOnlySelect(this.field("model"), provider, findModel(provider, generation.model)?.id);
      this.applyCapabilities();
    }
    const params = generation.params || {};
    selectIfOffered(this.field("sampler"), params.scheduler);
    selectIfOffered(this.field("schedule"), (params.extra || {}).scheduler);
    this.field("negative_prompt").value = generation.negative_prompt || "";
    this.field("num_images").value = String(generation.num_images || 1);
    this.field("steps").value = params.steps ?? "";
    this.field("guidance").value = params.guidance ?? "";
    this.field("seed").value = seed ?? "";
    const size = this.field("size");
    const exact = `${generation.width}x${generation.height}`;
    const offered = (value) => [...size.options].some((option) => option.value === value);
    if (generation.aspect_ratio && offered(generation.aspect_ratio)) size.value = generation.aspect_ratio;
    else if (offered(exact)) size.value = exact;
    else if (offered(CUSTOM_SIZE)) {
      size.value = CUSTOM_SIZE;
      this.field("width").value = String(generation.width);
      this.field("height").value = String(generation.height);
    }
    this.showCustomSize();
    this.updateSummary();
  }

  showCustomSize() {
    const custom = this.field("size").value === CUSTOM_SIZE;
    for (const block of $$("[data-size-custom]", this.panel)) block.hidden = !custom;
  }

  showStrength() {
    const output = $("[data-strength-value]", this.panel);
    output.textContent = this.strengthTouched ? Number(this.field("strength").value).toFixed(2) : "default";
  }

  /** The overrides part of a chat turn. Throws an Error with a readable message for an invalid value. */
  values() {
    const provider = this.provider();
    const model = this.model();
    if (!provider || !isUsable(provider)) throw new Error("Choose a provider that is ready to generate.");
    const caps = this.capabilities();
    const result = { provider: provider.name };
    if (model) result.model = model.id;

    const count = readInteger(this.field("num_images"), "Images", 1, Number(this.field("num_images").max) || 10);
    result.num_images = count ?? 1;
    const negative = this.field("negative_prompt").value.trim();
    if (negative && caps.honours_negative_prompt !== false) result.negative_prompt = negative;

    const size = this.field("size").value;
    if (size === CUSTOM_SIZE) {
      const min = caps.min_size || 64;
      const max = caps.max_size || 2048;
      result.width = readInteger(this.field("width"), "Width", min, max);
      result.height = readInteger(this.field("height"), "Height", min, max);
      const multiple = caps.size_multiple || 1;
      if (result.width % multiple || result.height % multiple) throw new Error(`Width and height must be multiples of ${multiple}.`);
    } else if (/^\d+x\d+$/.test(size)) {
      const [w, hgt] = size.split("x").map(Number);
      result.width = w;
      result.height = hgt;
    } else if (size) {
      result.aspect_ratio = size;
    }

    const params = {};
    const steps = readInteger(this.field("steps"), "Steps", 1, 150);
    if (steps !== null) params.steps = steps;
    const guidance = readNumber(this.field("guidance"), "Guidance", 0, 30);
    if (guidance !== null) params.guidance = guidance;
    if (this.strengthTouched && caps.honours_strength !== false) params.strength = Number(this.field("strength").value);
    if (caps.honours_seed !== false) {
      const seed = readInteger(this.field("seed"), "Seed", 0, MAX_SEED);
      if (seed !== null) params.seed = seed;
    }
    const sampler = this.field("sampler").value;
    if (sampler && (caps.samplers || []).includes(sampler)) params.scheduler = sampler;
    const schedule = this.field("schedule").value;
    if (schedule && (caps.schedulers || []).includes(schedule)) params.extra = { scheduler: schedule };
    result.params = params;
    return result;
  }

  updateSummary() {
    const provider = this.provider();
    const model = this.model();
    const parts = [];
    if (model) parts.push(model.label || model.id);
    else if (provider) parts.push(provider.name);
    const count = Number(this.field("num_images").value) || 1;
    parts.push(`${count} ${count === 1 ? "image" : "images"}`);
    const size = this.field("size").value;
    if (size && size !== CUSTOM_SIZE) parts.push(size.replace("x", "×"));
    else if (size === CUSTOM_SIZE) parts.push(`${this.field("width").value}×${this.field("height").value}`);
    if (this.field("seed").value) parts.push(`seed ${this.field("seed").value}`);
    this.summary.textContent = parts.join(" · ");
  }

  /** The provider that serves a type: the chosen one when it can, else the first ready one that can. */
  providerFor(type) {
    const chosen = this.provider();
    if (isUsable(chosen) && supportsType(chosen, this.model(), type)) return { provider: chosen, model: this.model() };
    for (const provider of this.providers) {
      if (!isUsable(provider)) continue;
      const model = (provider.models || []).find((candidate) => supportsType(provider, candidate, type));
      if (model) return { provider, model };
    }
    return null;
  }

  /** What the viewer may offer for an image. */
  abilities() {
    const inpaint = this.providerFor("inpaint");
    const upscale = this.providerFor("upscale");
    return {
      mask: Boolean(inpaint && inpaint.provider.capabilities.supports_mask !== false),
      variation: Boolean(this.providerFor("variation")),
      upscaleFactors: upscale ? upscale.provider.capabilities.upscale_factors || [2] : [],
      // The largest side the upscaling provider can make (its size limit); larger upscales are not offered.
      maxSide: (upscale && upscale.provider.capabilities.max_size) || null,
    };
  }
}

function readNumber(input, label, min, max) {
  const raw = input.value.trim();
  if (!raw) return null;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max) {
    input.setAttribute("aria-invalid", "true");
    throw new Error(`${label} must be between ${min} and ${max}.`);
  }
  input.removeAttribute("aria-invalid");
  return value;
}

function readInteger(input, label, min, max) {
  const value = readNumber(input, label, min, max);
  if (value !== null && !Number.isInteger(value)) {
    input.setAttribute("aria-invalid", "true");
    throw new Error(`${label} must be a whole number.`);
  }
  return value;
}
