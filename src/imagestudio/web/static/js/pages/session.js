// The session page: timeline, viewer, history and composer around one store, kept live by SSE.

import { api, describeError, loadProviders } from "../api.js";
import { captionPanel } from "../captions.js";
import { Composer } from "../composer.js";
import { ImageCuration } from "../curate.js";
import { oneOpenAtATime, reserveRoom } from "../drawers.js";
import { outputLabel } from "../describe.js";
import { subscribe } from "../events.js";
import { History } from "../history.js";
import { Lightbox } from "../lightbox.js";
import { duplicateTurn } from "../reuse.js";
import { MaskPainter } from "../mask.js";
import { SessionHeader } from "../session-header.js";
import { FINAL, SessionStore, isFinal } from "../store.js";
import { Timeline } from "../timeline.js";
import { UiCodePanel } from "../uicode.js";
import { $, $$, announce, confirmAction, h, plural, toast } from "../ui.js";
import { Viewer } from "../viewer.js";

const SYNC_DELAY_MS = 120;

/** The composer's starting choices: a project's defaults over the account's, as the server applies them. */
async function projectDefaults(detail, settings) {
  if (!detail.project_id) return settings;
  const project = await api.get(`/projects/${detail.project_id}`).catch(() => null);
  const own = (project && project.settings) || {};
  if (!own.provider && !own.params) return settings;
  return {
    ...settings,
    ...(own.provider ? { default_provider: own.provider, default_model: own.model || null } : {}),
    default_params: { ...(settings.default_params || {}), ...(own.params || {}) },
  };
}

export async function start({ settings }) {
  const sessionId = document.body.dataset.sessionId;
  const store = new SessionStore();
  let detail;
  let providers;
  try {
    [detail, providers] = await Promise.all([api.get(`/sessions/${sessionId}`), loadProviders().catch(() => [])]);
  } catch (error) {
    showMissing(error);
    return;
  }
  const defaults = await projectDefaults(detail, settings);

  const sync = createSync(store, sessionId);
  const older = createOlderSteps(store, sessionId);
  let stream = null;
  // The stream starts after the newest event the page has seen: at first the detail's last_event_id,
  // so a long session's history is not sent again (and an event between the two reads still comes).
  const connect = (after, caughtUp) =>
    subscribe(`/api/v1/sessions/${sessionId}/events`, {
      after,
      onEvent: (event) => handleEvent(store, sync, event),
      // Whatever happened while the stream was down comes from the API; the detail just read needs no refresh.
      onOpen: (first) => {
        if (!(first && caughtUp)) sync.all();
      },
    });
  new SessionHeader(store, sessionId, {
    onLeaving: () => {
      stream.close();
      sync.stop();
    },
    onStaying: () => {
      sync.resume();
      stream = connect(stream.lastEventId(), false);
    },
  });
  const captions = captionPanel($("[data-viewer]"), {
    usePrompt: (text) => {
      composer.usePrompt(text);
      announce("The description is now the prompt.");
    },
  });
  const lightbox = new Lightbox(store, {
    useSettings: (entry) => composer.useSettings(entry),
    remix: (entry) => composer.useSettings(entry, { remix: true }),
    duplicate: async (entry) => {
      const step = entry.step;
      if (await composer.send(duplicateTurn(entry, store.outputs()), null)) announce(`Step ${step} is being made again.`);
      else composer.focus();
    },
  });
  const viewer = new Viewer($("[data-viewer]"), store, {
    fullscreen: (entry, opener, options) => lightbox.open(entry, opener, options),
    select: (assetId) => selectOutput(store, composer, assetId),
    iterate: (entry) => {
      store.select(entry.asset.id);
      composer.setMode("iterate");
      composer.focus();
      announce(`The next turn iterates from ${outputLabel(entry).toLowerCase()}.`);
    },
    mask: (entry) => mask.open(entry),
    variation: (entry) => composer.runOn(entry, "variation"),
    upscale: (entry, factor) => composer.runOn(entry, "upscale", { factor }),
    describe: (entry, button) => captions.describe(entry.asset.id, button),
    shown: (entry) => captions.reset(entry ? entry.asset.id : null),
    abilities: () => composer.params.abilities(),
  });
  const uiCode = new UiCodePanel(sessionId, store, {
    revise: (ui, label) => {
      composer.reviseUi({ id: ui.id, label });
      announce(`The next turn revises ${label}.`);
    },
    refresh: () => sync.all(),
  });
  new ImageCuration($("[data-viewer]"), store, { sessionId, refresh: () => sync.all() });
  oneOpenAtATime($$(".composer-panel"));
  reserveRoom($("[data-composer]"));
  const timeline = new Timeline($("[data-timeline]"), store, {
    codeTurn: (message) => uiCode.turn(message),
    select: (assetId) => selectOutput(store, composer, assetId),
    cancel: (generation) => cancelGeneration(store, sync, generation),
    retry: (generation) => retryGeneration(store, sync, generation),
    remove: (generation) => removeGeneration(store, sync, generation),
    usePrompt: (text) => {
      composer.usePrompt(text);
      announce("The prompt is now in the composer.");
    },
    sendPrompt: (text) => composer.sendPrompt(text),
    ask: (question) => composer.ask(question),
    cancelReply: (generationId) => cancelReply(sync, generationId),
    replyError: (generationId) => replyError(generationId),
    older: () => older.next(),
  });
  new History($(".history"), store, {
    select: (assetId) => selectOutput(store, composer, assetId),
    showTurn: (generationId) => timeline.focusGeneration(generationId),
    reveal: (generationId) => older.reveal(generationId),
  });
  const mask = new MaskControls(store, viewer, () => composer);
  const composer = new Composer($("[data-composer]"), store, {
    sessionId,
    providers,
    settings: defaults,
    hooks: {
      editMask: (entry) => mask.open(entry),
      discardMask: () => mask.discard(),
      hasUi: () => store.messages.some((message) => message.type === "code"),
      maskBlob: () => mask.painter.toBlob(),
      sent: (turn) => {
        const step = store.step(turn.generation_id);
        if (turn.ui_generation) announce("Writing the code.");
        else announce(step ? `Step ${step} queued.` : "Question sent. The answer appears as it is written.");
        timeline.scrollToEnd();
        sync.all();
      },
    },
  });

  store.on("transition", ({ generation }) => announceTransition(store, generation));
  store.setDetail(detail);
  viewer.render();
  // Keyboard first: the prompt has focus on arrival, ready for the next turn. Not on touch screens, where
  // focusing would open the on-screen keyboard and scroll the image away.
  if (window.matchMedia("(pointer: fine)").matches) composer.focus({ preventScroll: true });

  stream = connect(detail.last_event_id, true);
  // A tab that was hidden for a while may have missed a reconnection; catch up when it is seen again.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && store.running().length) sync.all();
  });
}

function selectOutput(store, composer, assetId) {
  store.select(assetId);
  composer.setMode("iterate");
  const entry = store.selected();
  if (entry) announce(`Selected ${outputLabel(entry).toLowerCase()}. The next turn iterates from it.`);
}

function handleEvent(store, sync, event) {
  const generationId = event.generation_id;
  const known = store.generations.get(generationId);
  const reply = known ? null : store.replyMessage(generationId);
  if (reply) {
    handleReplyEvent(store, sync, reply, event);
    return;
  }
  if (!known) {
    // An older step not loaded: its replayed history changes nothing shown, unless it was still running.
    const node = store.node(generationId);
    if (node && (FINAL.has(node.status) || !FINAL.has(event.type))) return;
    // Work started elsewhere (another tab or device), or an older step that just ended: load it.
    sync.all();
    return;
  }
  if (event.type === "progress") {
    const payload = event.payload || {};
    const image = Number.isInteger(payload.batch_index) ? payload.batch_index : null;
    const preview = payload.preview && Number.isInteger(payload.preview.index) ? payload.preview : null;
    const at = Date.parse(event.created_at);
    store.applyProgress(generationId, Number(payload.step) || 0, Number(payload.total) || 0, {
      image,
      at: Number.isNaN(at) ? Date.now() : at,
      preview: preview && { number: preview.index, batch_index: preview.batch_index || 0, width: preview.width, height: preview.height },
    });
    return;
  }
  if (isFinal(known)) return; // a replay of something this page already shows
  if (event.type === "succeeded" || event.type === "failed" || event.type === "canceled") sync.all();
  else sync.generation(generationId);
}

/** A reply's answer streams in as delta events; its other events change its message's status. */
function handleReplyEvent(store, sync, message, event) {
  if (event.type === "delta") {
    const payload = event.payload || {};
    store.applyDelta(event.generation_id, Number(event.attempt) || 0, Number(payload.offset) || 0, String(payload.text || ""));
    return;
  }
  if (FINAL.has(message.status)) return; // a replay of something this page already shows
  // A new attempt writes its answer from the start.
  if (event.type === "started" || event.type === "retrying") store.replies.delete(event.generation_id);
  if (FINAL.has(event.type) && store.expected.has(event.generation_id)) {
    announce(event.type === "succeeded" ? "The answer is ready." : `The question was not answered (${event.type}).`);
  }
  sync.all();
}

const OLDER_PAGE = 30;

/** Older steps, a page at a time (GET /sessions/{id}/steps), one request at a time. */
function createOlderSteps(store, sessionId) {
  let loading = null;

  async function load() {
    try {
      const cursor = encodeURIComponent(store.olderCursor);
      store.addOlder(await api.get(`/sessions/${sessionId}/steps?cursor=${cursor}&limit=${OLDER_PAGE}`));
    } catch (error) {
      toast(describeError(error), { kind: "error" });
      throw error;
    } finally {
      loading = null;
    }
  }

  const next = () => {
    if (!store.olderCursor) return Promise.resolve();
    if (!loading) loading = load();
    return loading;
  };

  return {
    next,
    /** Loads older pages until the step is here (a jump from the lineage); answers its generation. */
    async reveal(generationId) {
      while (!store.generations.has(generationId) && store.olderCursor) await next();
      return store.generations.get(generationId) || null;
    },
  };
}

/** Coalesced refreshes: many events in a burst cost one request. A full refresh covers single ones. */
function createSync(store, sessionId) {
  let allTimer = null;
  const generationTimers = new Map();
  let inFlight = null;
  let stopped = false;

  async function refreshAll() {
    allTimer = null;
    if (stopped) return;
    if (inFlight) {
      await inFlight.catch(() => {});
    }
    inFlight = api.get(`/sessions/${sessionId}`);
    try {
      store.setDetail(await inFlight);
    } catch (error) {
      if (error.status === 404) showMissing(error);
    } finally {
      inFlight = null;
    }
  }

  async function refreshGeneration(generationId) {
    generationTimers.delete(generationId);
    if (stopped) return;
    try {
      store.upsertGeneration(await api.get(`/generations/${generationId}`));
    } catch (error) {
      if (error.status === 404) store.removeGeneration(generationId);
    }
  }

  return {
    /** No more refreshes: the session is going away. */
    stop() {
      stopped = true;
      window.clearTimeout(allTimer);
      for (const timer of generationTimers.values()) window.clearTimeout(timer);
      generationTimers.clear();
    },
    resume() {
      stopped = false;
    },
    /** Drops a pending refresh of a generation that is being deleted. */
    forget(generationId) {
      window.clearTimeout(generationTimers.get(generationId));
      generationTimers.delete(generationId);
    },
    all() {
      if (stopped) return;
      for (const timer of generationTimers.values()) window.clearTimeout(timer);
      generationTimers.clear();
      window.clearTimeout(allTimer);
      allTimer = window.setTimeout(refreshAll, SYNC_DELAY_MS);
    },
    generation(generationId) {
      if (stopped || allTimer || generationTimers.has(generationId)) return;
      generationTimers.set(generationId, window.setTimeout(() => refreshGeneration(generationId), SYNC_DELAY_MS));
    },
  };
}

function announceTransition(store, generation) {
  const step = store.step(generation.id);
  const count = (generation.outputs || []).length;
  const messages = {
    queued: `Step ${step} is waiting in the queue.`,
    processing: `Step ${step} is generating.`,
    succeeded: `Step ${step} finished with ${plural(count, "image")}.`,
    failed: `Step ${step} failed: ${(generation.error && generation.error.message) || "unknown error"}.`,
    canceled: `Step ${step} was canceled.`,
  };
  if (messages[generation.status]) announce(messages[generation.status]);
}

async function cancelGeneration(store, sync, generation) {
  try {
    const updated = await api.post(`/generations/${generation.id}/cancel`, {});
    if (updated && updated.id) store.upsertGeneration(updated);
    announce(`Canceling step ${store.step(generation.id)}.`);
  } catch (error) {
    toast(describeError(error), { kind: "error" });
  }
  sync.generation(generation.id);
}

const replyErrors = new Map();

/** Why a reply failed: its job's error, fetched once. */
function replyError(generationId) {
  if (!replyErrors.has(generationId)) {
    replyErrors.set(
      generationId,
      api.get(`/generations/${generationId}`).then((generation) => generation.error),
    );
  }
  return replyErrors.get(generationId);
}

async function cancelReply(sync, generationId) {
  try {
    await api.post(`/generations/${generationId}/cancel`, {});
    announce("Canceling the answer.");
  } catch (error) {
    toast(describeError(error), { kind: "error" });
  }
  sync.all();
}

async function retryGeneration(store, sync, generation) {
  try {
    const step = store.step(generation.id);
    const retried = await api.post(`/generations/${generation.id}/retry`, {});
    if (retried && retried.id) store.upsertGeneration(retried);
    // The retry replaces the failed step in place: it answers the same turn, and the original goes.
    for (const message of store.messages) if (message.generation_id === generation.id) message.generation_id = retried.id;
    sync.forget(generation.id);
    await api.delete(`/generations/${generation.id}`).catch(() => {});
    store.removeGeneration(generation.id);
    announce(`Retrying step ${step}.`);
  } catch (error) {
    toast(describeError(error), { kind: "error" });
  }
  sync.all();
}

async function removeGeneration(store, sync, generation) {
  const step = store.step(generation.id);
  const confirmed = await confirmAction({
    title: `Delete step ${step}?`,
    message: "The step, its prompt and its images are removed from this session. Steps made from it stay.",
    confirmLabel: "Delete step",
  });
  if (!confirmed) return;
  sync.forget(generation.id);
  try {
    await api.delete(`/generations/${generation.id}`);
    store.removeGeneration(generation.id);
    announce(`Step ${step} deleted.`);
    $("[data-prompt]")?.focus();
  } catch (error) {
    toast(describeError(error), { kind: "error" });
  }
  sync.all();
}

function showMissing(error) {
  const main = $("#main");
  const notFound = error.status === 404 || error.status === 403;
  main.replaceChildren(
    h(
      "div",
      { class: "empty-state" },
      h("h1", { class: "empty-title" }, notFound ? "This session is not here" : "The session could not be loaded"),
      h("p", { class: "empty-text" }, notFound ? "It may have been deleted, or it belongs to someone else." : describeError(error)),
      h("a", { class: "button button-primary", href: "/" }, "Back to your sessions"),
    ),
  );
  main.focus();
}

/** The mask toolbar and the painter, tied to the viewer. */
class MaskControls {
  constructor(store, viewer, getComposer) {
    this.store = store;
    this.viewer = viewer;
    this.getComposer = getComposer;
    this.toolbar = $("[data-mask-toolbar]");
    this.size = $("[data-mask-size]");
    this.painter = new MaskPainter($("[data-mask-canvas]"), $("[data-viewer-image]"));
    this.entry = null;
    this.active = false;

    for (const tool of $$("[data-mask-tool]", this.toolbar)) {
      tool.addEventListener("click", () => this.setTool(tool.dataset.maskTool));
    }
    this.size.addEventListener("input", () => this.painter.setSize(this.size.value));
    this.painter.setSize(this.size.value);
    this.toolbar.addEventListener("click", (event) => {
      const action = event.target.closest("[data-mask-action]")?.dataset.maskAction;
      if (action === "clear") this.painter.clear();
      else if (action === "invert") this.painter.invert();
      else if (action === "undo") this.painter.undo();
      else if (action === "cancel") this.cancel();
      else if (action === "done") this.done();
    });
    document.addEventListener("keydown", (event) => this.shortcut(event));
  }

  setTool(tool) {
    this.painter.setTool(tool);
    for (const button of $$("[data-mask-tool]", this.toolbar)) button.setAttribute("aria-pressed", button.dataset.maskTool === tool ? "true" : "false");
  }

  open(entry) {
    this.entry = entry;
    this.active = true;
    if (this.store.selectedAssetId !== entry.asset.id) this.store.select(entry.asset.id);
    this.painter.open(entry.asset);
    this.toolbar.hidden = false;
    this.viewer.setMasking(true);
    $("[data-viewer]").classList.add("viewer-masking");
    $('[data-mask-tool="brush"]', this.toolbar).focus();
    announce("Mask painting. Paint over the area to repaint, then choose Use mask. Escape cancels.");
  }

  close() {
    this.active = false;
    this.painter.close();
    this.toolbar.hidden = true;
    this.viewer.setMasking(false);
    $("[data-viewer]").classList.remove("viewer-masking");
  }

  cancel() {
    const composer = this.getComposer();
    this.close();
    // Keep a mask that was already in use; a mask never confirmed is thrown away.
    if (!composer.mask) this.painter.discard();
    $('[data-image-action="mask"]')?.focus();
  }

  done() {
    if (!this.painter.hasPaint()) {
      toast("Paint over the part of the image to change first.", { kind: "error" });
      return;
    }
    const previewUrl = this.painter.previewUrl();
    const assetId = this.entry.asset.id;
    this.close();
    const composer = this.getComposer();
    composer.setMask({ assetId, previewUrl });
    composer.focus();
    announce("Mask ready. Describe what to paint in the masked area, then choose Inpaint.");
  }

  discard() {
    if (this.active) this.close();
    this.painter.discard();
  }

  shortcut(event) {
    if (!this.active) return;
    if (event.key === "Escape") {
      event.preventDefault();
      this.cancel();
    } else if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
      event.preventDefault();
      this.painter.undo();
    } else if (event.target === document.body || this.toolbar.contains(event.target)) {
      if (event.key === "[" || event.key === "]") {
        const next = Number(this.size.value) + (event.key === "]" ? 8 : -8);
        this.size.value = String(Math.max(Number(this.size.min), Math.min(Number(this.size.max), next)));
        this.painter.setSize(this.size.value);
      }
    }
  }
}
