"""`make test`: the default run (every test not marked slow), then, with CI=true or for `make test-all`,
the slow tests in a second run. Each part's wall time is printed, so the default run's time is
measured on every CI run. Arguments are passed to both pytest runs.

Usage: python scripts/run-tests.py [PYTEST ARGS...]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import runs_everything  # noqa: E402  (the one reading of CI)

NO_TESTS_COLLECTED = 5


def main(arguments: list[str]) -> int:
    parts = [("default", "not slow")]
    if runs_everything():
        parts.append(("slow", "slow"))
    failed = False
    timings = []
    for name, expression in parts:
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", "pytest", "-m", expression, *arguments], cwd=ROOT)
        timings.append(f"{name} tests: {time.monotonic() - started:.0f} s (exit {code})")
        failed = failed or code not in (0, NO_TESTS_COLLECTED)
    print("; ".join(timings), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
