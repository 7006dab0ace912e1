"""Settings precedence: defaults < crispml.toml < CRISPML_* environment < CLI flags."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from crispml.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("CRISPML_"):
            monkeypatch.delenv(key)


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    s = load_settings()
    assert s.home == tmp_path / ".crispml"
    assert (s.host, s.port) == ("127.0.0.1", 8501)
    assert s.resolved_database_url == f"sqlite:///{tmp_path / '.crispml' / 'crispml.db'}"
    assert s.lockout_threshold == 5 and s.lockout_window == timedelta(minutes=15)


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / "crispml.toml").write_text(
        'port = 9001\nhost = "0.0.0.0"\nlog_level = "debug"\nsession_idle_timeout = 60\n'
    )
    monkeypatch.setenv("CRISPML_HOME", str(home))
    s = load_settings()
    assert (s.port, s.host, s.log_level) == (9001, "0.0.0.0", "debug")
    assert s.session_idle_timeout == timedelta(seconds=60)
    monkeypatch.setenv("CRISPML_PORT", "9002")
    assert load_settings().port == 9002  # environment beats the file
    assert load_settings(port=9003).port == 9003  # CLI flag beats the environment
    assert load_settings(port=None).port == 9002  # a flag not given changes nothing
    assert load_settings().host == "0.0.0.0"  # untouched values still come from the file


def test_config_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text("lockout_threshold = 3\n")
    monkeypatch.setenv("CRISPML_CONFIG", str(cfg))
    assert load_settings(home=tmp_path).lockout_threshold == 3


@pytest.mark.parametrize(
    "content", ['port = "not a port"\n', "password_min_length = 4\n", "unknown_setting = 1\n"]
)
def test_bad_values_are_refused(tmp_path: Path, content: str) -> None:
    (tmp_path / "crispml.toml").write_text(content)
    with pytest.raises(ValidationError):
        load_settings(home=tmp_path)


def test_secret_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    s = Settings(home=tmp_path / "home")
    key = s.load_secret_key()
    assert len(key) == 64
    path = tmp_path / "home" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings(home=tmp_path / "home").load_secret_key() == key


def test_exposure_warning_condition() -> None:
    assert not Settings(host="127.0.0.1").exposed_without_tls
    assert Settings(host="0.0.0.0").exposed_without_tls
    assert not Settings(
        host="0.0.0.0", ssl_certfile="c.pem", ssl_keyfile="k.pem"
    ).exposed_without_tls


def test_concurrent_first_starts_share_one_whole_key(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from crispml.settings import Settings;"
        "print(Settings(home=sys.argv[1]).load_secret_key().decode())"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "h")], stdout=subprocess.PIPE)
        for _ in range(6)
    ]
    keys = {p.communicate(timeout=60)[0].decode().strip() for p in procs}
    assert len(keys) == 1
    assert len(keys.pop()) == 64
    assert [p.name for p in (tmp_path / "h").iterdir() if p.name.startswith(".secret")] == []


def test_short_configured_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(secret_key="too-short")
