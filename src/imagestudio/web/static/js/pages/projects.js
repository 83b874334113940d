// Projects: create one, and the list of them, page by page.

import { api, describeError, query } from "../api.js";
import { STATUS_LABELS } from "../projects-common.js";
import { $, clearFormError, h, setBusy, showFormError, relativeTime, announce } from "../ui.js";

export async function start() {
  setUpForm();
  await setUpList();
}

function setUpForm() {
  const form = $("[data-project-form]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFormError(form);
    const name = form.elements.name.value.trim();
    if (!name) {
      showFormError(form, null, "Give the project a name.");
      form.elements.name.focus();
      return;
    }
    const submit = form.querySelector("button[type=submit]");
    setBusy(submit, true);
    try {
      const project = await api.post("/projects", {
        name,
        description: form.elements.description.value.trim(),
        status: form.elements.status.value,
      });
      window.location.assign(`/projects/${project.id}`);
    } catch (error) {
      setBusy(submit, false);
      showFormError(form, error, describeError(error));
    }
  });
}

function projectItem(project) {
  return h(
    "li",
    { class: "project-item", dataset: { projectId: project.id } },
    h("a", { class: "project-link", href: `/projects/${project.id}` }, project.name),
    h("span", { class: "badge" }, STATUS_LABELS[project.status] || project.status),
    project.is_public ? h("span", { class: "badge badge-muted" }, "Shared") : null,
    h("span", { class: "project-meta" }, `Changed ${relativeTime(project.updated_at)}`),
    project.description ? h("p", { class: "project-description" }, project.description) : null,
  );
}

async function setUpList() {
  const list = $("[data-project-list]");
  const empty = $("[data-projects-empty]");
  const more = $("[data-load-more]");
  let cursor = null;

  async function load() {
    list.setAttribute("aria-busy", "true");
    try {
      const page = await api.get(`/projects${query({ limit: 50, cursor })}`);
      list.append(...page.items.map(projectItem));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      empty.hidden = list.children.length > 0;
    } catch (error) {
      announce(`Could not load projects: ${describeError(error)}`);
    } finally {
      list.setAttribute("aria-busy", "false");
    }
  }

  more.addEventListener("click", load);
  await load();
}
