// Landing: a prompt that starts a session, and earlier sessions page by page, grouped by project.

import { api, describeError, loadProviders, query, request } from "../api.js";
import { allProjects } from "../projects-common.js";
import {
  decodeChoice,
  defaultChoice,
  defaultOverrides,
  describeChoice,
  fillModelSelect,
  findProvider,
} from "../models.js";
import { withPreviews } from "../preview.js";
import {
  $,
  autoResize,
  clearFormError,
  debounce,
  h,
  isSubmitShortcut,
  plural,
  relativeTime,
  setBusy,
  showFormError,
  absoluteTime,
  announce,
} from "../ui.js";
import { StartOptions } from "../start-options.js";

const PAGE_SIZE = 12;

const RECENT_PROMPTS = 6;

export async function start({ settings }) {
  setUpPrompt(settings);
  const projects = await allProjects().catch(() => []);
  setUpGrid(projects);
  showRecentPrompts();
}

/** Earlier prompts (GET /prompts), one click from being used again. */
async function showRecentPrompts() {
  const box = $("[data-recent-prompts]");
  const list = $("[data-recent-list]");
  const prompt = $("#start-prompt");
  let answer;
  try {
    answer = await api.get(`/prompts${query({ limit: RECENT_PROMPTS })}`);
  } catch {
    return; // a convenience: the page works without it
  }
  const items = (Array.isArray(answer) ? answer : answer.items || []).slice(0, RECENT_PROMPTS);
  list.replaceChildren(
    ...items.map((item) =>
      h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: "recent-prompt",
            title: item.prompt,
            on: {
              click: () => {
                prompt.value = item.prompt;
                prompt.dispatchEvent(new Event("input"));
                prompt.focus();
              },
            },
          },
          item.prompt,
        ),
      ),
    ),
  );
  box.hidden = items.length === 0;
}

function setUpPrompt(settings) {
  const form = $("[data-start-form]");
  const prompt = form.querySelector("textarea");
  const select = $("[data-model-select]");
  const note = form.querySelector("[data-model-note]");
  const submit = $("[data-start-submit]");
  let providers = [];
  const options = new StartOptions(form);
  autoResize(prompt);
  prompt.focus();

  loadProviders()
    .then((list) => {
      providers = list;
      fillModelSelect(select, providers, defaultChoice(providers, settings));
      describeChoice(note, findProvider(providers, decodeChoice(select.value).provider));
      if (select.disabled) showFormError(form, null, "No provider can generate images right now. An administrator can check the providers on the Admin page.");
    })
    .catch((error) => {
      select.replaceChildren(h("option", {}, "Models unavailable"));
      showFormError(form, error, `Could not load the models: ${describeError(error)}`);
    });

  select.addEventListener("change", () => describeChoice(note, findProvider(providers, decodeChoice(select.value).provider)));

  prompt.addEventListener("keydown", (event) => {
    if (isSubmitShortcut(event)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  startOnSubmit(form, prompt, submit, async (session, content) => {
    // While the models are still loading the server's default is used.
    const choice = select.disabled ? {} : decodeChoice(select.value);
    // A start image belongs to the session it starts; the first turn then iterates from it.
    const start = options.file ? await uploadStartImage(options.file, session.id) : null;
    // The session page shows the first image's pictures so far while it is made.
    return withPreviews({
      ...defaultOverrides(settings),
      ...options.overrides(),
      content,
      mode: start ? "iterate" : "fresh",
      ...(start ? { source_asset_id: start.id } : {}),
      ...(choice.provider ? { provider: choice.provider, model: choice.model } : {}),
    });
  });
}

/**
 * Submitting a start form: a new session (created with `sessionBody`), its first turn (the message body
 * `firstTurn(session, content)` answers), then the session page. An empty prompt is refused in the form;
 * when the first turn is refused, the session it would have started is deleted again.
 */
export function startOnSubmit(form, prompt, submit, firstTurn, sessionBody = {}) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFormError(form);
    const content = prompt.value.trim();
    if (!content) {
      showFormError(form, null, "Describe the image you want first.");
      prompt.focus();
      return;
    }
    setBusy(submit, true);
    announce("Starting a new session…");
    let session = null;
    try {
      session = await api.post("/sessions", sessionBody);
      await api.post(`/sessions/${session.id}/messages`, await firstTurn(session, content));
      window.location.assign(`/sessions/${session.id}`);
    } catch (error) {
      setBusy(submit, false);
      // The session exists but its first turn was refused: do not leave an empty session behind.
      if (session) api.delete(`/sessions/${session.id}`).catch(() => {});
      showFormError(form, error, describeError(error));
      prompt.focus();
    }
  });
}

function uploadStartImage(file, sessionId) {
  const form = new FormData();
  form.append("file", file, file.name || "start.png");
  form.append("purpose", "init");
  form.append("session_id", sessionId);
  return request("/assets", { method: "POST", form });
}

function skeletonCards(count) {
  return Array.from({ length: count }, () =>
    h(
      "li",
      { class: "session-card session-card-skeleton", "aria-hidden": "true", dataset: { skeleton: "" } },
      h("div", { class: "session-thumb skeleton" }),
      h("div", { class: "session-body" }, h("span", { class: "skeleton skeleton-text" }), h("span", { class: "skeleton skeleton-text skeleton-short" })),
    ),
  );
}

/** A select that moves the session into one of the projects (or out of any). */
function moveSelect(session, projects, onMoved) {
  const select = h(
    "select",
    { class: "select select-compact session-move", "aria-label": `Project of “${session.title || "Untitled session"}”` },
    h("option", { value: "" }, "No project"),
    ...projects.map((project) => h("option", { value: project.id }, project.name)),
  );
  select.value = session.project_id || "";
  select.addEventListener("change", async () => {
    select.disabled = true;
    try {
      await api.patch(`/sessions/${session.id}`, { project_id: select.value || null });
      const target = projects.find((project) => project.id === select.value);
      announce(target ? `Moved to ${target.name}.` : "Moved out of its project.");
      onMoved();
    } catch (error) {
      select.value = session.project_id || "";
      announce(`Could not move the session: ${describeError(error)}`);
    } finally {
      select.disabled = false;
    }
  });
  return select;
}

export function sessionCard(session, { projects = null, onMoved = () => {} } = {}) {
  const thumb = session.thumbnail_url
    ? h("img", { class: "session-thumb", src: session.thumbnail_url, alt: "", loading: "lazy", decoding: "async" })
    : h(
        "div",
        { class: "session-thumb session-thumb-empty", "aria-hidden": "true" },
        h("span", { text: session.image_count ? "" : "No images yet" }),
      );
  const meta = `${plural(session.image_count || 0, "image")} · ${relativeTime(session.updated_at)}`;
  return h(
    "li",
    { class: "session-card", dataset: { sessionId: session.id } },
    h(
      "a",
      { class: "session-link", href: `/sessions/${session.id}` },
      thumb,
      h(
        "div",
        { class: "session-body" },
        h("span", { class: "session-card-title", text: session.title || "Untitled session" }),
        h("span", { class: "session-meta" }, h("time", { datetime: session.updated_at, title: absoluteTime(session.updated_at) }, meta)),
        session.archived ? h("span", { class: "badge badge-muted session-archived" }, "Archived") : null,
      ),
    ),
    projects && projects.length ? moveSelect(session, projects, onMoved) : null,
  );
}

/** Sessions of a project go under its heading; the others stay in the main grid. */
function groupList(container, project) {
  let section = container.querySelector(`[data-group-id="${project.id}"]`);
  if (!section) {
    const headingId = `group-${project.id}`;
    section = h(
      "section",
      { class: "session-group", dataset: { groupId: project.id }, "aria-labelledby": headingId },
      h("h3", { class: "session-group-title", id: headingId }, h("a", { href: `/projects/${project.id}` }, project.name)),
      h("ul", { class: "session-grid", "aria-labelledby": headingId }),
    );
    container.append(section);
  }
  return section.querySelector("ul");
}

function setUpGrid(projects) {
  const grid = $("[data-session-grid]");
  const groups = $("[data-project-groups]");
  const ungrouped = $("[data-ungrouped-title]");
  const byId = new Map(projects.map((project) => [project.id, project]));
  const empty = $("[data-sessions-empty]");
  const more = $("[data-load-more]");
  const sentinel = $("[data-load-sentinel]");
  const search = $("[data-session-search]");
  const archived = $("[data-show-archived]");
  let cursor = null;
  let loading = false;
  let generation = 0; // discards answers to an earlier search
  let exhausted = false;

  async function loadPage(reset) {
    if (loading && !reset) return;
    if (reset) {
      generation += 1;
      cursor = null;
      exhausted = false;
      grid.replaceChildren(...skeletonCards(6));
      groups.replaceChildren();
      ungrouped.hidden = true;
      empty.hidden = true;
    } else if (exhausted) {
      return;
    } else {
      grid.append(...skeletonCards(3));
    }
    const mine = generation;
    loading = true;
    grid.setAttribute("aria-busy", "true");
    more.hidden = true;
    try {
      const page = await api.get(
        `/sessions${query({ limit: PAGE_SIZE, cursor, q: search.value.trim(), archived: archived.checked ? "true" : "" })}`,
      );
      if (mine !== generation) return;
      for (const skeleton of grid.querySelectorAll("[data-skeleton]")) skeleton.remove();
      const options = { projects, onMoved: () => loadPage(true) };
      for (const session of page.items) {
        const project = session.project_id ? byId.get(session.project_id) : null;
        (project ? groupList(groups, project) : grid).append(sessionCard(session, options));
      }
      ungrouped.hidden = !groups.children.length || !grid.children.length;
      cursor = page.next_cursor;
      exhausted = !cursor;
      more.hidden = exhausted;
      if (!grid.children.length && !groups.children.length) showEmpty();
      if (!reset) announce(`Loaded ${plural(page.items.length, "more session")}.`);
    } catch (error) {
      if (mine !== generation) return;
      for (const skeleton of grid.querySelectorAll("[data-skeleton]")) skeleton.remove();
      more.hidden = false;
      more.textContent = "Try again";
      announce(`Could not load sessions: ${describeError(error)}`);
      return;
    } finally {
      if (mine === generation) {
        loading = false;
        grid.setAttribute("aria-busy", "false");
      }
    }
    more.textContent = "Load more";
  }

  function showEmpty() {
    const filtered = search.value.trim() || archived.checked;
    $("[data-empty-title]").textContent = filtered ? "No sessions match" : "No sessions yet";
    $("[data-empty-text]").textContent = filtered
      ? "Try another search, or clear the filters."
      : "Start by describing an image above. Every prompt becomes a session you can come back to.";
    empty.hidden = false;
  }

  more.addEventListener("click", () => loadPage(false));
  search.addEventListener("input", debounce(() => loadPage(true), 250));
  archived.addEventListener("change", () => loadPage(true));
  if ("IntersectionObserver" in window) {
    new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting) && cursor && !loading) loadPage(false);
      },
      { rootMargin: "400px" },
    ).observe(sentinel);
  }
  loadPage(true);
}
