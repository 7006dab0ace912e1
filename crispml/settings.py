"""One typed settings object for the whole app.

Precedence, lowest first: defaults < ``crispml.toml`` < ``CRISPML_*`` environment < CLI flags.
The TOML file is ``$CRISPML_CONFIG`` when set, else ``crispml.toml`` in ``CRISPML_HOME``.
Every field is documented in docs/reference.md; ``tests/test_docs.py`` fails when one is not.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import secrets
import stat
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from crispml.log_patterns import DEFAULT_LOG_PATTERNS, compile_patterns

ENV_PREFIX = "CRISPML_"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MIN_SECRET_BYTES = 32
DURATION_FORMS = (
    "seconds (900 or 0.5), a number with a unit s, m, h or d (30s, 15m, 8h, 7d), "
    "or ISO 8601 (PT15M)"
)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)", re.IGNORECASE)
_ISO_OR_CLOCK = TypeAdapter(timedelta)


def parse_duration(value: Any, setting: str = "") -> timedelta:
    """A positive duration from seconds (a number or a numeric string), ``15m``-style text, or
    ISO 8601 (``PT15M``; also pydantic's ``HH:MM:SS``). The error names the setting and the forms.
    """
    name = f"'{setting}'" if setting else "a duration"
    problem = f"{value!r} is not a duration"
    result: timedelta | None = None
    try:
        if isinstance(value, timedelta):
            result = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if math.isfinite(value):
                result = timedelta(seconds=value)
        elif isinstance(value, str):
            text = value.strip()
            match = _DURATION_RE.fullmatch(text)
            if match:
                result = timedelta(seconds=float(match[1]) * _DURATION_UNITS[match[2].lower()])
            elif text:
                result = _ISO_OR_CLOCK.validate_python(text)
    except (ValidationError, OverflowError, ValueError):
        result = None
    if result is not None and result <= timedelta(0):
        problem = f"{value!r} is not more than zero"
        result = None
    if result is None:
        raise ValueError(f"{problem}: give {name} as {DURATION_FORMS}")
    return result


def _duration_setting(value: Any, info: ValidationInfo) -> timedelta:
    return parse_duration(value, info.field_name or "")


# Every duration setting: parsed by parse_duration from the TOML, the environment and flags.
Duration = Annotated[timedelta, BeforeValidator(_duration_setting)]


class SharedRoot(BaseModel):
    """A folder shared with users, e.g. a team data folder (``[[shared_roots]]`` in the TOML)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    path: Path
    read_roles: tuple[Literal["admin", "user"], ...] = ("admin", "user")
    write_roles: tuple[Literal["admin", "user"], ...] = ("admin",)


class Settings(BaseSettings):
    """All of crispml's settings. Field descriptions are the documentation's source text."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    home: Path = Field(
        default=Path("~/.crispml"),
        description="Folder for the database, the secret key, users' files, runs and models.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the database; empty means SQLite at HOME/crispml.db. "
        "postgresql://user@host/db uses PostgreSQL.",
    )
    host: str = Field(default="127.0.0.1", description="Address the web server binds to.")
    port: int = Field(default=8501, ge=0, le=65535, description="Port of the web server.")
    ssl_certfile: Path | None = Field(
        default=None, description="TLS certificate (PEM); with ssl_keyfile, serve HTTPS."
    )
    ssl_keyfile: Path | None = Field(default=None, description="TLS private key (PEM).")
    public_url: str = Field(
        default="",
        description="The address browsers use to reach crispml, e.g. https://crispml.example.org "
        "behind a reverse proxy; WebSockets and form posts from any other origin are refused. "
        "Empty: the origin each request names (its scheme and Host header).",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Key that signs CSRF tokens. Generated into HOME/secret_key (mode 0600) "
        "when unset; set it to share one key between several web replicas.",
    )
    admin_username: str = Field(
        default="admin", description="Name of the admin account created on first start."
    )
    admin_password: SecretStr | None = Field(
        default=None,
        description="Password of the first admin account; generated and printed once when unset.",
    )
    seed_demo_project: bool = Field(
        default=True,
        description="Create a demo project for the first admin on first start.",
    )
    seed_sample_data: bool = Field(
        default=True,
        description="Put the iris and shapes samples in the demo project on first start.",
    )
    session_idle_timeout: Duration = Field(
        default=timedelta(hours=8),
        description="A login session ends after this long without a request.",
    )
    session_lifetime: Duration = Field(
        default=timedelta(days=7),
        description="A login session ends this long after login, active or not.",
    )
    lockout_threshold: int = Field(
        default=5,
        ge=1,
        description="Failed logins for one account within lockout_window that lock it for the "
        "clients that failed (a client that has not failed may still log in).",
    )
    lockout_address_threshold: int = Field(
        default=20,
        ge=1,
        description="Failed logins from one client address (for any accounts) within "
        "lockout_window that lock that address out.",
    )
    lockout_window: Duration = Field(
        default=timedelta(minutes=15), description="Window in which failed logins are counted."
    )
    lockout_duration: Duration = Field(
        default=timedelta(minutes=15),
        description="How long a locked account or address refuses logins.",
    )
    trusted_proxies: tuple[str, ...] = Field(
        default=(),
        description="Reverse proxies (IP addresses or networks such as 10.0.0.0/24) whose "
        "X-Forwarded-For header names the client's address for login throttling; empty: the "
        "connection's address.",
    )
    password_min_length: int = Field(
        default=8, ge=8, le=64, description="Shortest password accepted (at least 8)."
    )
    max_form_bytes: int = Field(
        default=16_384, ge=1024, description="Largest login or logout form body accepted, in bytes."
    )
    max_upload_mb: int = Field(
        default=200,
        ge=1,
        le=100_000,
        description="Largest file a user may upload, in MB (also Streamlit's maxUploadSize).",
    )
    zip_max_entries: int = Field(
        default=10_000, ge=1, description="Most entries a zip may have to be extracted."
    )
    zip_max_bytes: int = Field(
        default=2_000_000_000, ge=1, description="Most bytes a zip may unpack to when extracted."
    )
    shared_roots: tuple[SharedRoot, ...] = Field(
        default=(),
        description="Shared folders: name, path, read_roles, write_roles (TOML [[shared_roots]]).",
    )
    jobs_max_concurrent: int = Field(
        default=0, ge=0, description="Jobs running at once; 0 means the number of CPU cores."
    )
    jobs_max_per_user: int = Field(
        default=0, ge=0, description="Jobs one user may run at once; 0 means no per-user limit."
    )
    services_max_concurrent: int = Field(
        default=16,
        ge=1,
        description="Services (notebook and API servers) running at once, for all users; they "
        "do not count against jobs_max_concurrent.",
    )
    services_max_per_user: int = Field(
        default=2, ge=1, description="Services one user may run at once (a notebook, an API)."
    )
    services_on_shutdown: Literal["keep", "stop"] = Field(
        default="keep",
        description="What happens to running services when the web server stops: 'keep' them "
        "running (reattached at the next start) or 'stop' them.",
    )
    jobs_stop_grace: float = Field(
        default=10.0, gt=0, description="Seconds between SIGTERM and SIGKILL when stopping a job."
    )
    jobs_executor: str = Field(
        default="local",
        description="Where new jobs run: 'local' (processes here) or 'ray' (a Ray cluster, with "
        "the ray extra); any executor installed in the crispml.executors entry points.",
    )
    ray_address: str = Field(
        default="http://127.0.0.1:8265",
        description="Address of the Ray head's dashboard, for jobs_executor = 'ray'.",
    )
    conda_tools: tuple[str, ...] = Field(
        default=("conda", "mamba", "micromamba"),
        description="conda-compatible tools (names on PATH or absolute paths) whose "
        "environments are offered as kind 'conda'.",
    )
    python_interpreters: tuple[str, ...] = Field(
        default=(),
        description="Interpreters to offer for new venvs besides those found on PATH, in pyenv "
        "and in /usr/bin and /usr/local/bin (absolute paths).",
    )
    env_find_links: tuple[str, ...] = Field(
        default=(),
        description="Folders or URLs where uv also looks for packages when building "
        "environments; empty: pip's own find-links (PIP_FIND_LINKS or pip.conf).",
    )
    notebook_idle_timeout: Duration = Field(
        default=timedelta(hours=1),
        description="A user's JupyterLab shuts down after this long without activity; its "
        "kernels are stopped after being idle this long.",
    )
    notebook_terminals: bool = Field(
        default=False,
        description="Whether JupyterLab offers terminals (a shell in the user's sandbox).",
    )
    notebook_ports: str = Field(
        default="",
        pattern=r"^(\d{4,5}(-\d{4,5})?)?$",
        description="Ignored, kept so older configuration files still load: JupyterLab now "
        "listens on a Unix socket in the user's notebook folder, not on a port.",
    )
    sandbox: Literal["auto", "off"] = Field(
        default="auto",
        description="'auto': every process run on a user's behalf runs in a bubblewrap sandbox "
        "(as the user's own OS account when the server runs as root); without bubblewrap or "
        "user namespaces, running code is refused for everyone but admins. 'off': no sandbox, "
        "for a single trusted user (a warning at start).",
    )
    sandbox_uid_base: int = Field(
        default=200_000,
        ge=1000,
        description="The OS uid of crispml user N is this plus N (as root; accounts cm-<name> "
        "are created on first use, without a login shell).",
    )
    sandbox_uid_count: int = Field(
        default=60_000, ge=1, description="How many uids from sandbox_uid_base crispml may use."
    )
    sandbox_memory_mb: int = Field(
        default=6144,
        ge=64,
        description="Memory one sandboxed job may use, in MiB (a cgroup where possible, an "
        "address-space rlimit otherwise); over it the kernel ends the job: 'out of memory'.",
    )
    sandbox_processes: int = Field(
        default=1024,
        ge=16,
        description="Processes and threads one sandboxed job may run at once.",
    )
    sandbox_network: bool = Field(
        default=False,
        description="Let every user's sandboxed code reach the network (per user: crispml user "
        "network NAME). Off: a loopback of its own only, no services of this machine.",
    )
    ray_trusted: bool = Field(
        default=False,
        description="Treat the Ray cluster as trusted: users with the code permission may then "
        "run commands there, outside crispml's sandbox. Off: only admins may.",
    )
    log_metric_patterns: tuple[str, ...] = Field(
        default=DEFAULT_LOG_PATTERNS,
        description="Regular expressions that find metrics in a job's output log when it "
        "writes no metrics.jsonl, CSV or TensorBoard file: named groups name and value, or one "
        "group per metric; step, epoch, total, batch and batches place the line. The default "
        "reads key=value, key: value and Keras lines.",
    )
    api_host: str = Field(
        default="127.0.0.1",
        description="Address the model API server (crispml serve, or started on the Deployment "
        "page) binds to.",
    )
    api_port: int = Field(default=8503, ge=1, le=65535, description="Port of the model API server.")
    api_batch_max: int = Field(
        default=64,
        ge=1,
        description="Most rows or images one model call takes when concurrent requests are "
        "batched together.",
    )
    api_batch_wait_ms: float = Field(
        default=2.0,
        ge=0,
        le=1000,
        description="Longest a request waits for others to share its model call; only while "
        "requests arrive concurrently (a lone request never waits).",
    )
    api_model_threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Threads one model call may use (PyTorch's and OpenMP's intra-op threads). "
        "One is fastest for a server answering many small requests at once.",
    )
    api_max_request_mb: int = Field(
        default=50, ge=1, description="Largest request the model API accepts, in MB."
    )
    api_max_images: int = Field(
        default=64, ge=1, description="Most images one prediction request may hold."
    )
    api_max_pixels: int = Field(
        default=25_000_000, ge=1, description="Most pixels (width x height) of one image."
    )
    api_max_image_mb: int = Field(
        default=20,
        ge=1,
        description="Largest image file (one base64 image, or one image in a zip) the model API "
        "accepts, in MB.",
    )
    api_max_decoded_mb: int = Field(
        default=200,
        ge=1,
        description="Most memory one model API request's decoded input may take, in MB: its "
        "images' pixels, or its JSON's objects (estimated before parsing).",
    )
    api_max_json_depth: int = Field(
        default=32, ge=2, le=500, description="Deepest nesting of a JSON body the model API parses."
    )
    api_timeout: Duration = Field(
        default=timedelta(seconds=60), description="Longest a prediction may take (504 after)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Log level of the server."
    )

    @field_validator("secret_key", mode="after")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_BYTES:
            raise ValueError(f"must have at least {MIN_SECRET_BYTES} characters")
        return value

    @field_validator("public_url", mode="after")
    @classmethod
    def _public_url_is_an_origin(cls, value: str) -> str:
        if not value:
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from exc
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.username is not None
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise ValueError(
                "must be http(s)://host[:port], without a path (crispml is served at /)"
            )
        return value.rstrip("/")

    @field_validator("log_metric_patterns", mode="after")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        compile_patterns(value)  # a ValueError names the pattern
        return value

    @field_validator("trusted_proxies", mode="after")
    @classmethod
    def _proxy_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        networks = []
        for item in value:
            try:
                networks.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)"
                ) from None
        return tuple(networks)

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _toml_path(init_settings())
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_file)
        return (init_settings, env_settings, toml)

    # Derived values -------------------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'crispml.db'}"

    @property
    def uses_tls(self) -> bool:
        return self.ssl_certfile is not None and self.ssl_keyfile is not None

    @property
    def exposed_without_tls(self) -> bool:
        """True when the server is reachable beyond this machine over plain HTTP."""
        return self.host not in LOOPBACK_HOSTS and not self.uses_tls

    def ensure_home(self) -> None:
        """Create HOME private to the server's user (it holds password hashes and the key)."""
        # exist_ok: a process starting at the same moment may create it between a check and
        # the mkdir (a first start of the web app and a CLI call, say).
        self.home.mkdir(parents=True, mode=0o700, exist_ok=True)
        (self.home / "users").mkdir(exist_ok=True)

    def load_secret_key(self) -> bytes:
        """The configured key, else the one in HOME/secret_key, created 0600 on first use."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        self.ensure_home()
        path = self.home / "secret_key"
        if not path.exists():
            # Written whole to a private temporary file, then linked into place: a process
            # starting at the same moment sees either no key or the whole key, never an empty one.
            tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process won the race; use its key
            finally:
                tmp.unlink()
        key = path.read_bytes().strip()
        if len(key) < MIN_SECRET_BYTES:
            raise ValueError(
                f"{path} holds fewer than {MIN_SECRET_BYTES} bytes; delete it to make a new key."
            )
        return key


def _toml_path(init_values: dict[str, Any]) -> Path:
    explicit = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    home = init_values.get("home") or os.environ.get(f"{ENV_PREFIX}HOME") or "~/.crispml"
    return Path(home).expanduser() / "crispml.toml"


def load_settings(**overrides: Any) -> Settings:
    """Build settings; ``overrides`` are CLI flags (None means "not given")."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
