// Providers and models as /api/v1/providers describes them, turned into choices for <select>s.

import { h } from "./ui.js";

export const BUILTIN_NOTE =
  "The built-in renderer draws procedural pictures from your prompt's words so you can try the studio " +
  "without keys or model weights. It is not an AI model.";

export function isBuiltin(provider) {
  return Boolean(provider) && (provider.kind === "builtin" || provider.name === "builtin");
}

export function isUsable(provider) {
  // A hosted provider without the studio's key still serves someone who stored their own.
  if (!provider || provider.enabled === false || provider.needs_own_key) return false;
  return provider.configured !== false || provider.own_key === true;
}

function unusableNote(provider) {
  if (provider.enabled === false) return " (disabled)";
  return provider.needs_own_key ? " (needs your own key)" : " (not configured)";
}

export function providerLabel(provider) {
  if (isBuiltin(provider)) return "Built-in renderer";
  return provider.label || provider.name;
}

export function modelLabel(provider, model) {
  if (!model) return "";
  return model.label || model.id;
}

export function findProvider(providers, name) {
  return providers.find((provider) => provider.name === name) || null;
}

export function findModel(provider, modelId) {
  if (!provider) return null;
  const models = provider.models || [];
  const wanted = modelId || (provider.capabilities && provider.capabilities.default_model);
  return models.find((model) => model.id === wanted) || models[0] || null;
}

/** The provider and model a new turn uses: the account's default when usable, else the first usable one. */
export function defaultChoice(providers, settings = {}) {
  const preferred = findProvider(providers, settings.default_provider);
  if (isUsable(preferred)) {
    const model = findModel(preferred, settings.default_model);
    return { provider: preferred.name, model: model ? model.id : null };
  }
  // The server's default when it is ready; else a real model over the built-in renderer, the fallback.
  const usable = providers.filter(isUsable);
  const first = usable.find((provider) => provider.default) || usable.find((provider) => !isBuiltin(provider)) || usable[0];
  if (!first) return { provider: null, model: null };
  const model = findModel(first, null);
  return { provider: first.name, model: model ? model.id : null };
}

const SEPARATOR = "\u001f";

export function encodeChoice(provider, model) {
  return `${provider}${SEPARATOR}${model}`;
}

export function decodeChoice(value) {
  const [provider, model] = String(value || "").split(SEPARATOR);
  return { provider: provider || null, model: model || null };
}

/** One <select> of every model, grouped by provider; providers that cannot run are shown disabled. */
export function fillModelSelect(select, providers, chosen) {
  select.replaceChildren();
  for (const provider of providers) {
    const usable = isUsable(provider);
    const suffix = usable ? "" : unusableNote(provider);
    const group = h("optgroup", { label: providerLabel(provider) + suffix });
    for (const model of provider.models || []) {
      const option = h("option", { value: encodeChoice(provider.name, model.id) }, modelLabel(provider, model));
      option.disabled = !usable;
      option.selected = chosen && provider.name === chosen.provider && model.id === chosen.model;
      group.append(option);
    }
    if (group.children.length) select.append(group);
  }
  select.disabled = !select.querySelector("option:not([disabled])");
}

/** A <select> of providers and one of the chosen provider's models (the composer's two-step choice). */
export function fillProviderSelect(select, providers, chosenName) {
  select.replaceChildren(
    ...providers.map((provider) => {
      const usable = isUsable(provider);
      const label = providerLabel(provider) + (usable ? "" : unusableNote(provider));
      const option = h("option", { value: provider.name }, label);
      option.disabled = !usable;
      option.selected = provider.name === chosenName;
      return option;
    }),
  );
}

export function fillModelOnlySelect(select, provider, chosenId) {
  const models = provider ? provider.models || [] : [];
  select.replaceChildren(
    ...models.map((model) => {
      const option = h("option", { value: model.id }, modelLabel(provider, model));
      option.selected = model.id === chosenId;
      return option;
    }),
  );
  select.disabled = models.length === 0;
}

/** Shows the built-in renderer's explanation (or a provider's problem) under a model choice. */
export function describeChoice(note, provider) {
  if (!note) return;
  if (isBuiltin(provider)) {
    note.textContent = BUILTIN_NOTE;
    note.hidden = false;
  } else if (provider && provider.configuration_problem) {
    note.textContent = provider.configuration_problem;
    note.hidden = false;
  } else {
    note.hidden = true;
  }
}

/** The account's saved defaults (steps, guidance, strength) as chat-turn overrides. */
export function defaultOverrides(settings = {}) {
  const saved = settings.default_params || {};
  const params = {};
  for (const key of ["steps", "guidance", "strength", "scheduler"]) {
    if (saved[key] !== undefined && saved[key] !== null) params[key] = saved[key];
  }
  return Object.keys(params).length ? { params } : {};
}

/** Whether a model can do a generation type (text2img, img2img, inpaint, upscale, variation). */
export function supportsType(provider, model, type) {
  if (!provider) return false;
  const types = (model && model.types) || (provider.capabilities && provider.capabilities.types) || [];
  return types.includes(type);
}
