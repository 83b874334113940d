// Images the person brings: dropped, pasted or picked; uploaded at once so that sending is instant.
// The first becomes the init image (the next turn starts from it); more become references.

import { describeError, uploadAsset } from "./api.js";
import { announce, toast } from "./ui.js";

const ACCEPTED = new Set(["image/png", "image/jpeg", "image/webp"]);
// The server's default limit; a server configured otherwise answers with its own message.
const MAX_BYTES = 20 * 1024 * 1024;
// A turn carries at most four attached images (the starting image counts as one).
const MAX_IMAGES = 4;

let nextKey = 1;

export class InputTray extends EventTarget {
  constructor() {
    super();
    this.items = [];
  }

  changed() {
    this.dispatchEvent(new Event("change"));
  }

  /** Adds a file; answers false (with a message) when it cannot be used. */
  add(file) {
    if (!file) return false;
    if (!ACCEPTED.has(file.type)) {
      toast("Use a PNG, JPEG or WebP image.", { kind: "error" });
      return false;
    }
    if (file.size > MAX_BYTES) {
      toast("That image is larger than 20 MB.", { kind: "error" });
      return false;
    }
    const hasInit = this.items.some((item) => item.purpose === "init");
    if (this.items.length >= MAX_IMAGES) {
      toast(`A turn can carry at most ${MAX_IMAGES} images.`, { kind: "error" });
      return false;
    }
    const item = { key: nextKey++, file, previewUrl: URL.createObjectURL(file), purpose: hasInit ? "reference" : "init", asset: null, state: "uploading", error: null };
    this.items.push(item);
    this.upload(item);
    return true;
  }

  async upload(item) {
    item.state = "uploading";
    item.asset = null;
    this.changed();
    const purpose = item.purpose;
    try {
      const asset = await uploadAsset(item.file, purpose);
      if (!this.items.includes(item) || item.purpose !== purpose) return; // removed or changed meanwhile
      item.asset = asset;
      item.state = "ready";
      announce(purpose === "init" ? "Image uploaded. The next turn starts from it." : "Reference image uploaded.");
    } catch (error) {
      if (!this.items.includes(item)) return;
      item.state = "failed";
      item.error = describeError(error);
      toast(`Upload failed: ${item.error}`, { kind: "error" });
    }
    this.changed();
  }

  /** Switches an image between init and reference (a re-upload, since the purpose is part of the asset). */
  setPurpose(key, purpose) {
    const item = this.items.find((candidate) => candidate.key === key);
    if (!item || item.purpose === purpose) return;
    if (purpose === "init") {
      for (const other of this.items) {
        if (other !== item && other.purpose === "init") {
          other.purpose = "reference";
          this.upload(other);
        }
      }
    }
    item.purpose = purpose;
    this.upload(item);
  }

  retry(key) {
    const item = this.items.find((candidate) => candidate.key === key);
    if (item) this.upload(item);
  }

  remove(key) {
    const item = this.items.find((candidate) => candidate.key === key);
    if (!item) return;
    URL.revokeObjectURL(item.previewUrl);
    this.items = this.items.filter((candidate) => candidate !== item);
    this.changed();
  }

  clear() {
    for (const item of this.items) URL.revokeObjectURL(item.previewUrl);
    this.items = [];
    this.changed();
  }

  init() {
    return this.items.find((item) => item.purpose === "init" && item.state === "ready") || null;
  }

  references() {
    return this.items.filter((item) => item.purpose === "reference" && item.state === "ready");
  }

  busy() {
    return this.items.some((item) => item.state === "uploading");
  }

  failed() {
    return this.items.some((item) => item.state === "failed");
  }

  /** Drop anywhere on `zone` (with a visible overlay) and paste anywhere on the page. */
  listen(zone, overlay) {
    let depth = 0;
    const hasFiles = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");
    zone.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth += 1;
      overlay.hidden = false;
    });
    zone.addEventListener("dragover", (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
    zone.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) overlay.hidden = true;
    });
    zone.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      overlay.hidden = true;
      for (const file of event.dataTransfer.files) this.add(file);
    });
    document.addEventListener("paste", (event) => {
      const files = Array.from(event.clipboardData?.files || []).filter((file) => file.type.startsWith("image/"));
      if (!files.length) return;
      event.preventDefault();
      for (const file of files) this.add(file);
    });
  }
}
