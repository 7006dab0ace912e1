"""Importing crispml's core, services and CLI stays cheap: every job, CLI call and supervisor is
a new Python. No data-science library is imported until used, no Argon2 hash is computed."""

from __future__ import annotations

import subprocess
import sys

HEAVY = {"numpy", "pandas", "torch", "sklearn", "pyarrow", "scipy", "streamlit", "altair"}


def test_importing_core_services_and_the_cli_is_cheap() -> None:
    code = (
        "import crispml.services, crispml.cli, crispml.core.jobs, crispml.core.files.service\n"
        "from crispml.core import passwords\n"
        "print(passwords._dummy_hash.cache_info().currsize)\n"
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    rows = [line.split("|") for line in done.stderr.splitlines() if line.startswith("import time:")]
    modules = {row[2].strip() for row in rows[1:]}  # the first row is the header
    assert "crispml.services" in modules
    assert not HEAVY & {m.split(".")[0] for m in modules}, sorted(HEAVY & modules)
    assert done.stdout.strip() == "0"  # no hash at import
    cumulative = {row[2].strip(): int(row[1]) for row in rows[1:]}
    # Generous on a noisy two-core machine (about 0.4 s measured); a heavy import costs seconds.
    assert cumulative["crispml.services"] < 3_000_000, cumulative["crispml.services"]
