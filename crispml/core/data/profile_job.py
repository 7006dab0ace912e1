"""The profile job for large tables: ``python -m crispml.core.data.profile_job FOLDER``.

Runs sandboxed, with the dataset's folder read-only: reads its Parquet copy and writes
``profile.json`` into the job's own folder; the server, once the job succeeded, checks it and
keeps it beside the dataset (``DatasetService.collect_profile``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

PROFILE_FILE = "profile.json"


def main(argv: list[str]) -> int:
    import pandas as pd

    from crispml.core.data.profile import profile_table

    folder = Path(argv[0])
    started = time.monotonic()
    print(f"crispml: reading {folder / 'data.parquet'}", flush=True)
    frame = pd.read_parquet(folder / "data.parquet")
    print(f"crispml: profiling {frame.shape[0]:,} rows x {frame.shape[1]} columns", flush=True)
    result = profile_table(frame)
    target = Path(os.environ.get("CRISPML_RUN_DIR") or ".") / PROFILE_FILE
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(target)
    print(f"crispml: profile written in {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
