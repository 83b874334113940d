// The session's title bar: rename, set its context, archive or restore, delete; what it cost so far.

import { api, describeError } from "./api.js";
import { $, announce, confirmAction, formatMoney, setBusy, sumMoney, toast } from "./ui.js";

export class SessionHeader {
  /** onLeaving(): the page is about to delete its session, so live updates stop; onStaying(): it was not deleted. */
  constructor(store, sessionId, { onLeaving = () => {}, onStaying = () => {} } = {}) {
    this.store = store;
    this.sessionId = sessionId;
    this.onLeaving = onLeaving;
    this.onStaying = onStaying;
    this.title = $("[data-session-title]");
    this.form = $("[data-rename-form]");
    this.input = $("[data-rename-input]");
    this.archivedBadge = $("[data-archived-badge]");
    this.renameButton = $('[data-action="rename"]');
    this.archiveButton = $('[data-action="archive"]');
    this.deleteButton = $('[data-action="delete-session"]');
    this.cost = $("[data-session-cost]");
    this.contextButton = $('[data-action="context"]');
    this.contextForm = $("[data-context-form]");
    this.contextInput = $("[data-context-input]");

    this.renameButton.addEventListener("click", () => this.startRename());
    $('[data-action="rename-cancel"]').addEventListener("click", () => this.stopRename());
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.stopRename();
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.saveTitle();
    });
    this.archiveButton.addEventListener("click", () => this.toggleArchived());
    this.contextButton.addEventListener("click", () => this.toggleContext(this.contextForm.hidden));
    $('[data-action="context-cancel"]').addEventListener("click", () => this.toggleContext(false));
    this.contextForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.saveContext();
    });
    this.deleteButton.addEventListener("click", () => this.deleteSession());
    store.on("change", ({ all, session, generationId }) => {
      if (all || session) this.render();
      else if (generationId) this.renderCost();
    });
  }

  render() {
    const session = this.store.session;
    if (!session) return;
    this.title.textContent = session.title || "Untitled session";
    document.title = `${session.title || "Session"} · Image Studio`;
    this.archivedBadge.hidden = !session.archived;
    this.archiveButton.textContent = session.archived ? "Restore" : "Archive";
    this.renderCost();
  }

  /**
   * The sum of the generations' costs, as the store has them now (so it follows live updates); while older
   * steps are not loaded, the session's total as the server last counted it.
   */
  renderCost() {
    const { session } = this.store;
    const all = !this.store.olderCursor || !session.total_cost;
    const total = all ? sumMoney([...this.store.generations.values()].map((generation) => generation.cost)) : Number(session.total_cost.amount) ? session.total_cost : null;
    this.cost.hidden = total === null;
    if (total !== null) this.cost.textContent = `Cost ${formatMoney(total)}`;
  }

  toggleContext(open) {
    if (open) this.contextInput.value = this.store.session.context || "";
    this.contextForm.hidden = !open;
    this.contextButton.setAttribute("aria-expanded", String(open));
    (open ? this.contextInput : this.contextButton).focus();
  }

  async saveContext() {
    const submit = this.contextForm.querySelector('button[type="submit"]');
    setBusy(submit, true);
    try {
      const session = await api.patch(`/sessions/${this.sessionId}`, { context: this.contextInput.value.trim() });
      this.store.setSession(session);
      this.toggleContext(false);
      toast(session.context ? "Context saved: the assistant reads it with every turn." : "Context cleared.", { kind: "success" });
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    } finally {
      setBusy(submit, false);
    }
  }

  startRename() {
    this.input.value = this.store.session.title || "";
    this.title.hidden = true;
    this.renameButton.hidden = true;
    this.form.hidden = false;
    this.input.focus();
    this.input.select();
  }

  stopRename() {
    this.form.hidden = true;
    this.title.hidden = false;
    this.renameButton.hidden = false;
    this.renameButton.focus();
  }

  async saveTitle() {
    const title = this.input.value.trim();
    if (!title) {
      this.input.setAttribute("aria-invalid", "true");
      this.input.focus();
      return;
    }
    const submit = this.form.querySelector('button[type="submit"]');
    setBusy(submit, true);
    try {
      const session = await api.patch(`/sessions/${this.sessionId}`, { title });
      this.store.setSession(session);
      this.input.removeAttribute("aria-invalid");
      this.stopRename();
      announce(`Renamed to ${session.title}.`);
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    } finally {
      setBusy(submit, false);
    }
  }

  async toggleArchived() {
    const archived = !this.store.session.archived;
    setBusy(this.archiveButton, true);
    try {
      const session = await api.patch(`/sessions/${this.sessionId}`, { archived });
      this.store.setSession(session);
      toast(archived ? "Session archived. Find it under Archived on the sessions page." : "Session restored.", { kind: "success" });
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    } finally {
      setBusy(this.archiveButton, false);
      this.archiveButton.focus();
    }
  }

  async deleteSession() {
    const confirmed = await confirmAction({
      title: "Delete this session?",
      message: "Its messages and images are deleted for good. Running work is canceled.",
      confirmLabel: "Delete session",
    });
    if (!confirmed) return;
    setBusy(this.deleteButton, true);
    this.onLeaving();
    try {
      await api.delete(`/sessions/${this.sessionId}`);
      window.location.assign("/");
    } catch (error) {
      this.onStaying();
      setBusy(this.deleteButton, false);
      toast(describeError(error), { kind: "error" });
    }
  }
}
