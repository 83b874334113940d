// Runs before the first paint (a classic, blocking script in <head>) so a stored theme never flashes.
// "system" (or nothing stored) leaves the attribute off and the stylesheet follows prefers-color-scheme.
(function () {
  try {
    var theme = window.localStorage.getItem("imagestudio.theme");
    if (theme === "light" || theme === "dark") {
      document.documentElement.setAttribute("data-theme", theme);
    }
  } catch (error) {
    // Storage can be unavailable (privacy modes); the system theme still applies.
  }
})();
