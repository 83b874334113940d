// Theme: "light", "dark" or "system". Stored locally for a flash-free first paint (see theme-init.js) and in
// the account's settings so that every device agrees.

const STORAGE_KEY = "imagestudio.theme";
export const THEMES = ["system", "light", "dark"];

export function storedTheme() {
  try {
    const value = window.localStorage.getItem(STORAGE_KEY);
    return THEMES.includes(value) ? value : "system";
  } catch {
    return "system";
  }
}

/** Applies a theme to the page at once and remembers it for the next page load. */
export function applyTheme(theme) {
  const value = THEMES.includes(theme) ? theme : "system";
  if (value === "system") document.documentElement.removeAttribute("data-theme");
  else document.documentElement.setAttribute("data-theme", value);
  try {
    window.localStorage.setItem(STORAGE_KEY, value);
  } catch {
    // Without storage the theme still applies for this page.
  }
  return value;
}
