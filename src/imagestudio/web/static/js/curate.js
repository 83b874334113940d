// Curating the selected image of a session: star it, make it the session's cover, or delete it.

import { api, describeError } from "./api.js";
import { outputLabel } from "./describe.js";
import { $, announce, confirmAction, setBusy, toast } from "./ui.js";

export class ImageCuration {
  /** refresh(): reloads the session (counts, cover, outputs) after a change. */
  constructor(root, store, { sessionId, refresh }) {
    this.store = store;
    this.sessionId = sessionId;
    this.refresh = refresh;
    this.star = $('[data-curate-action="star"]', root);
    this.cover = $('[data-curate-action="cover"]', root);
    this.remove = $('[data-curate-action="delete"]', root);
    this.star.addEventListener("click", () => this.toggleStar());
    this.cover.addEventListener("click", () => this.toggleCover());
    this.remove.addEventListener("click", () => this.deleteSelected());
    store.on("change", () => this.render());
  }

  render() {
    const entry = this.store.selected();
    if (!entry) return;
    this.star.setAttribute("aria-pressed", entry.asset.starred_at ? "true" : "false");
    const session = this.store.session || {};
    const isCover = session.thumbnail_asset_id === entry.asset.id && session.thumbnail_is_custom;
    this.cover.setAttribute("aria-pressed", isCover ? "true" : "false");
    this.cover.title = isCover ? "This image is the session's cover; press to go back to the newest image" : "Show this image for the session in the list of sessions";
  }

  async toggleStar() {
    const entry = this.store.selected();
    if (!entry) return;
    const starred = !entry.asset.starred_at;
    setBusy(this.star, true);
    try {
      const updated = await api.patch(`/assets/${entry.asset.id}`, { starred });
      // The store may have been refreshed meanwhile: mark the asset it holds now, then catch up.
      for (const known of [entry, this.store.findAsset(updated.id)]) if (known) known.asset.starred_at = updated.starred_at;
      this.render();
      this.refresh();
      announce(starred ? `${outputLabel(entry)} starred.` : `Star removed from ${outputLabel(entry).toLowerCase()}.`);
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    } finally {
      setBusy(this.star, false);
    }
  }

  async toggleCover() {
    const entry = this.store.selected();
    if (!entry) return;
    const picked = this.cover.getAttribute("aria-pressed") === "true";
    setBusy(this.cover, true);
    try {
      const session = await api.patch(`/sessions/${this.sessionId}`, { thumbnail_asset_id: picked ? null : entry.asset.id });
      this.store.setSession(session);
      this.refresh();
      announce(picked ? "The cover is the newest image again." : `${outputLabel(entry)} is now the session's cover.`);
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    } finally {
      setBusy(this.cover, false);
    }
  }

  async deleteSelected() {
    const entry = this.store.selected();
    if (!entry) return;
    const label = outputLabel(entry);
    const confirmed = await confirmAction({
      title: `Delete ${label.toLowerCase()}?`,
      message: "The image and its file are removed. The step keeps its other images.",
      confirmLabel: "Delete image",
    });
    if (!confirmed) return;
    try {
      await api.delete(`/assets/${entry.asset.id}`);
      entry.generation.outputs = (entry.generation.outputs || []).filter((asset) => asset.id !== entry.asset.id);
      this.store.unpin();
      announce(`${label} deleted.`);
      $("[data-prompt]")?.focus();
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    }
    this.refresh();
  }
}
