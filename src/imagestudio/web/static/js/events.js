// Live events over Server-Sent Events. The browser's EventSource reconnects by itself and sends
// Last-Event-ID, so the server replays what was missed; when the server closes the stream for good
// (an HTTP error), we reconnect with backoff after the last event received (?after=, as EventSource
// cannot set headers) and the page resynchronises from the API on open.

export const EVENT_TYPES = [
  "queued",
  "started",
  "progress",
  "output_stored",
  "retrying",
  "succeeded",
  "failed",
  "canceled",
  "cancel_requested",
  "delta",
];

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30000;

/** url with ?after=id (or &after=id), or url itself before any event. */
export function streamUrl(url, after) {
  if (!after) return url;
  return `${url}${url.includes("?") ? "&" : "?"}after=${encodeURIComponent(after)}`;
}

/**
 * subscribe(url, { after, onEvent, onOpen, onDown }) -> { close(), lastEventId() }
 * after: start after this event id (e.g. the `last_event_id` of the answer the page was drawn from);
 * without it the server replays every stored event first.
 * onEvent receives the parsed event data ({id, generation_id, session_id, sequence, type, payload, created_at}).
 * onOpen runs on every (re)connection, with true the first time: the place to fetch state that may
 * have changed while away.
 */
export function subscribe(url, { after = 0, onEvent, onOpen, onDown } = {}) {
  let source = null;
  let closed = false;
  let retryMs = FIRST_RETRY_MS;
  let retryTimer = null;
  let down = false;
  let opened = false;
  // The newest event received: a new EventSource starts after it.
  let lastId = Number.isSafeInteger(Number(after)) ? Number(after) : 0;

  const deliver = (message, fallbackType) => {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return;
    }
    if (!data || typeof data !== "object") return;
    const id = Number(message.lastEventId);
    if (Number.isSafeInteger(id) && id > lastId) lastId = id;
    if (!data.type) data.type = fallbackType;
    if (onEvent) onEvent(data);
  };

  function connect() {
    if (closed) return;
    source = new EventSource(streamUrl(url, lastId), { withCredentials: true });
    source.addEventListener("open", () => {
      retryMs = FIRST_RETRY_MS;
      down = false;
      const first = !opened;
      opened = true;
      if (onOpen) onOpen(first);
    });
    for (const type of EVENT_TYPES) source.addEventListener(type, (message) => deliver(message, type));
    source.addEventListener("message", (message) => deliver(message, "message"));
    source.addEventListener("error", () => {
      if (!down && onDown) onDown();
      down = true;
      if (source.readyState === EventSource.CLOSED && !closed) {
        retryTimer = window.setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
      }
    });
  }

  const onPageHide = () => {
    if (source) source.close();
  };
  const onPageShow = (event) => {
    // Back/forward cache: the page comes back with a closed stream.
    if (event.persisted && !closed) connect();
  };
  window.addEventListener("pagehide", onPageHide);
  window.addEventListener("pageshow", onPageShow);
  connect();

  return {
    lastEventId: () => lastId,
    close() {
      closed = true;
      window.clearTimeout(retryTimer);
      window.removeEventListener("pagehide", onPageHide);
      window.removeEventListener("pageshow", onPageShow);
      if (source) source.close();
    },
  };
}
