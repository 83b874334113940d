"""axe-core (installed from the npm registry by tests/web/package.json) run inside the page under test.

The script is evaluated through the browser's debugging protocol, which the page's Content-Security-Policy does
not govern, so the pages keep their strict policy while they are checked.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from playwright.sync_api import Page

from tests.conftest import require_service

AXE_SCRIPT = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
# Off by default in axe (experimental); the studio was seen failing it, so it is checked everywhere.
EXTRA_RULES = {"label-content-name-mismatch": {"enabled": True}}


@cache
def _axe_source() -> str:
    return AXE_SCRIPT.read_text(encoding="utf-8")


def axe_violations(page: Page) -> list[str]:
    """Every axe violation on the page as it is now: rule id, the first offending nodes and the help text."""
    require_service(AXE_SCRIPT.is_file(), f"axe-core is not installed ({AXE_SCRIPT}): npm ci --prefix tests/web")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(_axe_source())
    result = page.evaluate("(rules) => axe.run(document, { rules })", EXTRA_RULES)
    return [
        f"{violation['id']}: {violation['help']} at {[node['target'] for node in violation['nodes'][:3]]}"
        for violation in result["violations"]
    ]


def assert_accessible(page: Page, state: str) -> None:
    violations = axe_violations(page)
    assert violations == [], f"{state}: {violations}"
