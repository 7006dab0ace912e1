"""Settings precedence: defaults < crispml.toml < CRISPML_* environment < CLI flags."""

from __future__ import annotations

import os
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


DURATION_FIELDS = [
    name for name, field in Settings.model_fields.items() if field.annotation is timedelta
]


def test_every_duration_setting_is_found() -> None:
    assert {"session_idle_timeout", "lockout_window", "api_timeout"} <= set(DURATION_FIELDS)


@pytest.mark.parametrize("name", DURATION_FIELDS)
@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("900", 900),
        ("90.5", 90.5),
        (" 30s", 30),
        ("15m", 900),
        ("8h", 28_800),
        ("7d", 604_800),
        ("2 H", 7200),
        ("PT15M", 900),
        ("P1DT2H", 93_600),
        ("01:00:00", 3600),
    ],
)
def test_durations_take_seconds_units_or_iso_8601_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, given: str, seconds: float
) -> None:
    monkeypatch.setenv(f"CRISPML_{name.upper()}", given)
    assert getattr(load_settings(home=tmp_path), name) == timedelta(seconds=seconds)


def test_durations_from_the_toml_file_and_flags(tmp_path: Path) -> None:
    (tmp_path / "crispml.toml").write_text(
        'session_idle_timeout = 900\nlockout_window = 90.5\nlockout_duration = "20m"\n'
        'api_timeout = "PT2M"\n'
    )
    s = load_settings(home=tmp_path)
    assert s.session_idle_timeout == timedelta(minutes=15)
    assert s.lockout_window == timedelta(seconds=90.5)
    assert s.lockout_duration == timedelta(minutes=20)
    assert s.api_timeout == timedelta(minutes=2)
    # A flag is a string or a number, as typer gives it.
    assert load_settings(home=tmp_path, session_lifetime="12h").session_lifetime == timedelta(
        hours=12
    )
    assert load_settings(home=tmp_path, session_lifetime=60).session_lifetime == timedelta(
        minutes=1
    )


@pytest.mark.parametrize("given", ["15x", "", "m", "-5", "0", "0s", "1e3", "inf", "nan", "-PT5M"])
def test_bad_durations_name_the_setting_and_the_accepted_forms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv("CRISPML_SESSION_IDLE_TIMEOUT", given)
    with pytest.raises(ValidationError) as refused:
        load_settings(home=tmp_path)
    message = str(refused.value)
    assert "give 'session_idle_timeout' as seconds (900 or 0.5)" in message
    assert "(30s, 15m, 8h, 7d)" in message and "ISO 8601 (PT15M)" in message


@pytest.mark.parametrize("given", ["true", "[1]"])
def test_durations_of_other_types_are_refused(tmp_path: Path, given: str) -> None:
    (tmp_path / "crispml.toml").write_text(f"api_timeout = {given}\n")
    with pytest.raises(ValidationError, match="give 'api_timeout' as seconds"):
        load_settings(home=tmp_path)


def test_a_bad_duration_from_the_cli_is_one_readable_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("CRISPML_")}
    env["CRISPML_LOCKOUT_WINDOW"] = "15 minutes"
    proc = subprocess.run(
        [sys.executable, "-m", "crispml", "--home", str(tmp_path), "user", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 2
    assert "Error: setting 'lockout_window': Value error, '15 minutes' is not a duration" in (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_trusted_proxies_are_addresses_or_networks(tmp_path: Path) -> None:
    (tmp_path / "crispml.toml").write_text('trusted_proxies = ["10.0.0.5", "10.1.0.0/16"]\n')
    assert load_settings(home=tmp_path).trusted_proxies == ("10.0.0.5/32", "10.1.0.0/16")
    assert load_settings(home=tmp_path / "none").trusted_proxies == ()
    with pytest.raises(ValidationError, match=r"'proxy\.example' is not an IP address or network"):
        Settings(trusted_proxies=["proxy.example"])
