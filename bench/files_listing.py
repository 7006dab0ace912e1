"""Benchmark: the first page of a folder with 100,000 files, against a bare os.scandir.

Target (issue 4): under 300 ms, and no more than 3 times a bare ``os.scandir`` over the same
folder, measured in the same run. The baseline reads every entry's name and type, which any
listing must do; crispml also sorts (folders first, by name), pages, and stats the page's
entries. Sorting by size or modified time must stat every entry and is shown for comparison.

    .venv/bin/python bench/files_listing.py [--files 100000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from crispml.core.files.space import FileSpace, Root


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="crispml-bench-files-"))
    try:
        folder = base / "big"
        folder.mkdir()
        for i in range(args.files):
            (folder / f"file-{i:06d}.csv").touch()
        for i in range(50):
            (folder / f"sub-{i:02d}").mkdir()
        space = FileSpace(Root("~bench", "bench", base, writable=True))

        def bare() -> object:
            with os.scandir(folder) as it:
                return [(e.name, e.is_dir()) for e in it]

        rows = [
            ("bare os.scandir (names and types)", timed(bare, args.repeats)),
            (
                "crispml first page (100), by name",
                timed(lambda: space.listing("big"), args.repeats),
            ),
            (
                "crispml first page (100), by name, descending",
                timed(lambda: space.listing("big", descending=True), args.repeats),
            ),
            (
                "crispml first page (100), by modified (stats all)",
                timed(lambda: space.listing("big", sort="modified"), args.repeats),
            ),
        ]
        baseline = statistics.median(rows[0][1])
        print(f"Listing a folder of {args.files:,} files (+50 folders), {args.repeats} repeats\n")
        print("| measure | median (ms) | max (ms) | vs bare scandir | target |")
        print("| --- | ---: | ---: | ---: | --- |")
        for i, (label, times) in enumerate(rows):
            median = statistics.median(times)
            target = "< 300 ms and <= 3x" if i == 1 else ""
            print(
                f"| {label} | {median * 1000:.1f} | {max(times) * 1000:.1f} | "
                f"{median / baseline:.2f}x | {target} |"
            )
        first = statistics.median(rows[1][1])
        ok = first < 0.300 and first <= 3 * baseline
        print(f"\ntarget {'met' if ok else 'NOT met'}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
