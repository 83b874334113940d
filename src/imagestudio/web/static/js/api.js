// The JSON API, as any client uses it: same-origin cookies plus the header that marks a request as
// coming from script (the server's CSRF defence for cookie-authenticated writes).

const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(status, problem) {
    const body = problem && typeof problem === "object" ? problem : {};
    super(body.detail || body.title || `Request failed (${status})`);
    this.name = "ApiError";
    this.status = status;
    this.code = body.code || null;
    this.title = body.title || null;
    this.detail = body.detail || null;
    this.fieldErrors = normaliseFieldErrors(body);
  }
}

function normaliseFieldErrors(body) {
  if (Array.isArray(body.errors)) {
    return body.errors
      .filter((item) => item && typeof item === "object")
      .map((item) => ({ field: String(item.field || ""), message: String(item.message || "") }));
  }
  // FastAPI's own validation shape, in case a route answers before the problem handler sees it.
  if (Array.isArray(body.detail)) {
    return body.detail.map((item) => ({
      field: Array.isArray(item.loc) ? item.loc.filter((part) => part !== "body").join(".") : "",
      message: String(item.msg || ""),
    }));
  }
  return [];
}

let onUnauthorised = null;

/** Called when a request answers 401: pages send the visitor to the login page. */
export function setUnauthorisedHandler(handler) {
  onUnauthorised = handler;
}

/**
 * request("/sessions", { method: "POST", body: {...} }) -> parsed JSON (or null for 204).
 * `form` sends a FormData body (multipart). `anonymous` skips the 401 redirect (login pages).
 */
export async function request(path, { method = "GET", body, form, signal, anonymous = false } = {}) {
  const headers = { Accept: "application/json, application/problem+json", "X-Requested-With": "fetch" };
  let payload;
  if (form) {
    payload = form;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(BASE + path, { method, headers, body: payload, credentials: "same-origin", signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, {
      title: "Network error",
      detail: "The server could not be reached. Check the connection and try again.",
      code: "network_error",
    });
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : null;
  if (!response.ok) {
    const error = new ApiError(response.status, data || { title: response.statusText });
    if (response.status === 401 && !anonymous && onUnauthorised) onUnauthorised(error);
    throw error;
  }
  return data;
}

export const api = {
  get: (path, options) => request(path, { ...options, method: "GET" }),
  post: (path, body, options) => request(path, { ...options, method: "POST", body }),
  patch: (path, body, options) => request(path, { ...options, method: "PATCH", body }),
  put: (path, body, options) => request(path, { ...options, method: "PUT", body }),
  delete: (path, options) => request(path, { ...options, method: "DELETE" }),
};

/** Uploads an image (a File or Blob) for use as init, mask, reference or attachment; answers the AssetOut. */
export function uploadAsset(file, purpose, { filename } = {}) {
  const form = new FormData();
  form.append("file", file, filename || file.name || `${purpose}.png`);
  form.append("purpose", purpose);
  return request("/assets", { method: "POST", form });
}

/** Every item of a list, following next_cursor from page to page. */
export async function allItems(path) {
  const items = [];
  let cursor = null;
  do {
    const page = await api.get(`${path}${query({ limit: 200, cursor })}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

/** "?a=1&b=2" from an object, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

let providersPromise = null;

/** The provider list, fetched once per page. */
export function loadProviders() {
  if (!providersPromise) {
    providersPromise = allItems("/providers").catch((error) => {
      providersPromise = null;
      throw error;
    });
  }
  return providersPromise;
}

/** A human sentence for an error, for toasts and form messages. */
export function describeError(error) {
  if (error instanceof ApiError) {
    if (error.fieldErrors.length && !error.detail) {
      return error.fieldErrors.map((item) => (item.field ? `${item.field}: ${item.message}` : item.message)).join(" ");
    }
    return error.detail || error.title || error.message;
  }
  return error && error.message ? error.message : "Something went wrong.";
}
