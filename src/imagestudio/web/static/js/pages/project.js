// One project: start a session in it, its sessions and images, details, defaults, sharing, deletion.

import { api, describeError, loadProviders, query } from "../api.js";
import { decodeChoice, fillModelSelect } from "../models.js";
import { STATUS_LABELS } from "../projects-common.js";
import { $, announce, clearFormError, confirmAction, h, setBusy, showFormError, toast } from "../ui.js";
import { sessionCard, startOnSubmit } from "./landing.js";

const IMAGE_SESSIONS = 12;

export async function start() {
  const projectId = document.body.dataset.projectId;
  let project;
  try {
    project = await api.get(`/projects/${projectId}`);
  } catch (error) {
    if (error.status === 404) {
      $("[data-project-page]").replaceChildren(
        h("div", { class: "empty-state" }, h("h1", { class: "empty-title" }, "This project is not here")),
      );
      return;
    }
    throw error;
  }
  const state = { project };
  show(state);
  setUpStart(state);
  setUpDetails(state);
  setUpSharing(state);
  setUpDelete(state);
  await Promise.all([setUpSettings(state), showSessions(state)]);
}

function show(state) {
  const { project } = state;
  document.title = `${project.name} · Image Studio`;
  $("[data-project-name]").textContent = project.name;
  $("[data-project-status]").textContent = STATUS_LABELS[project.status] || project.status;
  $("[data-project-public]").hidden = !project.is_public;
  $("[data-sharing-state]").textContent = project.is_public
    ? "Shared read-only at a link since " + new Date(project.published_at).toLocaleString() + "."
    : "Only you can see this project.";
  $("[data-publish]").hidden = project.is_public;
  $("[data-revoke]").hidden = !project.is_public;
}

function setUpStart(state) {
  const form = $("[data-start-form]");
  // No provider, model or size here: the project's defaults decide them.
  startOnSubmit(form, form.elements.prompt, $("[data-start-submit]"), (session, content) => ({ content, mode: "fresh" }), {
    project_id: state.project.id,
  });
}

async function showSessions(state) {
  const grid = $("[data-session-grid]");
  const images = $("[data-project-images]");
  let page;
  try {
    page = await api.get(`/sessions${query({ project_id: state.project.id, limit: 50 })}`);
  } catch (error) {
    announce(`Could not load the sessions: ${describeError(error)}`);
    return;
  } finally {
    grid.setAttribute("aria-busy", "false");
  }
  grid.replaceChildren(...page.items.map((session) => sessionCard(session)));
  $("[data-sessions-empty]").hidden = page.items.length > 0;
  const details = await Promise.all(
    page.items.slice(0, IMAGE_SESSIONS).map((session) => api.get(`/sessions/${session.id}`).catch(() => null)),
  );
  const items = [];
  for (const session of details.filter(Boolean)) {
    for (const generation of session.generations || []) {
      for (const output of generation.outputs || []) {
        items.push(
          h(
            "li",
            { class: "project-image" },
            h(
              "a",
              { href: `/sessions/${session.id}`, title: generation.prompt },
              h("img", { src: output.thumbnail_url, alt: generation.prompt, loading: "lazy", decoding: "async" }),
            ),
          ),
        );
      }
    }
  }
  images.replaceChildren(...items);
  $("[data-images-empty]").hidden = items.length > 0;
}

function setUpDetails(state) {
  const form = $("[data-details-form]");
  form.elements.name.value = state.project.name;
  form.elements.status.value = state.project.status;
  form.elements.description.value = state.project.description;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFormError(form);
    const submit = form.querySelector("button[type=submit]");
    setBusy(submit, true);
    try {
      state.project = await api.patch(`/projects/${state.project.id}`, {
        name: form.elements.name.value.trim(),
        status: form.elements.status.value,
        description: form.elements.description.value.trim(),
      });
      show(state);
      toast("Project saved.");
    } catch (error) {
      showFormError(form, error, describeError(error));
    } finally {
      setBusy(submit, false);
    }
  });
}

function numberOrNull(input) {
  return input.value === "" ? null : Number(input.value);
}

async function setUpSettings(state) {
  const form = $("[data-settings-form]");
  const select = $("[data-settings-model]");
  const saved = state.project.settings || {};
  const { elements } = form;
  elements.steps.value = saved.params?.steps ?? "";
  elements.width.value = saved.width ?? "";
  elements.height.value = saved.height ?? "";
  elements.style.value = saved.prompt_options?.style ?? "";
  elements.lighting.value = saved.prompt_options?.lighting ?? "";
  try {
    const providers = await loadProviders();
    fillModelSelect(select, providers, { provider: saved.provider, model: saved.model });
    select.prepend(h("option", { value: "" }, "Your default"));
    select.disabled = false;
    if (!saved.provider) select.value = "";
  } catch (error) {
    announce(`Could not load the models: ${describeError(error)}`);
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFormError(form);
    const settings = {};
    const choice = decodeChoice(select.value);
    if (choice.provider) Object.assign(settings, { provider: choice.provider, model: choice.model });
    const width = numberOrNull(elements.width);
    const height = numberOrNull(elements.height);
    if (width !== null) settings.width = width;
    if (height !== null) settings.height = height;
    const steps = numberOrNull(elements.steps);
    if (steps !== null) settings.params = { steps };
    const options = {};
    if (elements.style.value.trim()) options.style = elements.style.value.trim();
    if (elements.lighting.value.trim()) options.lighting = elements.lighting.value.trim();
    if (Object.keys(options).length) settings.prompt_options = options;
    const submit = form.querySelector("button[type=submit]");
    setBusy(submit, true);
    try {
      state.project = await api.patch(`/projects/${state.project.id}`, { settings });
      toast("Defaults saved.");
    } catch (error) {
      showFormError(form, error, describeError(error));
    } finally {
      setBusy(submit, false);
    }
  });
}

function setUpSharing(state) {
  const box = $("[data-public-link-box]");
  const link = $("[data-public-link]");
  $("[data-publish]").addEventListener("click", async (event) => {
    setBusy(event.currentTarget, true);
    try {
      state.project = await api.patch(`/projects/${state.project.id}`, { is_public: true });
      link.value = state.project.public_url;
      box.hidden = false;
      show(state);
      announce("The project is shared. Copy its link now.");
      link.focus();
      link.select();
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    } finally {
      setBusy(event.currentTarget, false);
    }
  });
  $("[data-copy-link]").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(link.value);
      toast("Link copied.");
    } catch {
      link.select();
      toast("Press Ctrl+C to copy the selected link.");
    }
  });
  $("[data-revoke]").addEventListener("click", async (event) => {
    const sure = await confirmAction({
      title: "Stop sharing?",
      message: "The link stops working at once. Sharing again makes a new link.",
      confirmLabel: "Stop sharing",
    });
    if (!sure) return;
    setBusy(event.currentTarget, true);
    try {
      state.project = await api.patch(`/projects/${state.project.id}`, { is_public: false });
      box.hidden = true;
      link.value = "";
      show(state);
      toast("The project is no longer shared.");
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    } finally {
      setBusy(event.currentTarget, false);
    }
  });
}

function setUpDelete(state) {
  $("[data-delete-project]").addEventListener("click", async () => {
    const sure = await confirmAction({
      title: "Delete this project?",
      message: `“${state.project.name}” goes; its sessions stay, outside any project.`,
      confirmLabel: "Delete project",
    });
    if (!sure) return;
    try {
      await api.delete(`/projects/${state.project.id}`);
      window.location.assign("/projects");
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    }
  });
}
