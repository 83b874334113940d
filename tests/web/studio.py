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
