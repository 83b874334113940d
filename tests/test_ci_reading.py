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


def _collected(*args: str, **env: str) -> list[str]:
    """The node ids `pytest --collect-only` selects in a fresh process with the given variables."""
    import os
    import subprocess
    import sys

    chosen_elsewhere = ("CI", "IMAGESTUDIO_TEST_ALL", "IMAGESTUDIO_TEST_DATABASES")
    clean = {key: value for key, value in os.environ.items() if key not in chosen_elsewhere}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=TESTS.parent, env={**clean, **env}, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_the_default_run_leaves_out_slow_tests_and_ci_runs_them() -> None:
    module = "tests/web/test_browser_paging.py"
    default, everything = _collected(module), _collected(module, IMAGESTUDIO_TEST_ALL="true")
    in_ci, only_slow = _collected(module, CI="true"), _collected(module, "-m", "slow")
    assert default and all("postgresql" not in node for node in default), default
    assert set(default) < set(everything) == set(in_ci)
    assert {node for node in everything if "postgresql" in node} == set(only_slow)
    assert set(only_slow) == set(everything) - set(default)
