// "Duplicate step": the chat turn that makes a step again exactly as it was made (same prompt, options,
// provider, model, size, parameters, inputs and seed).

const MODES = { text2img: "fresh", img2img: "iterate", inpaint: "iterate", upscale: "upscale", variation: "variation" };
const PARAM_NAMES = ["steps", "guidance", "strength", "scheduler", "seed", "upscale_factor"];

/** The chat turn body that repeats `entry`'s step; the seed is the one the step used (its first image's). */
export function duplicateTurn(entry, allOutputs) {
  const { generation } = entry;
  const stored = generation.params || {};
  const params = {};
  for (const name of PARAM_NAMES) {
    if (stored[name] !== null && stored[name] !== undefined) params[name] = stored[name];
  }
  if (stored.extra && Object.keys(stored.extra).length) params.extra = { ...stored.extra };
  // A step asked for no seed drew one; its first image's seed makes the batch again.
  const first = allOutputs.find((other) => other.generation.id === generation.id && other.index === 0);
  const drawn = first ? first.asset.seed : null;
  if (params.seed === undefined && drawn !== null && drawn !== undefined) params.seed = drawn;

  const options = {};
  for (const [key, value] of Object.entries(generation.prompt_options || {})) {
    if (value !== null && value !== undefined) options[key] = value;
  }
  const turn = {
    content: generation.prompt || "",
    mode: MODES[generation.type] || "fresh",
    provider: generation.provider,
    model: generation.model,
    num_images: generation.num_images || 1,
    params,
    prompt_options: options,
    enhance_prompt: Boolean(generation.enhance_prompt),
  };
  if (generation.negative_prompt) turn.negative_prompt = generation.negative_prompt;
  if (generation.type !== "upscale" && generation.type !== "variation") {
    turn.width = generation.width;
    turn.height = generation.height;
  }
  const inputs = generation.inputs || [];
  const input = (role) => inputs.find((candidate) => candidate.role === role)?.asset_id;
  if (input("init")) turn.source_asset_id = input("init");
  if (input("mask")) turn.mask_asset_id = input("mask");
  const references = inputs.filter((candidate) => candidate.role === "reference").map((candidate) => candidate.asset_id);
  if (references.length) turn.attachment_ids = references;
  return turn;
}
