"""The profile job for large tables: ``python -m crispml.core.data.profile_job DATASETS ID``.

Reads the dataset's Parquet copy and writes ``profile-<version>.json`` beside it, atomically;
the page, which started the job, shows the profile when the file is there.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    import pandas as pd

    from crispml.core.data.profile import profile_table

    root, dataset_id = Path(argv[0]), argv[1]
    folder = root / dataset_id
    started = time.monotonic()
    print(f"crispml: reading {folder / 'data.parquet'}", flush=True)
    frame = pd.read_parquet(folder / "data.parquet")
    print(f"crispml: profiling {frame.shape[0]:,} rows x {frame.shape[1]} columns", flush=True)
    result = profile_table(frame)
    version = (folder / "version").read_text().strip()
    target = folder / f"profile-{version}.json"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(target)
    print(f"crispml: profile written in {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
