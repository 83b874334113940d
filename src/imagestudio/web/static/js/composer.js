// The composer: what the next turn says, what it starts from (latest or chosen output, an uploaded image,
// a painted mask), and its parameters. Sends chat turns; upscale and variation go through here too. "Ask"
// sends a question about the session instead (mode reply): the answer comes in words.

import { api, describeError, uploadAsset } from "./api.js";
import { PromptBuilder } from "./builder.js";
import { CarryOver } from "./carryover.js";
import { CaptionPanel } from "./captions.js";
import { shortStepLabel } from "./describe.js";
import { InputTray } from "./inputs.js";
import { ParamsPanel } from "./params.js";
import { withPreviews } from "./preview.js";
import { $, $$, announce, autoResize, clearFormError, h, isSubmitShortcut, setBusy, showFormError } from "./ui.js";

export class Composer {
  /**
   * hooks: { editMask(entry), discardMask(), maskBlob() -> Promise<Blob>, sent(turn) }
   */
  constructor(form, store, { sessionId, providers, settings, hooks }) {
    this.form = form;
    this.store = store;
    this.sessionId = sessionId;
    this.hooks = hooks;
    this.prompt = $("[data-prompt]", form);
    this.enhance = $("[data-enhance]", form);
    this.enhance.checked = Boolean(settings && settings.enhance_prompt);
    this.submitButton = $("[data-composer-submit]", form);
    this.context = $("[data-composer-context]", form);
    this.mask = null; // { assetId, previewUrl } once a mask is painted
    this.sending = false;

    this.params = new ParamsPanel($("[data-params-panel]", form), providers, settings);
    this.builder = new PromptBuilder($("[data-builder-panel]", form), this.prompt);
    this.carry = new CarryOver(this.context, this.builder, this.params);
    this.tray = new InputTray();
    this.tray.addEventListener("change", () => this.renderContext());
    // "Describe" on an uploaded image: its caption shows under the images, with "Use as prompt".
    this.uploadCaption = new CaptionPanel($("[data-upload-caption]", form), {
      usePrompt: (text) => {
        this.usePrompt(text);
        announce("The description is now the prompt.");
      },
    });
    this.tray.listen(document.querySelector(".session-layout") || form, $("[data-drop-overlay]", form));
    $("[data-file-input]", form).addEventListener("change", (event) => {
      for (const file of event.target.files) this.tray.add(file);
      event.target.value = "";
    });
    this.resize = autoResize(this.prompt);

    form.addEventListener("keydown", (event) => {
      // Plain Enter sends from the prompt only; elsewhere in the form it keeps its own meaning (a button, a field).
      const fromPrompt = event.target === this.prompt || event.ctrlKey || event.metaKey;
      if (fromPrompt && isSubmitShortcut(event)) {
        event.preventDefault();
        this.form.requestSubmit();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    // "New image" and "Ask" stick once chosen; otherwise the next turn iterates whenever there is an image to
    // iterate on.
    this.chosenMode = null;
    for (const radio of $$("[data-mode]", form)) {
      radio.addEventListener("change", () => {
        if (radio.checked) this.chosenMode = STICKY_MODES.has(radio.value) ? radio.value : null;
        this.renderContext();
      });
    }
    store.on("change", () => this.renderContext());
    this.renderContext();
  }

  mode() {
    return $("[data-mode]:checked", this.form)?.value || "fresh";
  }

  setMode(mode) {
    const radio = $(`[data-mode][value="${mode}"]`, this.form);
    if (radio && !radio.disabled) radio.checked = true;
    this.chosenMode = STICKY_MODES.has(mode) ? mode : null;
    this.renderContext();
  }

  /** "Send this prompt" (a reply's suggestion): an image turn from it, on the current image if there is one. */
  sendPrompt(text) {
    this.setMode(this.store.selected() || this.tray.init() ? "iterate" : "fresh");
    this.usePrompt(text);
    this.form.requestSubmit();
  }

  /** "Ask again": the question goes out once more as a reply turn. */
  ask(question) {
    this.setMode("reply");
    this.usePrompt(question);
    this.form.requestSubmit();
  }

  /** "Use these settings" (the step's seed too) and "Remix" (a new seed): the composer takes a past step's turn. */
  useSettings(entry, { remix = false } = {}) {
    const { generation } = entry;
    this.prompt.value = generation.prompt || "";
    this.resize();
    this.builder.apply(generation.prompt_options || {});
    this.params.apply(generation, { seed: remix ? null : (entry.asset.seed ?? generation.params?.seed ?? null) });
    this.setMode(generation.type === "text2img" ? "fresh" : "iterate");
    this.carry.render();
    this.prompt.focus();
    announce(remix ? "The composer has that step's settings with a new seed." : "The composer has that step's settings.");
  }

  focus(options) {
    this.prompt.focus(options);
  }

  /** Replace the prompt with text (a caption, a suggestion) and put the cursor at its end. */
  usePrompt(text) {
    this.prompt.value = text;
    this.prompt.dispatchEvent(new Event("input", { bubbles: true }));
    this.prompt.focus();
    this.prompt.setSelectionRange(text.length, text.length);
  }

  setMask(mask) {
    this.maskVersion = (this.maskVersion || 0) + 1;
    this.mask = mask ? { ...mask, version: this.maskVersion } : null;
    if (mask) this.setMode("iterate");
    this.renderContext();
  }

  removeMask() {
    this.mask = null;
    this.hooks.discardMask();
    this.renderContext();
    this.prompt.focus();
  }

  renderContext() {
    const selected = this.store.selected();
    const init = this.tray.items.find((item) => item.purpose === "init");
    const iterate = $('[data-mode][value="iterate"]', this.form);
    iterate.disabled = !selected && !init;
    if (this.chosenMode === "reply" || this.chosenMode === "ui") {
      $(`[data-mode][value="${this.chosenMode}"]`, this.form).checked = true;
    } else if (iterate.disabled) $('[data-mode][value="fresh"]', this.form).checked = true;
    else if (this.chosenMode !== "fresh") iterate.checked = true;
    // A mask belongs to the image it was painted on; choosing another image drops it.
    if (this.mask && (!selected || selected.asset.id !== this.mask.assetId)) {
      this.mask = null;
      this.hooks.discardMask();
      announce("The mask was removed because another image was selected.");
    }

    // Rebuild only when something shown changed, so a focused chip button keeps its focus.
    const signature = [
      this.mode(),
      selected ? selected.asset.id : "",
      this.store.latestOutput()?.asset.id || "",
      this.mask ? this.mask.version : "",
      this.uiParent ? this.uiParent.id : "",
      this.hooks.hasUi ? this.hooks.hasUi() : "",
      ...this.tray.items.map((item) => `${item.key}:${item.purpose}:${item.state}`),
    ].join("|");
    if (signature === this.contextSignature) return;
    this.contextSignature = signature;

    const chips = [];
    if (this.mode() === "ui") {
      chips.push(this.uiChip(init));
    } else if (this.mask && selected) {
      chips.push(
        chip(this.mask.previewUrl, `Inpaint step ${shortStepLabel(selected)}`, [
          button("Edit mask", () => this.hooks.editMask(selected)),
          button("Remove mask", () => this.removeMask(), "Remove the mask"),
        ], "chip-mask"),
      );
    } else if (this.mode() === "iterate" && !init && selected) {
      const latest = this.store.latestOutput();
      const isLatest = latest && latest.asset.id === selected.asset.id;
      chips.push(
        chip(selected.asset.thumbnail_url, `Iterating from step ${shortStepLabel(selected)}${isLatest ? " (latest)" : ""}`, [
          !isLatest ? button("Use latest", () => this.store.unpin()) : null,
        ]),
      );
    } else if (this.mode() === "fresh") {
      chips.push(h("p", { class: "composer-fresh" }, "New image from the prompt alone"));
    } else if (this.mode() === "reply") {
      chips.push(h("p", { class: "composer-fresh" }, "A question about this session: the answer comes in words"));
    }
    for (const item of this.tray.items) chips.push(this.uploadChip(item));
    this.context.replaceChildren(...chips);
    if (!this.tray.items.some((item) => item.asset && item.asset.id === this.uploadCaption.assetId)) this.uploadCaption.reset(null);
    this.updateSubmitLabel();
  }

  /** What a ui turn will do: revise a chosen version, the latest one, or start from the words or an image. */
  uiChip(init) {
    if (this.uiParent) {
      return chip(null, `UI code: revising ${this.uiParent.label}`, [button("Revise latest", () => this.reviseUi(null), "Revise the latest version instead")]);
    }
    if (init) return h("p", { class: "composer-fresh" }, "UI code: a new interface from your image (and words)");
    const hasUi = this.hooks.hasUi && this.hooks.hasUi();
    return h("p", { class: "composer-fresh" }, hasUi ? "UI code: revising the latest version" : "UI code: a new interface from your description");
  }

  /** The next ui turn revises this UI generation ({id, label}), or the latest one (null). */
  reviseUi(target) {
    this.uiParent = target;
    this.setMode("ui");
    this.prompt.focus();
  }

  uploadChip(item) {
    const label = item.state === "uploading" ? "Uploading…" : item.state === "failed" ? `Upload failed: ${item.error}` : item.purpose === "init" ? "Starting from your image" : "Reference image";
    const purpose = h(
      "select",
      { class: "select select-compact chip-select", "aria-label": "Use this image as", on: { change: (event) => this.tray.setPurpose(item.key, event.target.value) } },
      h("option", { value: "init", selected: item.purpose === "init" }, "Start from it"),
      h("option", { value: "reference", selected: item.purpose === "reference" }, "Reference"),
    );
    const describe = item.state === "ready" ? button("Describe", (event) => this.uploadCaption.describe(item.asset.id, event.currentTarget), "Describe this image") : null;
    return chip(item.previewUrl, label, [
      item.state === "failed" ? button("Retry", () => this.tray.retry(item.key)) : purpose,
      describe,
      button("Remove", () => this.tray.remove(item.key), "Remove this image"),
    ], item.state === "failed" ? "chip-error" : "");
  }

  updateSubmitLabel() {
    const labels = { ui: "Write code", reply: "Ask" };
    this.submitButton.textContent = labels[this.mode()] || (this.mask ? "Inpaint" : "Generate");
  }

  /** Builds and sends the next chat turn from the composer. */
  async submit() {
    if (this.sending) return;
    clearFormError(this.form);
    const content = this.prompt.value.trim();
    let payload;
    try {
      payload = await this.buildTurn(content);
    } catch (error) {
      showFormError(this.form, null, error.message);
      this.prompt.focus();
      return;
    }
    const sent = await this.send(payload, this.submitButton);
    if (sent) {
      this.prompt.value = "";
      this.resize();
      this.builder.update();
      this.tray.clear();
      this.mask = null;
      this.hooks.discardMask();
      this.store.unpin();
      this.renderContext();
    }
  }

  async buildTurn(content) {
    if (this.tray.busy()) throw new Error("Wait for the image to finish uploading.");
    if (this.tray.failed()) throw new Error("An image failed to upload. Retry or remove it.");
    if (this.mode() === "ui") return this.buildUiTurn(content);
    if (this.mode() === "reply") {
      if (!content) throw new Error("Ask a question about this session.");
      // An attached image goes to the language model with the question.
      const attached = [this.tray.init(), ...this.tray.references()].filter(Boolean);
      return attached.length ? { content, mode: "reply", attachment_ids: attached.map((item) => item.asset.id) } : { content, mode: "reply" };
    }
    const payload = {
      ...this.params.values(),
      prompt_options: this.builder.values(),
      content,
      mode: this.mode(),
      enhance_prompt: this.enhance.checked,
    };
    const init = this.tray.init();
    const references = this.tray.references();
    // Every uploaded image is attached, so it shows in the prompt's bubble; the server reads each by its purpose.
    const attached = [init, ...references].filter(Boolean);
    if (attached.length) payload.attachment_ids = attached.map((item) => item.asset.id);
    if (this.mask) {
      const selected = this.store.selected();
      if (!content) throw new Error("Describe what to paint in the masked area.");
      const maskAsset = await uploadAsset(await this.hooks.maskBlob(), "mask", { filename: "mask.png" });
      payload.mode = "iterate";
      payload.source_asset_id = selected.asset.id;
      payload.mask_asset_id = maskAsset.id;
      const inpaint = this.params.providerFor("inpaint");
      if (inpaint) Object.assign(payload, { provider: inpaint.provider.name, model: inpaint.model.id });
    } else if (init) {
      payload.mode = "iterate";
      payload.source_asset_id = init.asset.id;
    } else if (payload.mode === "iterate") {
      const selected = this.store.selected();
      if (!selected) payload.mode = "fresh";
      else payload.source_asset_id = selected.asset.id;
    }
    if (payload.mode === "fresh" && !content) throw new Error("Describe the image you want.");
    return payload;
  }

  /** A ui turn: the words, any uploaded image, and the version to revise (none: the server's choice). */
  buildUiTurn(content) {
    const attached = [this.tray.init(), ...this.tray.references()].filter(Boolean);
    if (!content && !attached.length) throw new Error("Describe the interface, or add an image of it.");
    const payload = { content, mode: "ui" };
    if (attached.length) payload.attachment_ids = attached.map((item) => item.asset.id);
    else if (this.uiParent) payload.parent_ui_generation_id = this.uiParent.id;
    return payload;
  }

  /** Upscale or variation of any image. */
  async runOn(entry, type, { factor } = {}) {
    const route = this.params.providerFor(type);
    if (!route) {
      showFormError(this.form, null, `No ready provider can make a ${type}.`);
      return false;
    }
    const payload = {
      content: "",
      mode: type,
      source_asset_id: entry.asset.id,
      provider: route.provider.name,
      model: route.model.id,
      params: type === "upscale" ? { upscale_factor: factor || 2 } : {},
    };
    if (type === "variation") {
      const values = this.params.values();
      payload.num_images = values.num_images;
      if (values.params.seed !== undefined) payload.params.seed = values.params.seed;
    }
    return this.send(payload, null);
  }

  async send(payload, busyButton) {
    this.sending = true;
    setBusy(busyButton, true);
    try {
      // Previews are for image turns; a ui or reply turn makes no image and takes no params.
      const body = payload.mode === "ui" || payload.mode === "reply" ? payload : withPreviews(payload);
      const turn = await api.post(`/sessions/${this.sessionId}/messages`, body);
      // A ui turn's job is no image step: the UI code panel shows it.
      this.store.addTurn(turn.ui_generation ? { ...turn, generation: null } : turn);
      if (turn.ui_generation) this.uiParent = null;
      this.hooks.sent(turn);
      return true;
    } catch (error) {
      showFormError(this.form, error, describeError(error));
      return false;
    } finally {
      this.sending = false;
      setBusy(busyButton, false);
    }
  }
}

const STICKY_MODES = new Set(["fresh", "reply", "ui"]);

function chip(imageUrl, label, actions, extraClass = "") {
  return h(
    "div",
    { class: `chip ${extraClass}`.trim() },
    imageUrl ? h("img", { class: "chip-image", src: imageUrl, alt: "" }) : null,
    h("span", { class: "chip-label" }, label),
    h("span", { class: "chip-actions" }, actions.filter(Boolean)),
  );
}

function button(label, onClick, ariaLabel) {
  return h("button", { type: "button", class: "button button-small button-quiet", "aria-label": ariaLabel || null, on: { click: onClick } }, label);
}
