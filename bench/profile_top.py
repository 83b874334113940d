"""The top of a py-spy profile (collapsed stacks): functions by inclusive share of the samples.

    python bench/profile_top.py serve.txt [--top 30] [--match imagestudio]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--match", default="", help="only frames whose text contains this")
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    print(f"{total} samples")
    for frame, count in inclusive.most_common():
        if args.match in frame and args.top > 0:
            args.top -= 1
            print(f"{100 * count / total:5.1f} % incl {100 * own[frame] / total:5.1f} % own  {frame}")


if __name__ == "__main__":
    main()
