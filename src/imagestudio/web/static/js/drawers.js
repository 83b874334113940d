// The composer's panels (prompt builder, model and parameters) open one at a time, as a drawer beside the
// composer on wide screens; Escape closes the open one and gives focus back to its summary.

export function oneOpenAtATime(panels) {
  for (const panel of panels) {
    panel.addEventListener("toggle", () => {
      if (!panel.open) return;
      for (const other of panels) if (other !== panel && other.open) other.open = false;
    });
    panel.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || !panel.open || event.defaultPrevented) return;
      event.preventDefault();
      panel.open = false;
      panel.querySelector("summary").focus();
    });
  }
}

/** Where the composer is fixed to the bottom of a narrow screen, keeps that much room below the page's end. */
export function reserveRoom(composer) {
  const update = () => {
    const fixed = getComputedStyle(composer).position === "fixed";
    document.documentElement.style.setProperty("--composer-room", fixed ? `${composer.offsetHeight}px` : "0px");
  };
  new ResizeObserver(update).observe(composer);
  window.addEventListener("resize", update);
  update();
}
