"""Helpers for the studio flows: sessions and turns through the API, and waiting on the page."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.web.live import Visit

FINAL = {"succeeded", "failed", "canceled"}
# Slow enough on the built-in renderer to watch, cancel and reload (several seconds on two cores).
SLOW_TURN = {"width": 2048, "height": 2048, "num_images": 6, "params": {"steps": 150}}


def start_session(visit: Visit, prompt: str, **overrides: Any) -> tuple[str, dict]:
    """A session with its first turn, as the landing page makes it; answers (session id, chat turn)."""
    session = visit.api("POST", "/sessions", {})
    turn = visit.api("POST", f"/sessions/{session['id']}/messages", {"content": prompt, "mode": "fresh", **overrides})
    return session["id"], turn


def wait_for_generation(visit: Visit, generation_id: str, *, statuses=FINAL, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        generation = visit.api("GET", f"/generations/{generation_id}")
        if generation["status"] in statuses:
            return generation
        if time.monotonic() > deadline:
            raise AssertionError(f"generation {generation_id} still {generation['status']} after {timeout}s")
        time.sleep(0.1)


def session_detail(visit: Visit, session_id: str) -> dict:
    return visit.api("GET", f"/sessions/{session_id}")


def generations_by_step(detail: dict) -> dict[int, dict]:
    steps: dict[str, int] = {}

    def walk(nodes: list[dict]) -> None:
        for node in nodes:
            steps[node["generation_id"]] = node["step"]
            walk(node["children"])

    walk(detail["lineage"])
    return {steps[generation["id"]]: generation for generation in detail["generations"] if generation["id"] in steps}


def turn(page: Page, step: int) -> Locator:
    """The assistant turn of a step in the timeline."""
    return page.locator(".turn-assistant").filter(has=page.locator(".turn-step", has_text=f"Step {step}")).first


def expect_step_done(page: Page, step: int, *, images: int = 1, timeout: float = 60_000) -> None:
    expect(turn(page, step)).to_have_attribute("data-status", "succeeded", timeout=timeout)
    expect(turn(page, step).locator(".turn-image")).to_have_count(images)


def submit_prompt(page: Page, text: str) -> None:
    prompt = page.locator("[data-prompt]")
    prompt.fill(text)
    prompt.press("Control+Enter")


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than its viewport (0 when it fits)."""
    return page.evaluate("document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth")


# WCAG 2 contrast of every visible piece of text against the colour behind it (the first background up the
# tree that is not transparent, with translucent layers blended). Disabled controls are exempt, as in WCAG.
_CONTRAST_SCRIPT = """
() => {
  const parse = (value) => {
    const m = value.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const parts = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return { r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1 };
  };
  const blend = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  const background = (element) => {
    const layers = [];
    for (let node = element; node; node = node.parentElement) {
      const colour = parse(getComputedStyle(node).backgroundColor);
      if (colour && colour.a > 0) {
        layers.push(colour);
        if (colour.a >= 1) break;
      }
    }
    let result = { r: 255, g: 255, b: 255, a: 1 };
    const root = parse(getComputedStyle(document.documentElement).backgroundColor);
    if (root && root.a > 0) result = root;
    for (const layer of layers.reverse()) result = blend(layer, result);
    return result;
  };
  const luminance = ({ r, g, b }) => {
    const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const failures = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  while (walker.nextNode()) {
    const text = walker.currentNode.textContent.trim();
    const element = walker.currentNode.parentElement;
    if (!text || !element || seen.has(element)) continue;
    seen.add(element);
    if (element.closest("[hidden], .visually-hidden, [aria-hidden='true'], option, :disabled")) continue;
    const box = element.getBoundingClientRect();
    const style = getComputedStyle(element);
    if (!box.width || !box.height || style.visibility === "hidden" || Number(style.opacity) === 0) continue;
    const foreground = parse(style.color);
    const behind = background(element);
    const colour = foreground.a < 1 ? blend(foreground, behind) : foreground;
    const [light, dark] = [luminance(colour), luminance(behind)].sort((a, b) => b - a);
    const ratio = (light + 0.05) / (dark + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) failures.push(`${text.slice(0, 40)} (${ratio.toFixed(2)})`);
  }
  return failures;
}
"""


def low_contrast_text(page: Page) -> list[str]:
    return page.evaluate(_CONTRAST_SCRIPT)
