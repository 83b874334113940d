"""Print the mutation score of `make mutants`: only the mutants of the functions it names.

mutmut writes a mutant for every function of the files it mutates but runs only the names given
to `mutmut run`; `mutmut results` would list the others as "not checked". This reads mutmut's
results (mutants/**/*.meta) for the same name patterns and prints the counts, the score (killed and
timed out over all that ran, "no tests" excluded, as mutmut counts it) and every mutant not killed.

Usage: python scripts/mutants-score.py PATTERN...
"""

from __future__ import annotations

import fnmatch
import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code


def main(patterns: list[str]) -> int:
    statuses: dict[str, str] = {}
    for meta in sorted(Path("mutants").rglob("*.py.meta")):
        for name, exit_code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if any(fnmatch.fnmatch(name, pattern) for pattern in patterns):
                statuses[name] = status_by_exit_code[exit_code]
    counts = Counter(statuses.values())
    for name, status in sorted(statuses.items()):
        if status not in ("killed", "timeout"):
            print(f"{status}: {name}")
    print(", ".join(f"{status} {count}" for status, count in counts.most_common()))
    detected = counts["killed"] + counts["timeout"]
    ran = sum(count for status, count in counts.items() if status not in ("no tests", "not checked"))
    if ran:
        print(f"score {detected}/{ran} = {100 * detected / ran:.1f} % of {len(statuses)} mutants")
    return 0 if statuses else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
