// Why a step failed, said plainly; the provider's own words and the code stay available, but second.

const PLAIN = {
  content_rejected: "The provider refused this prompt or image on content grounds. Try different wording or another image.",
  invalid_request: "The provider cannot make this request (size, model or option). Change the settings and send it again.",
  provider_failed: "The provider could not make this image, and trying again will not change that. Change the settings or pick another model.",
  provider_unavailable: "The provider could not be reached, even after several tries. Retry in a moment.",
  provider_out_of_memory: "The provider ran out of memory for this size. Retry, or ask for fewer or smaller images.",
  out_of_memory: "The provider ran out of memory for this size. Retry, or ask for fewer or smaller images.",
  provider_not_configured: "This provider is not set up on this studio. An administrator can configure it, or pick another model.",
  input_unavailable: "An image this step needed has been deleted, so it cannot run.",
  worker_lost: "The machine making this image stopped before it finished. Retry to run it again.",
  storage_error: "The image was made but could not be stored. Retry in a moment.",
  internal_error: "Something went wrong in the studio while making this image. Retry, and tell an administrator if it keeps happening.",
};

/** { text, code, detail } for a failed generation's error. */
export function plainFailure(error) {
  if (!error) return { text: "The generation failed.", code: null, detail: null };
  const text = PLAIN[error.code] || "The generation failed.";
  const detail = error.message && error.message !== text ? error.message : null;
  return { text, code: error.code || null, detail };
}
