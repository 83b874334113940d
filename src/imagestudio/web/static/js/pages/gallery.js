// Gallery: every image the user made, across sessions, filtered, page after page as the list scrolls;
// several can be chosen to download as one zip, star or delete.

import { api, describeError, loadProviders, query } from "../api.js";
import { providerLabel } from "../models.js";
import {
  $,
  $$,
  announce,
  clearFormError,
  confirmAction,
  debounce,
  h,
  plural,
  rovingFocus,
  setBusy,
  setTabStop,
  showFormError,
  toast,
} from "../ui.js";

const PAGE_SIZE = 30;
// The server's limit for one zip (models/limits.py ARCHIVE_IMAGES_MAX).
const ZIP_MAX = 100;
const STAR_PATH = "M12 3.2l2.7 5.5 6 .9-4.3 4.2 1 6-5.4-2.8-5.4 2.8 1-6L3.3 9.6l6-.9z";

export async function start() {
  const gallery = new Gallery();
  gallery.fillProviders();
  await gallery.load(true);
}

class Gallery {
  constructor() {
    this.form = $("[data-gallery-filters]");
    this.grid = $("[data-gallery-grid]");
    this.empty = $("[data-gallery-empty]");
    this.more = $("[data-gallery-more]");
    this.items = new Map();
    this.selected = new Set();
    this.cursor = null;
    this.loading = false;
    this.round = 0; // discards answers to earlier filters
    this.wire();
  }

  wire() {
    const reload = debounce(() => this.load(true), 300);
    this.form.addEventListener("input", reload);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.load(true);
    });
    this.form.addEventListener("reset", () => setTimeout(() => this.load(true), 0));
    this.more.addEventListener("click", () => this.load(false));
    if ("IntersectionObserver" in window) {
      new IntersectionObserver((entries) => {
        if (entries.some((entry) => entry.isIntersecting) && this.cursor && !this.loading) this.load(false);
      }, { rootMargin: "600px" }).observe($("[data-gallery-sentinel]"));
    }
    // The images are one tab stop (arrows move between them); each card's checkbox and star are their own.
    rovingFocus(this.grid, ".gallery-link", "[data-gallery-grid]");
    this.grid.addEventListener("change", (event) => {
      const box = event.target.closest("[data-select]");
      if (!box) return;
      const id = box.closest("[data-asset-id]").dataset.assetId;
      if (box.checked) this.selected.add(id);
      else this.selected.delete(id);
      this.updateSelection();
    });
    this.grid.addEventListener("click", (event) => {
      const star = event.target.closest("[data-star]");
      if (star) this.toggleStar(star.closest("[data-asset-id]").dataset.assetId);
    });
    const bulk = (name, handler) => $(`[data-bulk="${name}"]`).addEventListener("click", handler);
    bulk("select-all", () => {
      for (const id of this.items.keys()) this.selected.add(id);
      this.updateSelection();
    });
    bulk("clear", () => {
      this.selected.clear();
      this.updateSelection();
    });
    bulk("star", (event) => this.starSelected(event.currentTarget, true));
    bulk("unstar", (event) => this.starSelected(event.currentTarget, false));
    bulk("delete", (event) => this.deleteSelected(event.currentTarget));
    $('[data-bulk="download"]').addEventListener("click", (event) => {
      if (event.currentTarget.getAttribute("aria-disabled") === "true") event.preventDefault();
    });
  }

  async fillProviders() {
    const select = $("[data-filter-provider]");
    try {
      const providers = await loadProviders();
      select.append(...providers.map((provider) => h("option", { value: provider.name }, providerLabel(provider))));
    } catch {
      // Filtering by provider is a convenience; the rest works without the list.
    }
  }

  /** The filters as query parameters; null (with the form showing why) when one cannot be read. */
  filters() {
    clearFormError(this.form);
    const data = new FormData(this.form);
    const params = { q: data.get("q").trim(), provider: data.get("provider"), model: data.get("model").trim() };
    const seed = data.get("seed").trim();
    if (seed && !/^[0-9]+$/.test(seed)) return this.refuse("seed", "The seed is a whole number.");
    params.seed = seed;
    const size = data.get("size").trim();
    if (size) {
      const match = /^([0-9]+)\s*[x×]\s*([0-9]+)$/i.exec(size);
      if (!match) return this.refuse("size", "Write the size as width × height, for example 1024x768.");
      [params.width, params.height] = [match[1], match[2]];
    }
    if (data.get("from")) params.created_after = new Date(`${data.get("from")}T00:00:00`).toISOString();
    if (data.get("to")) {
      const end = new Date(`${data.get("to")}T00:00:00`);
      end.setDate(end.getDate() + 1);
      params.created_before = end.toISOString();
    }
    if (data.get("starred")) params.starred = "true";
    return params;
  }

  refuse(name, message) {
    const field = this.form.elements[name];
    showFormError(this.form, null, message);
    field.setAttribute("aria-invalid", "true");
    return null;
  }

  async load(reset) {
    if (this.loading && !reset) return;
    const params = this.filters();
    if (!params) return;
    for (const field of this.form.querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
    if (reset) {
      this.round += 1;
      this.cursor = null;
      this.items.clear();
      this.grid.replaceChildren();
    }
    const round = this.round;
    this.loading = true;
    this.grid.setAttribute("aria-busy", "true");
    try {
      const page = await api.get(`/assets${query({ ...params, limit: PAGE_SIZE, cursor: this.cursor })}`);
      if (round !== this.round) return;
      for (const item of page.items) this.items.set(item.id, item);
      this.grid.append(...page.items.map((item) => this.card(item)));
      const links = $$(".gallery-link", this.grid);
      setTabStop(links, links.find((link) => link.tabIndex === 0));
      this.cursor = page.next_cursor;
      this.more.hidden = !this.cursor;
      this.showEmpty(params);
      if (!reset) announce(`Loaded ${plural(page.items.length, "more image")}.`);
      else announce(this.items.size ? `${plural(this.items.size, "image")} shown${this.cursor ? ", more below" : ""}.` : "No images match.");
    } catch (error) {
      if (round !== this.round) return;
      showFormError(this.form, error, `Could not load the images: ${describeError(error)}`);
    } finally {
      if (round === this.round) {
        this.loading = false;
        this.grid.setAttribute("aria-busy", "false");
      }
    }
    this.updateSelection();
  }

  showEmpty(params) {
    const filtered = Object.values(params).some((value) => value);
    this.empty.hidden = this.items.size > 0;
    $("[data-gallery-empty-title]").textContent = filtered ? "No images match" : "No images yet";
    $("[data-gallery-empty-text]").textContent = filtered
      ? "Try other filters, or clear them."
      : "Images you generate in any session appear here.";
  }

  card(item) {
    const name = describe(item);
    const target = item.session_id ? `/sessions/${item.session_id}` : item.content_url;
    return h(
      "li",
      { class: "gallery-card", dataset: { assetId: item.id } },
      h(
        "a",
        { class: "gallery-link", href: target },
        h("img", { class: "gallery-image", src: item.thumbnail_url, alt: name, loading: "lazy", decoding: "async", width: item.width, height: item.height }),
      ),
      h(
        "div",
        { class: "gallery-card-bar" },
        h(
          "label",
          { class: "gallery-check" },
          h("input", { type: "checkbox", dataset: { select: "" }, checked: this.selected.has(item.id) }),
          h("span", { class: "visually-hidden" }, `Select ${name}`),
        ),
        h("span", { class: "gallery-meta" }, meta(item)),
        h(
          "button",
          {
            type: "button",
            class: "gallery-star",
            dataset: { star: "" },
            attrs: { "aria-pressed": item.starred_at ? "true" : "false", "aria-label": `Star ${name}` },
          },
          starIcon(),
        ),
      ),
    );
  }

  updateSelection() {
    for (const id of this.selected) if (!this.items.has(id)) this.selected.delete(id);
    for (const box of $$("[data-select]", this.grid)) box.checked = this.selected.has(box.closest("[data-asset-id]").dataset.assetId);
    const count = this.selected.size;
    $("[data-selection-count]").textContent = count ? `${plural(count, "image")} selected` : "No images selected";
    for (const name of ["star", "unstar", "delete", "clear"]) $(`[data-bulk="${name}"]`).disabled = count === 0;
    const download = $('[data-bulk="download"]');
    const ids = [...this.selected];
    if (count && count <= ZIP_MAX) {
      const search = new URLSearchParams(ids.map((id) => ["ids", id]));
      download.href = `/api/v1/assets/archive?${search}`;
      download.setAttribute("aria-disabled", "false");
      download.title = "";
    } else {
      download.removeAttribute("href");
      download.setAttribute("aria-disabled", "true");
      download.title = count > ZIP_MAX ? `A zip holds at most ${ZIP_MAX} images.` : "";
    }
  }

  async toggleStar(id) {
    const item = this.items.get(id);
    if (!item) return;
    try {
      const updated = await api.patch(`/assets/${id}`, { starred: !item.starred_at });
      this.applyStar(id, updated.starred_at);
      announce(updated.starred_at ? "Starred." : "Star removed.");
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    }
  }

  applyStar(id, starredAt) {
    const item = this.items.get(id);
    item.starred_at = starredAt;
    const button = $(`[data-asset-id="${id}"] [data-star]`, this.grid);
    if (button) button.setAttribute("aria-pressed", starredAt ? "true" : "false");
  }

  async starSelected(button, starred) {
    setBusy(button, true);
    let failed = 0;
    for (const id of [...this.selected]) {
      try {
        const updated = await api.patch(`/assets/${id}`, { starred });
        this.applyStar(id, updated.starred_at);
      } catch {
        failed += 1;
      }
    }
    setBusy(button, false);
    const done = this.selected.size - failed;
    announce(`${plural(done, "image")} ${starred ? "starred" : "unstarred"}.`);
    if (failed) toast(`${plural(failed, "image")} could not be changed.`, { kind: "error" });
  }

  async deleteSelected(button) {
    const count = this.selected.size;
    const confirmed = await confirmAction({
      title: `Delete ${plural(count, "image")}?`,
      message: "The images and their files are removed from their sessions. This cannot be undone.",
      confirmLabel: "Delete",
    });
    if (!confirmed) return;
    setBusy(button, true);
    let failed = 0;
    for (const id of [...this.selected]) {
      try {
        await api.delete(`/assets/${id}`);
        this.items.delete(id);
        this.selected.delete(id);
        $(`[data-asset-id="${id}"]`, this.grid)?.remove();
      } catch (error) {
        failed += 1;
        toast(describeError(error), { kind: "error" });
      }
    }
    setBusy(button, false);
    announce(`${plural(count - failed, "image")} deleted.`);
    this.empty.hidden = this.items.size > 0;
    this.updateSelection();
    $('[data-bulk="select-all"]').focus();
  }
}

function describe(item) {
  const prompt = item.prompt ? item.prompt.slice(0, 80) : "image";
  return item.step ? `${prompt} (step ${item.step}, image ${item.batch_index + 1})` : prompt;
}

function meta(item) {
  const where = item.session_title ? `${item.session_title}` : "No session";
  return `${where} · ${item.width}×${item.height}`;
}

function starIcon() {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", STAR_PATH);
  svg.append(path);
  return svg;
}
