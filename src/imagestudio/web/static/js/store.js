// The session page's state: the session, its messages and generations, the lineage, and which image is
// selected. Views subscribe to "change" (anything), "progress" (one generation's step), "delta" (a reply's
// streamed text grew) and "transition" (a generation's status moved, as seen by this page: the place for
// announcements). Replies (text answers) are messages with a generation_id but no step.

export const FINAL = new Set(["succeeded", "failed", "canceled"]);

export function isFinal(generation) {
  return Boolean(generation) && FINAL.has(generation.status);
}

/** The image of a batch rendered one image after another that step `step` (of `total`, all images') belongs to. */
function imageAt(generation, step, total) {
  const count = generation.num_images || 1;
  return Math.max(0, Math.min(count - 1, Math.floor(step / (total / count))));
}

const RANK = { queued: 0, processing: 1, succeeded: 2, failed: 2, canceled: 2 };

/**
 * Whether `next` is at least as new as `previous`. Answers from different requests can arrive out of order
 * (a turn's POST answer after an event-driven refresh); a final state is never undone, and a generation only
 * goes back to "queued" when a new attempt starts.
 */
export function isNewer(previous, next) {
  if (!previous) return true;
  if (isFinal(previous)) return isFinal(next);
  if ((next.attempt || 0) !== (previous.attempt || 0)) return (next.attempt || 0) > (previous.attempt || 0);
  return RANK[next.status] >= RANK[previous.status];
}

export class SessionStore extends EventTarget {
  constructor() {
    super();
    this.session = null;
    this.messages = [];
    this.generations = new Map();
    this.lineage = [];
    this.steps = new Map();
    this.selectedAssetId = null;
    // True once the person picked an image; otherwise the selection follows the latest output.
    this.pinned = false;
    // Generations this page asked for: their outcome is news even if the first sight of them is final.
    this.expected = new Set();
    // False until the first detail arrives: what that shows had happened before the page was open.
    this.loaded = false;
    // A reply's text as it streams: generation id -> { attempt, text }.
    this.replies = new Map();
  }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  on(type, handler) {
    this.addEventListener(type, (event) => handler(event.detail));
  }

  /** Replaces everything with a fresh GET /sessions/{id}. */
  setDetail(detail) {
    const { messages, generations, lineage, ...session } = detail;
    this.session = session;
    this.messages = messages || [];
    const previous = this.generations;
    this.generations = new Map();
    for (const generation of generations || []) {
      const known = previous.get(generation.id);
      this.generations.set(generation.id, isNewer(known, generation) ? this.mergeProgress(known, generation) : known);
    }
    this.lineage = lineage || [];
    this.computeSteps();
    const initial = !this.loaded;
    this.loaded = true;
    for (const generation of this.generations.values()) this.noticeTransition(previous.get(generation.id), generation, initial);
    this.keepSelectionValid();
    this.emit("change", { all: true });
  }

  setSession(session) {
    this.session = { ...this.session, ...session };
    this.emit("change", { session: true });
  }

  /** One generation changed (GET /generations/{id}, or a turn just created). */
  upsertGeneration(generation) {
    const previous = this.generations.get(generation.id);
    if (!isNewer(previous, generation)) return;
    const merged = this.mergeProgress(previous, generation);
    this.generations.set(generation.id, merged);
    if (!this.steps.has(generation.id)) this.computeSteps();
    this.noticeTransition(previous, merged);
    this.keepSelectionValid();
    this.emit("change", { generationId: generation.id });
  }

  /** A chat turn was posted: its two messages and the generation appear at once (a reply makes no step). */
  addTurn(turn) {
    this.expected.add(turn.generation_id);
    const known = this.generations.get(turn.generation_id);
    if (isFinal(known)) this.emit("transition", { generation: known, from: null });
    for (const message of [turn.user_message, turn.assistant_message]) {
      if (message && !this.messages.some((known) => known.id === message.id)) this.messages.push(message);
    }
    if (turn.generation && turn.generation.type !== "reply") this.upsertGeneration(turn.generation);
    else this.emit("change", { all: true });
  }

  /** The assistant message a reply job writes, if this page knows it. */
  replyMessage(generationId) {
    return this.messages.find((message) => message.generation_id === generationId && !this.generations.has(generationId)) || null;
  }

  /** A piece of a reply's answer. Pieces come in order; a replayed one is skipped, a new attempt starts over. */
  applyDelta(generationId, attempt, offset, text) {
    let reply = this.replies.get(generationId);
    if (!reply || attempt > reply.attempt) {
      reply = { attempt, text: "" };
      this.replies.set(generationId, reply);
    }
    if (attempt < reply.attempt || offset !== reply.text.length) return;
    reply.text += text;
    const message = this.replyMessage(generationId);
    if (message && message.status === "queued") {
      message.status = "processing";
      this.emit("change", { messageId: message.id });
    }
    this.emit("delta", { generationId });
  }

  replyText(generationId) {
    const reply = this.replies.get(generationId);
    return reply ? reply.text : "";
  }

  removeGeneration(generationId) {
    this.generations.delete(generationId);
    this.messages = this.messages.filter((message) => message.generation_id !== generationId);
    this.computeSteps();
    this.keepSelectionValid();
    this.emit("change", { all: true });
  }

  /**
   * Progress events arrive often; only the progress views need them. `image` is the output the step belongs
   * to (providers that render one image at a time), `preview` an intermediate picture the event announced.
   */
  applyProgress(generationId, step, total, { image = null, preview = null, at = Date.now() } = {}) {
    const generation = this.generations.get(generationId);
    if (!generation || isFinal(generation)) return;
    // A preview is written after its picture is stored, so it may arrive after later steps: keep the newest.
    const index = preview ? preview.batch_index || 0 : null;
    const shown = preview && generation.previews ? generation.previews[index] : null;
    if (preview && (!shown || shown.number < preview.number)) {
      generation.previews = { ...generation.previews, [index]: preview };
      this.emit("preview", { generationId });
    }
    const previous = generation.progress || { step: 0, total: 0 };
    if (step < previous.step && total === previous.total) {
      // An older event replayed. If it names its image, the provider renders one image at a time: so does the
      // step shown (it may come from the API, which does not say which image a step belongs to).
      if (image !== null && (previous.image === null || previous.image === undefined)) {
        generation.progress = { ...previous, image: imageAt(generation, previous.step, previous.total) };
        this.emit("progress", { generationId, step: previous.step, total: previous.total });
      }
      return;
    }
    generation.progress = { step, total, image, at };
    // The pace for the time left: from the first step this page saw, by the events' own times (so a replay
    // on arrival, which delivers many at once, still tells the real pace).
    if (!generation.pace || generation.pace.total !== total) generation.pace = { at, step, total };
    if (generation.status === "queued") {
      generation.status = "processing";
      this.emit("change", { generationId });
    }
    this.emit("progress", { generationId, step, total });
  }

  // A refreshed generation must not move its progress backwards because a newer event came first.
  mergeProgress(previous, next) {
    // What only live events brought (previews, the pace) stays while the generation runs.
    if (previous && !isFinal(next) && (previous.attempt || 0) === (next.attempt || 0)) {
      next = { ...next, previews: previous.previews, pace: previous.pace };
    }
    if (!previous || !previous.progress || !next.progress) return next;
    if (next.status === previous.status && previous.progress.total === next.progress.total && previous.progress.step > next.progress.step) {
      return { ...next, progress: previous.progress };
    }
    // The API's progress does not say which image its step belongs to; the events did, so keep telling it.
    const known = previous.progress.image;
    const { image, step, total } = next.progress;
    if (known !== null && known !== undefined && (image === null || image === undefined) && total === previous.progress.total) {
      return { ...next, progress: { ...next.progress, image: imageAt(next, step, total) } };
    }
    return next;
  }

  noticeTransition(previous, next, initial = false) {
    if (!next) return;
    if (previous && previous.status === next.status) return;
    // What this page asked for takes the stage when it is done (a batch as a contact sheet).
    if (next.status === "succeeded" && this.expected.has(next.id) && (next.outputs || []).length) this.pinned = false;
    // Known only from loading the page: nothing happened while it was open. Anything first seen later did (another
    // tab or a program may have asked for it, and it may have finished before this page heard of it).
    if (!previous && isFinal(next) && initial && !this.expected.has(next.id)) return;
    this.emit("transition", { generation: next, from: previous ? previous.status : null });
  }

  computeSteps() {
    this.steps = new Map();
    const walk = (nodes) => {
      for (const node of nodes) {
        this.steps.set(node.generation_id, node.step);
        walk(node.children || []);
      }
    };
    walk(this.lineage);
    // Generations the lineage has not seen yet (just created) get the next numbers, in creation order.
    let next = Math.max(0, ...this.steps.values());
    for (const generation of this.sortedGenerations()) {
      if (!this.steps.has(generation.id)) this.steps.set(generation.id, ++next);
    }
  }

  sortedGenerations() {
    return Array.from(this.generations.values()).sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0));
  }

  step(generationId) {
    return this.steps.get(generationId) || null;
  }

  /** Every output in step order: [{asset, generation, step, index}]. */
  outputs() {
    const list = [];
    for (const generation of this.sortedGenerations()) {
      const outputs = [...(generation.outputs || [])].sort((a, b) => (a.batch_index || 0) - (b.batch_index || 0));
      outputs.forEach((asset, index) => list.push({ asset, generation, step: this.step(generation.id), index, count: outputs.length }));
    }
    return list.sort((a, b) => a.step - b.step || a.index - b.index);
  }

  latestOutput() {
    // The newest finished output by time, so a branch from an old step still counts as "latest".
    let latest = null;
    for (const entry of this.outputs()) {
      if (!latest || entry.asset.created_at > latest.asset.created_at) latest = entry;
    }
    return latest;
  }

  findAsset(assetId) {
    if (!assetId) return null;
    return this.outputs().find((entry) => entry.asset.id === assetId) || null;
  }

  selected() {
    return this.findAsset(this.selectedAssetId);
  }

  /** Selecting an image makes it the parent of the next turn. */
  select(assetId, { pin = true } = {}) {
    if (!this.findAsset(assetId)) return;
    this.selectedAssetId = assetId;
    this.pinned = pin;
    this.emit("change", { selection: true });
  }

  /** Back to following the latest output (after a turn is sent, or on request). */
  unpin() {
    this.pinned = false;
    const latest = this.latestOutput();
    this.selectedAssetId = latest ? latest.asset.id : null;
    this.emit("change", { selection: true });
  }

  keepSelectionValid() {
    if (this.pinned && this.findAsset(this.selectedAssetId)) return;
    const latest = this.latestOutput();
    this.pinned = false;
    this.selectedAssetId = latest ? latest.asset.id : null;
  }

  messageForGeneration(generationId) {
    return this.messages.find((message) => message.generation_id === generationId) || null;
  }

  running() {
    return Array.from(this.generations.values()).filter((generation) => !isFinal(generation));
  }
}
