"""One reading of CI: every test and conftest asks `tests.conftest.in_ci()` (or `require_service`),
so CI=true, CI=1 and CI=yes mean the same everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import in_ci

TESTS = Path(__file__).resolve().parent
# os.environ["CI"], os.environ.get("CI"), os.getenv("CI") and the like.
READS_CI = re.compile(r"""(environ(\.get)?|getenv)\s*[\[(]\s*["']CI["']""")


def test_only_the_helper_reads_the_ci_variable() -> None:
    readers = sorted(
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if path != Path(__file__).resolve() and READS_CI.search(path.read_text(encoding="utf-8"))
    )
    assert readers == ["conftest.py"], readers


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("1", True), ("YES", True), (" true ", True),
                                                 ("false", False), ("0", False), ("", False)])  # fmt: skip
def test_ci_values(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci() is expected


def test_ci_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert in_ci() is False
