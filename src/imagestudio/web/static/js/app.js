// Entry point of every page: wires what all pages share, then starts the page's own module.

import { api, describeError, setUnauthorisedHandler } from "./api.js";
import { applyTheme, storedTheme } from "./theme.js";
import { $, labelModifierKeys, setBusy, toast } from "./ui.js";

const AUTH_PAGES = new Set(["setup", "login", "signup"]);
// Pages that mailed links open; they work signed in or not.
const LINK_PAGES = new Set(["accept-invitation", "reset-password", "verify-email"]);
const STUDIO_PAGES = new Set(["landing", "session", "gallery", "settings", "admin", "projects", "project"]);

function goToLogin() {
  const next = window.location.pathname + window.location.search;
  window.location.assign(next && next !== "/" ? `/login?next=${encodeURIComponent(next)}` : "/login");
}

function setUpLogout() {
  const logout = $('[data-action="logout"]');
  if (!logout) return;
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

async function start() {
  const page = document.body.dataset.page;
  labelModifierKeys();
  if (AUTH_PAGES.has(page) || LINK_PAGES.has(page)) {
    const module = await import(AUTH_PAGES.has(page) ? "./pages/auth.js" : "./pages/links.js");
    await module.start({ page });
    markReady();
    return;
  }
  setUnauthorisedHandler(goToLogin);
  setUpLogout();
  if (!STUDIO_PAGES.has(page)) {
    markReady();
    return;
  }
  const [module, me, settings] = await Promise.all([
    import(`./pages/${page}.js`),
    api.get("/me"),
    api.get("/me/settings").catch(() => ({})),
  ]);
  // Another device may have changed the theme since this one stored it.
  if (settings.theme && settings.theme !== storedTheme()) applyTheme(settings.theme);
  await module.start({ page, me, settings });
  markReady();
}

/** Marks the page as wired (handlers attached, first data shown): what automation waits for. */
function markReady() {
  document.body.dataset.ready = "true";
}

start().catch((error) => {
  if (error && error.status === 401) return; // on the way to the login page
  console.error(error);
  toast(describeError(error), { kind: "error" });
});
