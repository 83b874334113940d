// Entry point of every page: wires what all pages share, then starts the page's own module.

import { api, describeError, setUnauthorisedHandler } from "./api.js";
import { applyTheme, storedTheme } from "./theme.js";
import { $, $$, labelModifierKeys, setBusy, toast } from "./ui.js";

const AUTH_PAGES = new Set(["setup", "login", "signup"]);

function loginUrl() {
  const next = window.location.pathname + window.location.search;
  return next && next !== "/" ? `/login?next=${encodeURIComponent(next)}` : "/login";
}

function goToLogin() {
  window.location.assign(loginUrl());
}

/** The signed-in account and its settings; on a 401 the visitor is sent to the login page. */
async function loadAccount() {
  const [me, settings] = await Promise.all([
    api.get("/me"),
    api.get("/me/settings").catch(() => null),
  ]);
  return { me, settings };
}

function showAccount(me) {
  const box = $("[data-account]");
  if (box) {
    for (const slot of $$("[data-account-email]")) slot.textContent = me.email || me.display_name || "";
    box.hidden = false;
  }
  for (const link of $$("[data-admin-only]")) link.hidden = !me.is_admin;
  const logout = $('[data-action="logout"]');
  if (logout) {
    logout.addEventListener("click", async () => {
      setBusy(logout, true);
      try {
        await api.post("/auth/logout", {});
      } catch (error) {
        if (error.status !== 401) {
          setBusy(logout, false);
          toast(describeError(error), { kind: "error" });
          return;
        }
      }
      window.location.assign("/login");
    });
  }
}

async function start() {
  const page = document.body.dataset.page;
  labelModifierKeys();
  const module = await import(`./pages/${AUTH_PAGES.has(page) ? "auth" : page}.js`);
  if (AUTH_PAGES.has(page)) {
    await module.start({ page });
    return;
  }
  setUnauthorisedHandler(goToLogin);
  let account;
  try {
    account = await loadAccount();
  } catch (error) {
    if (error.status === 401) return; // already on the way to /login
    toast(describeError(error), { kind: "error" });
    return;
  }
  showAccount(account.me);
  const theme = account.settings && account.settings.theme;
  if (theme && theme !== storedTheme()) applyTheme(theme);
  await module.start({ page, me: account.me, settings: account.settings || {} });
}

start().catch((error) => {
  console.error(error);
  toast(describeError(error), { kind: "error" });
});
