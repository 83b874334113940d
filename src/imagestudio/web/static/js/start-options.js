// The landing prompt's options for the first image: aspect ratio, number of images, style and shot (chips),
// and a start image picked, dropped or pasted (the first turn then iterates from it).

import { $, $$, announce } from "./ui.js";

const ACCEPTED = new Set(["image/png", "image/jpeg", "image/webp"]);

export class StartOptions {
  constructor(form) {
    this.form = form;
    this.file = null;
    this.preview = null;
    this.box = $("[data-start-image]", form);
    this.input = $("[data-start-image-input]", form);
    this.overlay = $("[data-start-drop]", form);
    this.moreCount = $("[data-start-more-count]", form);
    this.input.addEventListener("change", () => {
      if (this.input.files && this.input.files[0]) this.use(this.input.files[0]);
      this.input.value = "";
    });
    $("[data-start-image-remove]", form).addEventListener("click", () => {
      this.clear();
      announce("Start image removed.");
      $("textarea", form).focus();
    });
    form.addEventListener("change", () => this.countMore());
    form.addEventListener("paste", (event) => {
      const file = [...(event.clipboardData?.files || [])].find((item) => ACCEPTED.has(item.type));
      if (file) {
        event.preventDefault();
        this.use(file);
      }
    });
    this.setUpDrop();
  }

  setUpDrop() {
    let depth = 0;
    const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
    document.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      depth += 1;
      this.overlay.hidden = false;
    });
    document.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) this.overlay.hidden = true;
    });
    document.addEventListener("dragover", (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
    document.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      this.overlay.hidden = true;
      const file = [...event.dataTransfer.files].find((item) => ACCEPTED.has(item.type));
      if (file) this.use(file);
      else announce("Only PNG, JPEG and WebP images can start a session.");
    });
  }

  use(file) {
    if (!ACCEPTED.has(file.type)) {
      announce("Only PNG, JPEG and WebP images can start a session.");
      return;
    }
    this.clear();
    this.file = file;
    this.preview = URL.createObjectURL(file);
    $("[data-start-image-thumb]", this.form).src = this.preview;
    $("[data-start-image-name]", this.form).textContent = file.name || "Pasted image";
    this.box.hidden = false;
    announce(`The first image will start from ${file.name || "the pasted image"}.`);
  }

  clear() {
    if (this.preview) URL.revokeObjectURL(this.preview);
    this.file = null;
    this.preview = null;
    this.box.hidden = true;
    $("[data-start-image-thumb]", this.form).removeAttribute("src");
  }

  value(name) {
    const checked = $$(`input[name="${name}"]`, this.form).find((input) => input.checked);
    return checked ? checked.value : "";
  }

  countMore() {
    const chosen = ["style", "shot_type"].filter((name) => this.value(name)).length;
    this.moreCount.textContent = chosen ? `(${chosen} chosen)` : "";
  }

  /** The chat turn's overrides these options ask for. */
  overrides() {
    const overrides = { num_images: Number(this.value("num_images")) || 1 };
    if (this.value("aspect_ratio")) overrides.aspect_ratio = this.value("aspect_ratio");
    const options = {};
    for (const name of ["style", "shot_type"]) if (this.value(name)) options[name] = this.value(name);
    if (Object.keys(options).length) overrides.prompt_options = options;
    return overrides;
  }
}
