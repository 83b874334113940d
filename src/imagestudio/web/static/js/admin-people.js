// Administration of people: adding an account with a first password, and what each account used.

import { api, describeError } from "./api.js";
import { $, announce, clearFormError, h, setBusy, showFormError } from "./ui.js";

/** The "Add user" form; onAdded(user) shows the new account in the users table. */
export function setUpAddUser(onAdded) {
  const form = $("[data-add-user-form]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFormError(form);
    const email = form.elements.email.value.trim();
    const password = form.elements.password.value;
    if (!email || !form.elements.email.checkValidity()) {
      showFormError(form, null, "Enter the person's email address.");
      form.elements.email.focus();
      return;
    }
    if (password.length < Number(form.elements.password.minLength)) {
      showFormError(form, null, `The first password needs at least ${form.elements.password.minLength} characters.`);
      form.elements.password.focus();
      return;
    }
    const submit = form.querySelector('button[type="submit"]');
    setBusy(submit, true);
    try {
      const user = await api.post("/admin/users", {
        email,
        password,
        display_name: form.elements.display_name.value.trim(),
        is_admin: form.elements.is_admin.checked,
      });
      form.reset();
      onAdded(user);
      announce(`Added ${user.email}. Give them their first password yourself.`);
      form.elements.email.focus();
    } catch (error) {
      showFormError(form, error, describeError(error));
    } finally {
      setBusy(submit, false);
    }
  });
}

/** A table cell that fills with the account's images today and this month. */
export function usageCell(user) {
  const cell = h("td", { class: "usage-cell", dataset: { usage: user.id } }, "…");
  api
    .get(`/admin/users/${user.id}/usage`)
    .then((usage) => {
      cell.textContent = `${usage.today.images} / ${usage.month.images}`;
      const tokens = usage.month.prompt_tokens + usage.month.completion_tokens;
      if (tokens) cell.append(h("div", { class: "muted" }, `${tokens} language tokens this month`));
    })
    .catch((error) => {
      cell.textContent = "—";
      cell.title = describeError(error);
    });
  return cell;
}
