// Words for generations: what a step did, where it came from, and how it is doing.

export const STATUS_LABELS = {
  queued: "Queued",
  processing: "Generating",
  succeeded: "Done",
  failed: "Failed",
  canceled: "Canceled",
};

export const STATUS_BADGES = {
  queued: "badge-muted",
  processing: "badge-accent",
  succeeded: "badge-success",
  failed: "badge-danger",
  canceled: "badge-warning",
};

export const TYPE_LABELS = {
  text2img: "Text to image",
  img2img: "Image to image",
  inpaint: "Inpaint",
  upscale: "Upscale",
  variation: "Variation",
};

export function typeLabel(generation) {
  if (generation.type === "upscale" && generation.params && generation.params.upscale_factor) {
    return `Upscale ×${generation.params.upscale_factor}`;
  }
  return TYPE_LABELS[generation.type] || generation.type;
}

/** "Iterated from step 2", "From your image", or null for a fresh text prompt. */
export function originLabel(generation, store) {
  const parentStep = generation.parent_generation_id ? store.step(generation.parent_generation_id) : null;
  if (parentStep) {
    const verb = { inpaint: "Inpainted", upscale: "Upscaled", variation: "Varied" }[generation.type] || "Iterated";
    return `${verb} from step ${parentStep}`;
  }
  const init = (generation.inputs || []).find((input) => input.role === "init");
  if (init) return "From your image";
  return null;
}

export function outputLabel(entry) {
  const base = `Step ${entry.step}`;
  return entry.count > 1 ? `${base}, image ${entry.index + 1} of ${entry.count}` : base;
}

export function shortStepLabel(entry) {
  return entry.count > 1 ? `${entry.step}.${entry.index + 1}` : String(entry.step);
}

/** The text shown while a generation waits or runs. */
export function progressText(generation) {
  if (generation.cancel_requested) return "Canceling…";
  if (generation.status === "queued") {
    return generation.attempt > 1 ? `Waiting to retry (attempt ${generation.attempt} of ${generation.max_attempts})…` : "Waiting in the queue…";
  }
  const { step = 0, total = 0 } = generation.progress || {};
  if (total > 0) return `Generating · step ${Math.min(step, total)} of ${total}`;
  return "Starting…";
}

/** "a-quiet-harbour-step-3-2.png": the session, the step and the image, instead of an id. */
export function downloadName(entry, sessionTitle) {
  const extension = (entry.asset.mime_type || "image/png").split("/")[1] || "png";
  const session = (sessionTitle || "")
    .normalize("NFKD")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 60)
    .replace(/-+$/, "");
  const suffix = entry.count > 1 ? `-${entry.index + 1}` : "";
  return `${session || "imagestudio"}-step-${entry.step}${suffix}.${extension === "jpeg" ? "jpg" : extension}`;
}

/** The image's address as a download under that name (the server sends it as an attachment). */
export function downloadUrl(entry, sessionTitle) {
  const name = downloadName(entry, sessionTitle);
  return `${entry.asset.content_url}${entry.asset.content_url.includes("?") ? "&" : "?"}download=${encodeURIComponent(name)}`;
}
