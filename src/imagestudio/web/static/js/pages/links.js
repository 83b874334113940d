// The pages that mailed links open: accept an invitation, reset a password (ask for a link, then use
// it), confirm an email address. The token is in the address's fragment, which never reaches a server
// log; it is sent once, in the body of the API call, and then removed from the address bar.

import { api, describeError } from "../api.js";
import { $, clearFormError, setBusy, showFormError } from "../ui.js";

const EXPIRED_CODES = new Set(["token_used", "token_expired", "token_revoked", "invalid_token"]);

function takeToken() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const token = params.get("token");
  if (token) history.replaceState(null, "", window.location.pathname);
  return token;
}

function showProblem(message) {
  const problem = $("[data-link-problem]");
  problem.textContent = message;
  problem.hidden = false;
}

function showDone(...nodes) {
  const done = $("[data-link-done]");
  done.replaceChildren(...nodes);
  done.hidden = false;
}

function linkProblem(error, what) {
  if (error.code === "token_used") return `This ${what} link has already been used; each link works once.`;
  if (error.code === "token_expired") return `This ${what} link has expired.`;
  if (error.code === "token_revoked") return `This ${what} link has been withdrawn.`;
  if (error.code === "invalid_token") return `This ${what} link is not valid. Check that it was copied whole.`;
  return describeError(error);
}

function checkPassword(form) {
  if (form.password.value.length >= 8) return true;
  showFormError(form, null, "Enter a password of at least 8 characters.");
  form.password.setAttribute("aria-invalid", "true");
  form.password.focus();
  return false;
}

/** Submits `form` with `send` (which answers false when it sent nothing); on a refused link the form
 * gives way to the explanation. */
function onSubmit(form, send, what) {
  const submit = form.querySelector("[data-link-submit]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFormError(form);
    if (!form.querySelector('[data-step="confirm"]').hidden && !checkPassword(form)) return;
    setBusy(submit, true);
    try {
      if ((await send()) === false) setBusy(submit, false);
    } catch (error) {
      setBusy(submit, false);
      if (EXPIRED_CODES.has(error.code)) {
        form.hidden = true;
        showProblem(linkProblem(error, what));
        return;
      }
      showFormError(form, error, describeError(error));
      form.querySelector('[aria-invalid="true"]')?.focus();
    }
  });
}

function acceptInvitation(token) {
  const form = $("[data-link-form]");
  if (!token) {
    form.hidden = true;
    showProblem("This page needs the link from your invitation mail. Open the link from the mail again.");
    return;
  }
  onSubmit(
    form,
    async () => {
      const body = { token, password: form.password.value };
      if (form.display_name.value.trim()) body.display_name = form.display_name.value.trim();
      await api.post("/auth/invitations/accept", body, { anonymous: true });
      window.location.assign("/");
    },
    "invitation",
  );
}

function resetPassword(token) {
  const form = $("[data-link-form]");
  const submit = form.querySelector("[data-link-submit]");
  const requestField = form.querySelector('[data-step="request"]');
  const confirmField = form.querySelector('[data-step="confirm"]');
  if (token) {
    // Second step: the link from the mail; choose the new password.
    form.dataset.resetStep = "confirm";
    requestField.hidden = true;
    form.email.required = false;
    confirmField.hidden = false;
    form.password.required = true;
    $("[data-reset-title]").textContent = "Choose a new password";
    $("[data-reset-lead]").textContent = "Using this link signs your account out on every other device.";
    submit.textContent = "Set the new password";
    form.password.focus();
    onSubmit(
      form,
      async () => {
        await api.post("/auth/password-reset/confirm", { token, password: form.password.value }, { anonymous: true });
        window.location.assign("/");
      },
      "reset",
    );
    return;
  }
  onSubmit(
    form,
    async () => {
      if (!form.email.checkValidity() || !form.email.value.trim()) {
        showFormError(form, null, "Enter a valid email address.");
        form.email.setAttribute("aria-invalid", "true");
        form.email.focus();
        return false;
      }
      const answer = await api.post("/auth/password-reset", { email: form.email.value.trim() }, { anonymous: true });
      form.hidden = true;
      showDone(document.createTextNode(answer.detail));
    },
    "reset",
  );
}

async function verifyEmail(token) {
  const progress = $("[data-verify-progress]");
  if (!token) {
    progress.hidden = true;
    showProblem("This page needs the link from your confirmation mail. Open the link from the mail again.");
    return;
  }
  try {
    const answer = await api.post("/auth/verify-email", { token }, { anonymous: true });
    progress.hidden = true;
    const home = document.createElement("a");
    home.href = "/";
    home.textContent = "Go to the studio";
    showDone(document.createTextNode(`${answer.email} is confirmed. `), home);
  } catch (error) {
    progress.hidden = true;
    showProblem(linkProblem(error, "confirmation"));
  }
}

export async function start({ page }) {
  // A link pasted into this same tab changes only the fragment, which loads nothing: start afresh.
  window.addEventListener("hashchange", () => window.location.reload());
  const token = takeToken();
  if (page === "accept-invitation") acceptInvitation(token);
  else if (page === "reset-password") resetPassword(token);
  else await verifyEmail(token);
}
