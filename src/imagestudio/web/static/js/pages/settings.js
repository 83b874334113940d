// Settings: theme, default model and parameters, API keys, own provider keys, email address, password.

import { allItems, api, describeError, loadProviders } from "../api.js";
import { defaultChoice, fillModelOnlySelect, fillProviderSelect, findModel, findProvider } from "../models.js";
import { applyTheme, storedTheme } from "../theme.js";
import { $, $$, absoluteTime, announce, clearFormError, confirmAction, formatMoney, h, relativeTime, setBusy, showFormError, toast } from "../ui.js";

export async function start({ me, settings }) {
  $("[data-account-email]").textContent = me.email;
  setUpTheme(settings);
  setUpDefaults(settings);
  setUpKeys();
  setUpOwnKeys();
  setUpEmail(me);
  setUpPassword();
  showUsage();
}

async function showUsage() {
  const lead = $("[data-usage-quota]");
  let usage;
  try {
    usage = await api.get("/me/usage");
  } catch (error) {
    lead.textContent = `Usage is not available: ${describeError(error)}`;
    return;
  }
  const { today, month, quota } = usage;
  const limit = quota.daily_images === null ? "no daily limit" : `${quota.images_left_today} of ${quota.daily_images} left today`;
  lead.textContent = `${today.images} ${today.images === 1 ? "image" : "images"} today (${limit}), ${month.images} this month (UTC).`;
  const names = [...new Set([...today.by_provider, ...month.by_provider].map((row) => row.provider))].sort();
  const find = (period, name) => period.by_provider.find((row) => row.provider === name) || { images: 0, prompt_tokens: 0, completion_tokens: 0 };
  const tokens = (row) => row.prompt_tokens + row.completion_tokens;
  $("[data-usage-body]").replaceChildren(
    ...names.map((name) => {
      const day = find(today, name);
      const all = find(month, name);
      return h("tr", {}, h("th", { scope: "row" }, name), h("td", {}, String(day.images)), h("td", {}, String(all.images)), h("td", {}, String(tokens(day))), h("td", {}, String(tokens(all))));
    }),
  );
  $("[data-usage-table]").hidden = names.length === 0;
  const spend = $("[data-usage-spend]");
  const own = month.spend_own_keys.amount.replace(/[0.]/g, "") ? `, of which your own keys paid ${formatMoney(month.spend_own_keys)}` : "";
  const budget = usage.budget.monthly ? ` Your monthly budget: ${formatMoney(usage.budget.monthly)}, ${formatMoney(usage.budget.left)} left until ${absoluteTime(usage.budget.renews_at)}.` : "";
  spend.textContent = `Spent ${formatMoney(today.spend)} today and ${formatMoney(month.spend)} this month${own}.${budget}`;
  spend.hidden = false;
}

function setUpOwnKeys() {
  const container = $("[data-own-keys]");

  async function refresh() {
    try {
      const items = await allItems("/me/provider-keys");
      container.replaceChildren(...(items.length ? items.map(ownKeyRow) : [h("p", { class: "muted" }, "This studio has no hosted providers.")]));
    } catch (error) {
      container.replaceChildren(h("p", { class: "muted" }, `Your keys are not available: ${describeError(error)}`));
    }
  }

  function status(item) {
    if (!item.allowed) {
      return item.studio_key_configured ? "This studio uses its own key; you cannot bring one." : "Not available: this studio has no key for it and does not take yours.";
    }
    if (item.key_set) return `Set, ending in ${item.key_hint.replace("…", "")}. Your generations there use it.`;
    return item.studio_key_fallback && item.studio_key_configured ? "Not set: the studio's key serves you." : "Not set: add your key to use this provider.";
  }

  function ownKeyRow(item) {
    const id = `own-key-${item.provider}`;
    const row = h("div", { class: "own-key", dataset: { ownKey: item.provider } }, h("h3", { class: "own-key-name" }, item.provider), h("p", { class: "muted", dataset: { ownKeyStatus: "" } }, status(item)));
    if (!item.allowed) return row;
    const input = h("input", { id, class: "input input-mono", type: "password", name: "api_key", autocomplete: "off", spellcheck: "false", minlength: "8", maxlength: "512", required: "" });
    const save = h("button", { type: "submit", class: "button button-primary" }, item.key_set ? "Replace key" : "Save key");
    const error = h("div", { class: "form-error", dataset: { formError: "" }, role: "alert", hidden: "" });
    const form = h("form", { class: "form inline-form", novalidate: "" }, h("div", { class: "field" }, h("label", { for: id }, `Your ${item.provider} key`), input), save, error);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearFormError(form);
      const key = input.value.trim();
      if (key.length < 8 || /\s/.test(key)) {
        showFormError(form, null, "Paste the whole key: at least 8 characters, without spaces.");
        input.focus();
        return;
      }
      setBusy(save, true);
      try {
        const stored = await api.put(`/me/provider-keys/${item.provider}`, { api_key: key });
        input.value = "";
        announce(`Your ${item.provider} key is saved, ending in ${stored.key_hint.replace("…", "")}.`);
        await refresh();
      } catch (failure) {
        showFormError(form, failure, describeError(failure));
        setBusy(save, false);
      }
    });
    row.append(form);
    if (item.key_set) {
      const remove = h("button", { type: "button", class: "button button-small button-danger-quiet" }, "Remove key");
      remove.addEventListener("click", async () => {
        const confirmed = await confirmAction({ title: `Remove your ${item.provider} key?`, message: "Your generations there will use the studio's key, if it serves you, or stop.", confirmLabel: "Remove key" });
        if (!confirmed) return;
        try {
          await api.delete(`/me/provider-keys/${item.provider}`);
          announce(`Your ${item.provider} key is removed.`);
          await refresh();
        } catch (failure) {
          toast(describeError(failure), { kind: "error" });
        }
      });
      row.append(remove);
    }
    return row;
  }

  refresh();
}

function setUpTheme(settings) {
  const current = settings.theme || storedTheme();
  for (const option of $$("[data-theme-option]")) {
    option.checked = option.value === current;
    option.addEventListener("change", async () => {
      if (!option.checked) return;
      const previous = storedTheme();
      applyTheme(option.value);
      try {
        await api.patch("/me/settings", { theme: option.value });
        announce(`Theme set to ${option.value}.`);
      } catch (error) {
        applyTheme(previous);
        for (const other of $$("[data-theme-option]")) other.checked = other.value === previous;
        toast(describeError(error), { kind: "error" });
      }
    });
  }
}

async function setUpDefaults(settings) {
  const form = $("[data-defaults-form]");
  const providerSelect = $("[data-default-provider]");
  const modelSelect = $("[data-default-model]");
  const params = settings.default_params || {};
  $("[data-default-enhance]").checked = Boolean(settings.enhance_prompt);
  for (const name of ["steps", "guidance", "strength"]) {
    if (params[name] !== undefined && params[name] !== null) form.elements[name].value = String(params[name]);
  }
  let providers = [];
  try {
    providers = await loadProviders();
  } catch (error) {
    showFormError(form, error, `Could not load the providers: ${describeError(error)}`);
  }
  const choice = defaultChoice(providers, settings);
  fillProviderSelect(providerSelect, providers, choice.provider);
  fillModelOnlySelect(modelSelect, findProvider(providers, choice.provider), choice.model);
  providerSelect.addEventListener("change", () => {
    const provider = findProvider(providers, providerSelect.value);
    fillModelOnlySelect(modelSelect, provider, findModel(provider, null)?.id);
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFormError(form);
    const defaults = {};
    for (const [name, integer] of [["steps", true], ["guidance", false], ["strength", false]]) {
      const input = form.elements[name];
      if (!input.value.trim()) continue;
      const value = Number(input.value);
      if (!input.checkValidity() || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
        input.setAttribute("aria-invalid", "true");
        showFormError(form, null, `${input.labels[0].textContent.trim()}: enter a number between ${input.min} and ${input.max}.`);
        input.focus();
        return;
      }
      defaults[name] = value;
    }
    const body = { default_params: defaults, enhance_prompt: $("[data-default-enhance]").checked };
    if (providerSelect.value) body.default_provider = providerSelect.value;
    if (modelSelect.value) body.default_model = modelSelect.value;
    const submit = form.querySelector('button[type="submit"]');
    setBusy(submit, true);
    try {
      await api.patch("/me/settings", body);
      toast("Defaults saved.", { kind: "success" });
    } catch (error) {
      showFormError(form, error, describeError(error));
    } finally {
      setBusy(submit, false);
    }
  });
}

const SCOPE_LABELS = { read: "read", generate: "generate", admin: "administer" };

function setUpKeys() {
  const form = $("[data-key-form]");
  const body = $("[data-keys-body]");
  const empty = $("[data-keys-empty]");
  const table = $("[data-keys-table]");
  const reveal = $("[data-new-key]");
  const revealValue = $("[data-new-key-value]");

  async function refresh() {
    try {
      const keys = await allItems("/api-keys");
      const active = keys.filter((key) => !key.revoked_at);
      body.replaceChildren(...active.map(keyRow));
      table.hidden = active.length === 0;
      empty.hidden = active.length !== 0;
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    }
  }

  function keyRow(key) {
    const revoke = h("button", { type: "button", class: "button button-small button-danger-quiet", "aria-label": `Revoke ${key.name}` }, "Revoke");
    revoke.addEventListener("click", async () => {
      const confirmed = await confirmAction({
        title: `Revoke “${key.name}”?`,
        message: "Programs using this key stop working at once. This cannot be undone.",
        confirmLabel: "Revoke key",
      });
      if (!confirmed) return;
      try {
        await api.delete(`/api-keys/${key.id}`);
        announce(`Key ${key.name} revoked.`);
        await refresh();
        form.elements.name.focus();
      } catch (error) {
        toast(describeError(error), { kind: "error" });
      }
    });
    return h(
      "tr",
      {},
      h("td", {}, key.name),
      h("td", {}, h("code", { class: "key-prefix" }, `${key.prefix}…`)),
      h("td", {}, key.scopes.map((scope) => SCOPE_LABELS[scope] || scope).join(", ")),
      h("td", {}, h("time", { datetime: key.created_at, title: absoluteTime(key.created_at) }, relativeTime(key.created_at))),
      h("td", {}, key.last_used_at ? relativeTime(key.last_used_at) : "Never"),
      h("td", { class: "actions" }, revoke),
    );
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFormError(form);
    const name = form.elements.name.value.trim();
    if (!name) {
      showFormError(form, null, "Give the key a name, so you know later what uses it.");
      form.elements.name.focus();
      return;
    }
    const scopes = [...form.querySelectorAll('input[name="scopes"]:checked')].map((box) => box.value);
    if (!scopes.length) {
      showFormError(form, null, "Choose at least one thing the key may do.");
      form.querySelector('input[name="scopes"]').focus();
      return;
    }
    const submit = form.querySelector('button[type="submit"]');
    setBusy(submit, true);
    try {
      const created = await api.post("/api-keys", { name, scopes });
      revealValue.value = created.key;
      reveal.hidden = false;
      form.reset();
      revealValue.focus();
      revealValue.select();
      announce("Key created. Copy it now: it will not be shown again.");
      await refresh();
    } catch (error) {
      showFormError(form, error, describeError(error));
    } finally {
      setBusy(submit, false);
    }
  });

  $('[data-action="copy-key"]').addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(revealValue.value);
      toast("Key copied to the clipboard.", { kind: "success" });
    } catch {
      revealValue.select();
      toast("Select the key and copy it with Ctrl+C.", { kind: "info" });
    }
  });

  refresh();
}

function setUpPassword() {
  const form = $("[data-password-form]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFormError(form);
    const current = form.elements.current_password;
    const next = form.elements.new_password;
    if (!current.value || next.value.length < 8) {
      showFormError(form, null, !current.value ? "Enter your current password." : "The new password needs at least 8 characters.");
      (!current.value ? current : next).focus();
      return;
    }
    const submit = form.querySelector('button[type="submit"]');
    setBusy(submit, true);
    try {
      await api.post("/me/password", { current_password: current.value, new_password: next.value });
      form.reset();
      toast("Password changed.", { kind: "success" });
    } catch (error) {
      showFormError(form, error, describeError(error));
    } finally {
      setBusy(submit, false);
    }
  });
}

function setUpEmail(me) {
  const status = $("[data-email-status]");
  const unverified = $("[data-email-unverified]");
  status.textContent = me.email_verified_at ? "This address is confirmed." : "This address is not confirmed yet.";
  unverified.hidden = Boolean(me.email_verified_at);
  const resend = $('[data-action="resend-verification"]');
  resend.addEventListener("click", async () => {
    setBusy(resend, true);
    try {
      const answer = await api.post("/me/email-verification", {});
      toast(answer.detail, { kind: "success" });
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    } finally {
      setBusy(resend, false);
    }
  });

  const form = $("[data-email-form]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFormError(form);
    const email = form.elements.email;
    const password = form.elements.password;
    if (!email.value.trim() || !email.checkValidity() || !password.value) {
      const problem = !password.value && email.checkValidity() && email.value.trim() ? password : email;
      showFormError(form, null, problem === email ? "Enter the new email address." : "Enter your current password.");
      problem.focus();
      return;
    }
    const submit = form.querySelector('button[type="submit"]');
    setBusy(submit, true);
    try {
      const answer = await api.post("/me/email", { email: email.value.trim(), password: password.value });
      form.reset();
      toast(`${answer.detail} Your address changes when you open it.`, { kind: "success" });
    } catch (error) {
      showFormError(form, error, describeError(error));
    } finally {
      setBusy(submit, false);
    }
  });
}
