// Runs before the first paint (a classic, blocking script in <head>) so a stored theme never flashes.
// "system" (or nothing stored) leaves the attribute off and the stylesheet follows prefers-color-scheme.
// When the server knows the account's theme it has already set it on <html>; remember it for pages it
// cannot know (sign-in pages).
(function () {
  try {
    var root = document.documentElement;
    var fromServer = root.getAttribute("data-theme-server");
    if (fromServer) {
      window.localStorage.setItem("imagestudio.theme", fromServer);
      return;
    }
    var theme = window.localStorage.getItem("imagestudio.theme");
    if (theme === "light" || theme === "dark") {
      root.setAttribute("data-theme", theme);
    }
  } catch (error) {
    // Storage can be unavailable (privacy modes); the system theme still applies.
  }
})();
