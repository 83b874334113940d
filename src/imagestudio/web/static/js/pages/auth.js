// First-run setup, sign in and sign up: one form, three endpoints.

import { api, describeError } from "../api.js";
import { $, clearFormError, setBusy, showFormError } from "../ui.js";

const ENDPOINTS = { setup: "/auth/setup", login: "/auth/login", signup: "/auth/signup" };

/** Only same-site paths are followed after signing in, never another origin (the server applies the same rule). */
export function safeNext(raw) {
  if (!raw || !raw.startsWith("/") || raw.startsWith("//") || raw.startsWith("/\\")) return "/";
  return raw;
}

export async function start({ page }) {
  const form = $("[data-auth-form]");
  if (!form) return; // sign-up is closed: the page only says so
  const submit = form.querySelector('button[type="submit"]');
  const next = safeNext(new URLSearchParams(window.location.search).get("next"));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFormError(form);
    if (!form.checkValidity()) {
      const invalid = form.querySelector(":invalid");
      showFormError(form, null, invalid === form.email ? "Enter a valid email address." : "Enter a password of at least 8 characters.");
      invalid.setAttribute("aria-invalid", "true");
      invalid.focus();
      return;
    }
    const body = { email: form.email.value.trim(), password: form.password.value };
    if (form.display_name && form.display_name.value.trim()) body.display_name = form.display_name.value.trim();
    setBusy(submit, true);
    try {
      // Each of the three signs in (sets the login cookie) when it succeeds.
      await api.post(ENDPOINTS[page], body, { anonymous: true });
      window.location.assign(next);
    } catch (error) {
      setBusy(submit, false);
      const message = error.status === 401 ? "That email and password do not match an account." : describeError(error);
      showFormError(form, error, message);
      form.querySelector('[aria-invalid="true"]')?.focus();
    }
  });
}
