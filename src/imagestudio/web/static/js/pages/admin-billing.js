// Administration of money: which providers take users' own keys, spend per user, monthly budgets.

import { allItems, api, describeError } from "../api.js";
import { loadPages } from "../paged.js";
import { $, absoluteTime, announce, clearFormError, formatMoney, h, setBusy, showFormError, toast } from "../ui.js";

// The shape the API takes for an amount: up to six digits, and up to six decimals.
const AMOUNT = /^[0-9]{1,6}(\.[0-9]{1,6})?$/;

/** The amount as typed for a form field: trailing zeros dropped ("12.500000" -> "12.5"). */
function editable(money) {
  if (!money) return "";
  const [whole, fraction = ""] = String(money.amount).split(".");
  const digits = fraction.replace(/0+$/, "");
  return digits ? `${whole}.${digits}` : whole;
}

export function setUpBilling() {
  setUpPolicies();
  setUpStudioBudget();
  setUpSpend();
}

function setUpPolicies() {
  const body = $("[data-policies-body]");
  const empty = $("[data-policies-empty]");

  async function refresh() {
    try {
      const items = await allItems("/admin/provider-keys");
      body.replaceChildren(...items.map(policyRow));
      empty.hidden = items.length !== 0;
    } catch (error) {
      toast(describeError(error), { kind: "error" });
    }
  }

  function policyRow(policy) {
    const allow = h("input", { type: "checkbox", name: "allow_user_keys", "aria-label": `Users may bring their own ${policy.provider} key` });
    allow.checked = policy.allow_user_keys;
    const fallback = h("input", { type: "checkbox", name: "studio_key_fallback", "aria-label": `The studio's ${policy.provider} key serves users without one` });
    fallback.checked = policy.studio_key_fallback;
    const row = h(
      "tr",
      { dataset: { policy: policy.provider } },
      h("th", { scope: "row" }, policy.provider),
      h("td", {}, policy.studio_key_configured ? "Configured" : h("span", { class: "muted" }, "Not set")),
      h("td", {}, h("label", { class: "toggle" }, allow, h("span", {}, "Users may bring keys"))),
      h("td", {}, h("label", { class: "toggle" }, fallback, h("span", {}, "Studio key serves the others"))),
      h("td", {}, String(policy.user_keys)),
    );
    for (const box of [allow, fallback]) {
      box.addEventListener("change", async () => {
        box.disabled = true;
        try {
          const updated = await api.patch(`/admin/provider-keys/${policy.provider}`, { [box.name]: box.checked });
          const replacement = policyRow(updated);
          row.replaceWith(replacement);
          replacement.querySelector(`input[name="${box.name}"]`).focus();
          announce(`Saved the key policy of ${policy.provider}.`);
        } catch (error) {
          box.checked = !box.checked;
          box.disabled = false;
          toast(describeError(error), { kind: "error" });
        }
      });
    }
    return row;
  }

  refresh();
}

function setUpStudioBudget() {
  const form = $("[data-budget-form]");
  const input = form.elements.monthly_budget;
  const state = $("[data-budget-state]");

  function show(budget) {
    input.value = editable(budget.monthly_budget);
    const own = budget.spent_own_keys.amount.replace(/[0.]/g, "") ? ` Users' own keys paid ${formatMoney(budget.spent_own_keys)}.` : "";
    const left = budget.left ? `, ${formatMoney(budget.left)} left` : " (no studio budget)";
    state.textContent = `The studio's keys spent ${formatMoney(budget.spent)} this month${left}; it renews ${absoluteTime(budget.renews_at)}.${own}`;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFormError(form);
    const raw = input.value.trim();
    if (raw !== "" && !AMOUNT.test(raw)) {
      input.setAttribute("aria-invalid", "true");
      showFormError(form, null, "Enter an amount like 100 or 49.99, or leave it empty for no budget.");
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    const submit = form.querySelector('button[type="submit"]');
    setBusy(submit, true);
    try {
      show(await api.put("/admin/budget", { monthly_budget: raw === "" ? null : raw }));
      toast(raw === "" ? "The studio has no monthly budget now." : "Monthly budget saved.", { kind: "success" });
    } catch (error) {
      showFormError(form, error, describeError(error));
    } finally {
      setBusy(submit, false);
    }
  });

  api.get("/admin/budget").then(show, (error) => toast(describeError(error), { kind: "error" }));
}

function setUpSpend() {
  const body = $("[data-spend-body]");
  const more = $("[data-spend-more]");
  const load = loadPages("/admin/spend", { body, more, row: spendRow });

  function spendRow(entry) {
    const input = h("input", { class: "input quota-input", type: "text", inputmode: "decimal", name: "monthly_budget", value: editable(entry.monthly_budget), placeholder: "None", "aria-label": `Monthly budget for ${entry.email}` });
    const save = h("button", { type: "button", class: "button button-small" }, "Save");
    const row = h(
      "tr",
      { dataset: { spendUser: entry.user_id } },
      h("th", { scope: "row" }, entry.email),
      h("td", {}, formatMoney(entry.spent)),
      h("td", {}, formatMoney(entry.spent_own_keys)),
      h("td", {}, input),
      h("td", { class: "actions" }, save),
    );
    save.addEventListener("click", async () => {
      const raw = input.value.trim();
      if (raw !== "" && !AMOUNT.test(raw)) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
        toast(`Monthly budget for ${entry.email}: enter an amount like 25 or 12.50, or leave it empty for none.`, { kind: "error" });
        return;
      }
      input.removeAttribute("aria-invalid");
      setBusy(save, true);
      try {
        const updated = await api.patch(`/admin/users/${entry.user_id}`, { monthly_budget: raw === "" ? null : raw });
        const budget = updated.monthly_budget === null ? null : { amount: updated.monthly_budget, currency: entry.spent.currency };
        const replacement = spendRow({ ...entry, monthly_budget: budget });
        row.replaceWith(replacement);
        replacement.querySelector(".actions button").focus();
        announce(`Saved the budget of ${entry.email}.`);
      } catch (error) {
        setBusy(save, false);
        toast(describeError(error), { kind: "error" });
      }
    });
    return row;
  }

  load(true);
}
