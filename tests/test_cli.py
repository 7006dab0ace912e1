"""The CLI on a temporary CRISPML_HOME. The main path of each test runs as a user runs it, in a
real subprocess (``real=True``); the many error cases run the same typer app in-process (an
uncaught exception fails the test), which saves the two-second start of each process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ADMIN_PASSWORD


@pytest.fixture
def crispml(tmp_path: Path):
    from typer.testing import CliRunner

    from crispml.cli import app

    env = {k: v for k, v in os.environ.items() if not k.startswith("CRISPML_")}
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CRISPML_")}
    home = str(tmp_path / "home")

    def run(
        *args: str, stdin: str = "", ok: bool = True, real: bool = False
    ) -> subprocess.CompletedProcess[str]:
        if real:
            proc = subprocess.run(
                [sys.executable, "-m", "crispml", "--home", home, *args],
                input=stdin,
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
        else:
            result = CliRunner().invoke(app, ["--home", home, *args], input=stdin, env=unset)
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                raise result.exception  # what a user would see as a traceback
            proc = subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc

    return run


def test_user_lifecycle(crispml) -> None:
    assert "Database at revision" in crispml("db", "upgrade", real=True).stdout
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


def test_environments_from_the_command_line(crispml, tmp_path: Path) -> None:
    crispml("user", "add", "root", "--role", "admin", "--password-stdin", stdin=ADMIN_PASSWORD)
    built = crispml("env", "create", "tiny", real=True)  # no requirements: nothing to download
    assert "Building tiny as job" in built.stdout and "uv venv" in built.stdout
    assert "tiny is ready: Python 3.11" in built.stdout
    listing = crispml("env", "list").stdout
    assert "system" in listing and "tiny" in listing and "venv" in listing
    rows = {e["name"]: e for e in json.loads(crispml("env", "list", "--json").stdout)}
    assert rows["tiny"]["healthy"] is True and rows["tiny"]["size_bytes"] > 0
    assert rows["tiny"]["interpreter"] == str(
        tmp_path / "home" / "envs" / "tiny" / "bin" / "python"
    )
    check = crispml("env", "check", "tiny", "-r", "numpy", ok=False)
    assert check.returncode == 1 and "problem: numpy is not installed" in check.stdout
    assert "healthy" in crispml("env", "check", "tiny").stdout
    registered = crispml("env", "create", "again", "--interpreter", sys.executable).stdout
    assert "Registered again: Python 3.11" in registered and "healthy" in registered
    for args, message in [
        (("env", "create", "tiny"), "Error: An environment named 'tiny' exists already."),
        (("env", "create", "new", "--python", "3.99"), "Error: Python 3.99 is not installed"),
        (("env", "create", "new", "--python", "2.7"), "Error: Python 2.7 is too old"),
        (("env", "create", "../up"), "Error: '../up' cannot name an environment"),
        (("env", "create", "new", "-f", "/no/such/file"), "Error: /no/such/file: No such file"),
        (("env", "rm", "system"), "Error: The system environment is crispml's own"),
        (("env", "check", "nope"), "Error: The environment 'nope' does not exist."),
    ]:
        failed = crispml(*args, ok=False)
        assert failed.returncode == 1 and message in failed.stderr, failed.stderr
        assert "Traceback" not in failed.stderr
    failed_build = crispml("env", "create", "new", "-r", "no-such-package-crispml-zq", ok=False)
    assert "nothing was registered" in failed_build.stderr
    # uv's own error is in the log: "not found in the package registry", or, when the registry
    # is slow to answer (two test workers at once), the request it gave up on.
    out = failed_build.stdout
    assert "not found in the package registry" in out or "error:" in out.lower(), out
    crispml("env", "rm", "tiny")
    names = [e["name"] for e in json.loads(crispml("env", "list", "--json").stdout)]
    assert names == ["system", "again"]
    assert not (tmp_path / "home" / "envs" / "tiny").exists()


def test_train_and_the_model_registry_from_the_command_line(crispml) -> None:
    crispml("user", "add", "root", "--role", "admin", "--password-stdin", stdin=ADMIN_PASSWORD)
    listing = crispml("algorithms", "list").stdout
    assert "logistic_regression" in listing and "C=1.0 (float [0.0001, 10000.0])" in listing
    trained = crispml(
        "train", "--algorithm", "logistic_regression", "--data", "sample:iris",
        "--param", "C=2", "--register", "iris-lr", real=True,
    ).stdout  # fmt: skip
    assert "on 'Iris · prepared 1' in system; following it." in trained
    assert "crispml: training logistic_regression with {'C': 2.0, 'max_iter': 1000}" in trained
    accuracy = next(line for line in trained.splitlines() if line.startswith("  test_accuracy"))
    assert float(accuracy.split()[-1]) >= 0.9
    assert "Registered iris-lr version 1." in trained
    assert "iris-lr" in crispml("models", "list").stdout
    shown = json.loads(crispml("models", "show", "iris-lr").stdout)
    assert (shown["version"], shown["params"]["C"], shown["classes"][0]) == (1, 2.0, "setosa")
    for args, message in [
        (("train", "--algorithm", "logistic_regression", "--data", "sample:iris", "-p", "C=-1"),
         "Error: C = -1 is out of range"),
        (("train", "--algorithm", "ridge_regression", "--data", "sample:iris"),
         "is for regression, but 'Iris · prepared 1' is prepared for classification"),
        (("train", "--algorithm", "logistic_regression", "--data", "sample:mnist"),
         "Error: No sample named 'mnist'"),
        (("models", "show", "nope"), "Error: No model 'nope'."),
    ]:  # fmt: skip
        failed = crispml(*args, ok=False)
        assert failed.returncode == 1 and message in failed.stderr, failed.stderr
        assert "Traceback" not in failed.stderr
    bad_param = crispml("train", "--algorithm", "x", "--data", "y", "-p", "C", ok=False)
    assert bad_param.returncode == 2 and "write it as key=value" in bad_param.stderr
