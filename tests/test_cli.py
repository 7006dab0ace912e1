"""The CLI, run as a user runs it: a real subprocess on a temporary CRISPML_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ADMIN_PASSWORD


@pytest.fixture
def crispml(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRISPML_")}

    def run(*args: str, stdin: str = "", ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "crispml", "--home", str(tmp_path / "home"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc

    return run


def test_user_lifecycle(crispml) -> None:
    assert "Database at revision" in crispml("db", "upgrade").stdout
    crispml("user", "add", "root", "--role", "admin", "--password-stdin", stdin=ADMIN_PASSWORD)
    crispml("user", "add", "bob", "--password-stdin", stdin="lilac-harbor-93\n")
    listing = crispml("user", "list").stdout
    assert "root" in listing and "admin" in listing and "bob" in listing
    crispml("user", "disable", "bob")
    assert "disabled" in crispml("user", "list").stdout
    crispml("user", "enable", "bob")
    crispml("user", "passwd", "bob", "--password-stdin", stdin="new-orchid-771\n")
    weak = crispml("user", "passwd", "bob", "--password-stdin", stdin="password\n", ok=False)
    assert weak.returncode == 1
    assert "Error: That password is one of the most common ones" in weak.stderr
    assert "Traceback" not in weak.stderr
    missing = crispml("user", "disable", "nobody", ok=False)
    assert "Error: No user named 'nobody'." in missing.stderr
    last = crispml("user", "disable", "root", ok=False)
    assert "last active admin" in last.stderr
    current = crispml("db", "current").stdout
    assert current.splitlines()[0].split()[-1] == current.splitlines()[1].split()[-1]


def test_user_option_defaults_to_the_first_admin(crispml) -> None:
    none_yet = crispml("project", "list", ok=False)
    assert "no admin account yet" in none_yet.stderr
    crispml("user", "add", "root", "--role", "admin", "--password-stdin", stdin=ADMIN_PASSWORD)
    crispml("user", "add", "bob", "--password-stdin", stdin="lilac-harbor-93\n")
    crispml("project", "add", "Churn", "--goal", "Keep customers")
    crispml("project", "add", "Fraud", "--user", "bob")
    assert "Churn" in crispml("project", "list").stdout
    assert "Fraud" not in crispml("project", "list").stdout
    assert "Fraud" in crispml("project", "list", "--user", "bob").stdout
    taken = crispml("project", "add", "Fraud", "--user", "bob", ok=False)
    assert "already have a project named 'Fraud'" in taken.stderr
