// Administration: providers and their state; users, their roles and quotas; keys and budgets.

import { api, describeError, loadProviders } from "../api.js";
import { setUpAddUser, usageCell } from "../admin-people.js";
import { isBuiltin, providerLabel } from "../models.js";
import { setUpBilling } from "./admin-billing.js";
import { loadPages } from "../paged.js";
import { $, absoluteTime, announce, clearFormError, confirmAction, h, setBusy, showFormError, toast } from "../ui.js";

const QUOTAS = [
  ["daily_image_quota", "Images per day", 0, 1_000_000],
  ["rate_per_minute", "Requests per minute", 0, 100_000],
  ["max_running", "Running at once", 1, 100],
];

export async function start({ me }) {
  if (!me.is_admin) {
    const error = $("[data-admin-error]");
    error.textContent = "This page is for administrators.";
    error.hidden = false;
    for (const panel of document.querySelectorAll(".panel")) panel.hidden = true;
    return;
  }
  renderProviders();
  setUpRefresh();
  setUpUsers(me);
  setUpBilling();
  setUpAddUser((user) => {
    $("[data-users-body]").prepend(userRow(user, me));
  });
  setUpInvitations();
  setUpAudit();
}

const AUDIT_LABELS = {
  "auth.setup": "Set up the studio",
  "auth.signup": "Signed up",
  "auth.login": "Signed in",
  "auth.login_failed": "Failed sign-in",
  "auth.logout": "Signed out",
  "auth.password_changed": "Changed password",
  "api_key.created": "Created an API key",
  "api_key.revoked": "Revoked an API key",
  "user.created": "Created an account",
  "user.updated": "Changed an account",
  "backup.created": "Backup written",
  "backup.restored": "Backup restored",
  "invitation.created": "Invited someone",
  "invitation.revoked": "Revoked an invitation",
  "invitation.accepted": "Accepted an invitation",
  "auth.password_reset": "Reset the password by mail",
  "auth.email_changed": "Changed email address",
  "user.reset_link_created": "Made a password reset link",
  "provider_key.stored": "Stored their own provider key",
  "provider_key.deleted": "Removed their own provider key",
  "provider_key.policy_changed": "Changed a provider key policy",
  "budget.changed": "Changed the studio budget",
};

function auditDetails(event) {
  const details = event.details || {};
  if (details.changes) return Object.entries(details.changes).map(([name, value]) => `${name}: ${value}`).join(", ");
  return Object.entries(details).map(([name, value]) => `${name}: ${Array.isArray(value) ? value.join(" ") : value}`).join(", ");
}

function auditRow(event) {
  const when = new Date(event.created_at);
  return h(
    "tr",
    { "data-audit-action": event.action },
    h("td", {}, h("time", { datetime: event.created_at }, when.toLocaleString())),
    h("td", {}, event.actor_email || "system"),
    h("td", {}, AUDIT_LABELS[event.action] || event.action),
    h("td", {}, event.address || "—"),
    h("td", {}, auditDetails(event)),
  );
}

function setUpAudit() {
  const body = $("[data-audit-body]");
  const more = $("[data-audit-more]");
  const filter = $("[data-audit-filter]");
  const load = loadPages("/admin/audit", {
    body,
    more,
    row: auditRow,
    filters: () => ({ action: filter.value || null }),
    shown: (page, reset) => {
      if (reset && !page.items.length) body.replaceChildren(h("tr", {}, h("td", { colspan: "5", class: "muted" }, "Nothing recorded yet.")));
    },
  });
  filter.addEventListener("change", () => load(true));
  load(true);
}

async function renderProviders(fresh = null) {
  const container = $("[data-providers]");
  if (!fresh) container.replaceChildren(h("div", { class: "skeleton skeleton-row" }), h("div", { class: "skeleton skeleton-row" }));
  try {
    const providers = fresh || (await loadProviders());
    container.replaceChildren(...providers.map(providerCard));
    if (!providers.length) container.replaceChildren(h("p", { class: "muted" }, "No providers are registered."));
  } catch (error) {
    container.replaceChildren(h("p", { class: "form-error" }, `Could not load the providers: ${describeError(error)}`));
  } finally {
    container.setAttribute("aria-busy", "false");
  }
}

function setUpRefresh() {
  const button = $("[data-providers-refresh]");
  button.addEventListener("click", async () => {
    setBusy(button, true);
    try {
      const answer = await api.post("/providers/refresh");
      await renderProviders(answer.providers);
      const failed = Object.entries(answer.outcomes).filter(([, problem]) => problem);
      const message = failed.length ? `Models refreshed; ${failed.map(([name]) => name).join(", ")} could not list theirs.` : "Models refreshed.";
      toast(message, { kind: failed.length ? "info" : "success" });
    } catch (error) {
      toast(`Could not refresh the models: ${describeError(error)}`, { kind: "error" });
    } finally {
      setBusy(button, false);
    }
  });
}

/** A server's listed choices (samplers, schedulers, upscalers), when it listed any. */
function choiceLine(label, names) {
  if (!names || !names.length) return null;
  return h("p", { class: "provider-choices muted" }, `${label}: ${names.join(", ")}`);
}

function refreshedLine(provider) {
  if (provider.refresh_problem) return h("p", { class: "provider-problem" }, `Last model refresh failed: ${provider.refresh_problem}`);
  if (!provider.models_refreshed_at) return h("p", { class: "provider-refreshed muted" }, "Models: the studio's own list (not listed by the provider)");
  const when = new Date(provider.models_refreshed_at);
  return h("p", { class: "provider-refreshed muted" }, "Models listed by the provider ", h("time", { datetime: provider.models_refreshed_at, title: when.toISOString() }, when.toLocaleString()));
}

function providerCard(provider) {
  const caps = provider.capabilities || {};
  const state = provider.enabled === false ? ["Disabled", "badge-muted"] : provider.configured === false ? ["Not configured", "badge-warning"] : ["Ready", "badge-success"];
  const models = provider.models || [];
  return h(
    "article",
    { class: "provider-card", "aria-label": providerLabel(provider) },
    h("div", { class: "provider-head" }, h("span", { class: "provider-name" }, providerLabel(provider)), h("span", { class: `badge ${state[1]}` }, state[0])),
    h("span", { class: "provider-kind" }, isBuiltin(provider) ? "Built-in renderer for trying the studio: not an AI model" : `${provider.kind || "provider"} · ${provider.name}`),
    provider.configuration_problem ? h("p", { class: "provider-problem" }, provider.configuration_problem) : null,
    h(
      "div",
      { class: "provider-facts" },
      (caps.types || []).map((type) => h("span", { class: "badge badge-muted" }, type)),
      caps.max_size ? h("span", { class: "badge badge-muted" }, `≤ ${caps.max_size}px`) : null,
      caps.max_images ? h("span", { class: "badge badge-muted" }, `≤ ${caps.max_images} images`) : null,
    ),
    models.length ? h("ul", { class: "provider-models", "aria-label": "Models" }, models.map((model) => h("li", {}, model.label || model.id))) : null,
    choiceLine("Samplers", caps.samplers),
    choiceLine("Schedulers", caps.schedulers),
    choiceLine("Upscalers", caps.upscalers),
    refreshedLine(provider),
  );
}

function setUpUsers(me) {
  const body = $("[data-users-body]");
  const more = $("[data-users-more]");
  const load = loadPages("/admin/users", { body, more, row: (user) => userRow(user, me) });
  load(true);
}

function userRow(user, me) {
  const inputs = QUOTAS.map(([name, label, min, max]) =>
    h("input", {
      class: "input quota-input",
      type: "number",
      min: String(min),
      max: String(max),
      name,
      value: user[name] ?? "",
      placeholder: "Default",
      "aria-label": `${label} for ${user.email}`,
    }),
  );
  const active = h("input", { type: "checkbox", "aria-label": `${user.email} is active` });
  active.checked = user.is_active;
  const admin = h("input", { type: "checkbox", "aria-label": `${user.email} is an administrator` });
  admin.checked = user.is_admin;
  const save = h("button", { type: "button", class: "button button-small" }, "Save");
  const resetLink = h("button", { type: "button", class: "button button-small button-quiet" }, "Reset link");
  resetLink.addEventListener("click", async () => {
    setBusy(resetLink, true);
    try {
      const made = await api.post(`/admin/users/${user.id}/password-reset`, {});
      handOver(made.link, `A password reset link for ${user.email}. Give it to them yourself; it works once, until ${absoluteTime(made.expires_at)}.`);
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    } finally {
      setBusy(resetLink, false);
    }
  });
  const row = h(
    "tr",
    { dataset: { userId: user.id } },
    h("td", {}, h("div", {}, user.email), user.display_name ? h("div", { class: "muted" }, user.display_name) : null, user.id === me.id ? h("span", { class: "badge badge-accent" }, "You") : null),
    h("td", {}, h("label", { class: "toggle" }, admin, h("span", {}, "Admin"))),
    h("td", {}, h("label", { class: "toggle" }, active, h("span", {}, "Active"))),
    ...inputs.map((input) => h("td", {}, input)),
    usageCell(user),
    h("td", { class: "actions" }, save, resetLink),
  );
  save.addEventListener("click", async () => {
    const changes = { is_active: active.checked, is_admin: admin.checked };
    for (const input of inputs) {
      const raw = input.value.trim();
      if (raw === "") {
        changes[input.name] = null;
        continue;
      }
      const value = Number(raw);
      if (!Number.isInteger(value) || !input.checkValidity()) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
        toast(`${input.getAttribute("aria-label")}: enter a whole number between ${input.min} and ${input.max}, or leave it empty.`, { kind: "error" });
        return;
      }
      input.removeAttribute("aria-invalid");
      changes[input.name] = value;
    }
    setBusy(save, true);
    try {
      const updated = await api.patch(`/admin/users/${user.id}`, changes);
      const replacement = userRow(updated, me);
      row.replaceWith(replacement);
      replacement.querySelector(".actions button").focus();
      announce(`Saved ${updated.email}.`);
    } catch (error) {
      setBusy(save, false);
      active.checked = user.is_active;
      admin.checked = user.is_admin;
      toast(describeError(error), { kind: "error" });
    }
  });
  return row;
}

/** Shows a link for the administrator to hand over (when the studio cannot mail it). */
function handOver(link, text) {
  const box = $("[data-link-handover]");
  $("[data-link-handover-text]").textContent = text;
  const value = $("[data-link-handover-value]");
  value.value = link;
  box.hidden = false;
  value.focus();
  value.select();
}

const INVITATION_STATUS = {
  pending: ["Pending", "badge-accent"],
  accepted: ["Accepted", "badge-success"],
  revoked: ["Revoked", "badge-muted"],
  expired: ["Expired", "badge-warning"],
};

function setUpInvitations() {
  const form = $("[data-invite-form]");
  const submit = form.querySelector('button[type="submit"]');
  const body = $("[data-invitations-body]");
  const empty = $("[data-invitations-empty]");
  const more = $("[data-invitations-more]");
  const load = loadPages("/admin/invitations", {
    body,
    more,
    row: invitationRow,
    shown: () => {
      empty.hidden = body.children.length > 0;
    },
  });

  $("[data-link-handover-copy]").addEventListener("click", async () => {
    const value = $("[data-link-handover-value]");
    try {
      await navigator.clipboard.writeText(value.value);
      announce("Link copied.");
      toast("Link copied.");
    } catch {
      value.select();
      toast("Select the link and copy it.", { kind: "error" });
    }
  });

  function invitationRow(invitation) {
    const [label, badge] = INVITATION_STATUS[invitation.status] || [invitation.status, "badge-muted"];
    const revoke = h("button", { type: "button", class: "button button-small" }, "Revoke");
    revoke.hidden = invitation.status !== "pending";
    revoke.addEventListener("click", async () => {
      const sure = await confirmAction({
        title: "Revoke the invitation?",
        message: `The link sent to ${invitation.email} stops working.`,
        confirmLabel: "Revoke",
      });
      if (!sure) return;
      setBusy(revoke, true);
      try {
        await api.delete(`/admin/invitations/${invitation.id}`);
        announce(`Revoked the invitation of ${invitation.email}.`);
        await load(true);
      } catch (error) {
        setBusy(revoke, false);
        toast(describeError(error), { kind: "error" });
      }
    });
    return h(
      "tr",
      { dataset: { invitationId: invitation.id } },
      h("td", {}, invitation.email),
      h("td", {}, h("span", { class: `badge ${badge}` }, label)),
      h("td", {}, absoluteTime(invitation.expires_at)),
      h("td", { class: "actions" }, revoke),
    );
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFormError(form);
    if (!form.email.value.trim() || !form.email.checkValidity()) {
      showFormError(form, null, "Enter a valid email address.");
      form.email.setAttribute("aria-invalid", "true");
      form.email.focus();
      return;
    }
    setBusy(submit, true);
    try {
      const invitation = await api.post("/admin/invitations", { email: form.email.value.trim() });
      form.reset();
      if (invitation.link) {
        handOver(invitation.link, `This studio sends no mail, so give this link to ${invitation.email} yourself. It works once, until ${absoluteTime(invitation.expires_at)}.`);
      } else {
        $("[data-link-handover]").hidden = true;
        toast(`Invitation mailed to ${invitation.email}.`);
        announce(`Invitation mailed to ${invitation.email}.`);
      }
      await load(true);
    } catch (error) {
      showFormError(form, error, describeError(error));
      form.email.focus();
    } finally {
      setBusy(submit, false);
    }
  });
  load(true);
}
