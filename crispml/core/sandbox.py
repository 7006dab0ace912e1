"""The sandbox every process run on a user's behalf starts in: bubblewrap plus an OS identity.

Security note: this module decides what a user's code can reach. A sandboxed job sees a root
file system built from nothing (bubblewrap): the system's ``/usr`` and ``/etc`` read-only, its
environment's interpreter and packages read-only, exactly the inputs it was given read-only, the
user's own file space and the job's run folder read-write, a private ``/tmp`` and a fresh
``/proc`` of its own PID namespace. Nothing else of ``CRISPML_HOME`` (the database, the secret
key, other users' files, runs and notebooks) is mounted. It has its own network namespace (only
its own loopback) unless an admin allowed the network, and a minimal environment (none of the
server's variables).

Identity: when the server runs as root, each crispml user maps to its own uid/gid
(``uid_base + user id``; an OS account ``cm-<name>`` without a login shell is created on first
use), and the sandbox drops to it (``setpriv``: no capabilities, no new privileges), so even an
escape from the mount namespace leaves an unprivileged, distinct account. Files the user's jobs
write are owned by that uid; the server, as root, still reads them. When the server runs
unprivileged, bubblewrap uses an unprivileged user namespace and jobs keep the server's uid:
mount, PID and network isolation hold, the separate identity does not.

Limits: per-job memory and process count through cgroups where this machine lets the server
create them (v2, or v1's memory and pids controllers), rlimits otherwise; a job the kernel killed
for memory is reported as "out of memory at <limit>".

This module is standard library only: the job supervisor imports it before anything else.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pwd
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

OS_NAME_PREFIX = "cm-"
OS_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,28}")
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
PRIVATE_TMP = "/tmp"  # noqa: S108 (inside the sandbox: a private, empty tmpfs of its own)
# Where bubblewrap's own root file system gets the system from (merged /usr on Debian).
SYSTEM_LINKS = {"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib", "/lib64": "usr/lib64"}


class SandboxError(Exception):
    """The sandbox cannot be set up for this job; the message says why and what to do."""


@dataclass(frozen=True)
class SandboxSettings:
    """How jobs are sandboxed (settings ``sandbox``, ``sandbox_uid_base`` ...)."""

    mode: str = "auto"  # auto: bubblewrap when it works here; off: no sandbox (trusted users)
    uid_base: int = 200_000
    uid_count: int = 60_000
    memory_mb: int = 6144
    processes: int = 1024
    network: bool = False  # every user's jobs may reach the network

    def environment(self) -> dict[str, str]:
        """For supervisors, which schedule queued jobs without the server's settings."""
        return {"CRISPML_SANDBOX_SETTINGS": json.dumps(asdict(self))}

    @classmethod
    def from_environment(cls) -> SandboxSettings:
        raw = os.environ.get("CRISPML_SANDBOX_SETTINGS")
        return cls(**json.loads(raw)) if raw else cls()


@dataclass(frozen=True)
class Capability:
    """What this machine offers: ``identity`` (bubblewrap as root, a uid per user), ``userns``
    (bubblewrap in an unprivileged user namespace), ``none`` (no sandbox possible) or ``off``."""

    kind: str
    message: str

    @property
    def available(self) -> bool:
        return self.kind in ("identity", "userns")


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=4)
def probe(mode: str = "auto") -> Capability:
    """Whether (and how) jobs can be sandboxed here: one tiny sandbox, started for real."""
    if mode == "off":
        return Capability(
            "off",
            'The sandbox is off (setting sandbox = "off"): every job runs as the server\'s own '
            "account and can read its database and secret key. Use this for a single trusted "
            "user only.",
        )
    bwrap = bwrap_path()
    if bwrap is None:
        return Capability(
            "none",
            "bubblewrap is not installed, so jobs cannot be sandboxed: install it "
            "(apt-get install bubblewrap) and restart crispml.",
        )
    privileged = os.geteuid() == 0
    argv = [bwrap, *_namespaces(network=False), *_system_mounts(), "--", "/usr/bin/true"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Capability("none", f"bubblewrap could not start a sandbox: {exc}.")
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no message"
        hint = (
            "this kernel does not allow the namespaces it needs"
            if privileged
            else "unprivileged user namespaces are off in this kernel "
            "(sysctl kernel.unprivileged_userns_clone=1, or run crispml as root)"
        )
        return Capability("none", f"bubblewrap could not start a sandbox ({why}): {hint}.")
    if privileged:
        return Capability(
            "identity",
            "Sandboxed with bubblewrap; the server runs as root, so each user's jobs run as "
            "that user's own OS account.",
        )
    return Capability(
        "userns",
        "Sandboxed with bubblewrap in an unprivileged user namespace; the server does not run "
        "as root, so every user's jobs share the server's OS account (files, processes and "
        "network are still isolated).",
    )


# --- identity -----------------------------------------------------------------------------------


def os_account(username: str) -> str:
    """The OS account name of a crispml user, or a clear refusal."""
    if not OS_NAME_RE.fullmatch(username):
        raise SandboxError(
            f"The user name '{username}' cannot map to an OS account (at most 29 characters: "
            "lower-case letters, digits, '.', '_' or '-'), so its code cannot run sandboxed."
        )
    return OS_NAME_PREFIX + username


def identity(settings: SandboxSettings, user_id: int, username: str) -> tuple[int, int]:
    """The uid (= gid) a crispml user's jobs run as: their OS account ``cm-<name>``, created on
    first use with ``sandbox_uid_base + user id`` (or the next free uid of the range)."""
    name = os_account(username)
    for _ in range(3):
        try:
            found = pwd.getpwnam(name)
        except KeyError:
            found = None
        if found is not None:
            if found.pw_gecos != ACCOUNT_COMMENT or not _in_range(settings, found.pw_uid):
                raise SandboxError(
                    f"The OS account '{name}' exists but is not one of crispml's sandbox "
                    f"accounts in its uid range: remove it or rename the crispml user."
                )
            return found.pw_uid, found.pw_gid
        if os.geteuid() != 0 or not shutil.which("useradd"):
            raise SandboxError(
                f"The OS account '{name}' does not exist and cannot be created here (the server "
                "is not root, or useradd is missing)."
            )
        _create_account(name, _free_uid(settings, user_id, username))
    raise SandboxError(f"The OS account '{name}' could not be created.")


ACCOUNT_COMMENT = "crispml sandbox"


def _in_range(settings: SandboxSettings, uid: int) -> bool:
    return settings.uid_base <= uid < settings.uid_base + settings.uid_count


def _free_uid(settings: SandboxSettings, user_id: int, username: str) -> int:
    taken = {p.pw_uid for p in pwd.getpwall()}
    preferred = settings.uid_base + user_id
    candidates = [preferred] if _in_range(settings, preferred) else []
    candidates += range(settings.uid_base, settings.uid_base + settings.uid_count)
    for uid in candidates:
        if uid not in taken:
            return uid
    raise SandboxError(
        f"The sandbox's uid range is exhausted: no free uid for '{username}' among "
        f"{settings.uid_count} from {settings.uid_base} (settings sandbox_uid_base and "
        "sandbox_uid_count)."
    )


def _create_account(name: str, uid: int) -> None:
    """A system account with no home, no password and no login shell."""
    shell = "/usr/sbin/nologin" if Path("/usr/sbin/nologin").exists() else "/bin/false"
    with contextlib.suppress(OSError):
        subprocess.run(
            ["groupadd", "--gid", str(uid), name], capture_output=True, timeout=30, check=False
        )
    done = subprocess.run(
        [
            "useradd",
            "--uid",
            str(uid),
            "--gid",
            str(uid),
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            shell,
            "--comment",
            ACCOUNT_COMMENT,
            name,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode not in (0, 4, 9):  # 4: uid taken, 9: name taken (both: meanwhile)
        raise SandboxError(f"Could not create the OS account '{name}': {done.stderr.strip()}")


def own(path: Path, uid: int, gid: int, *, recursive: bool = False) -> None:
    """Give ``path`` (and, once, everything below it) to a user's OS identity."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if st.st_uid == uid and not recursive:
        return
    os.lchown(path, uid, gid)
    if recursive and path.is_dir() and not path.is_symlink():
        for parent, dirs, files in os.walk(path):
            for name in dirs + files:
                with contextlib.suppress(FileNotFoundError):
                    os.lchown(os.path.join(parent, name), uid, gid)


def give_run_folder(folder: Path, gid: int) -> None:
    """A job's folder for its owner's identity to write in: the server's, group-writable by the
    user's group and sticky, so the job adds files but cannot replace the server's own (its
    log, its launch and command files) with links to elsewhere."""
    os.chown(folder, 0, gid)
    os.chmod(folder, 0o1770)  # noqa: S103 (sticky: only its group, the user, may add files)


def own_tree_once(path: Path, uid: int, gid: int) -> None:
    """Re-own a folder tree when its top is not the user's yet (a home from an older version,
    or files the server wrote there); cheap when it already is."""
    with contextlib.suppress(FileNotFoundError):
        if path.lstat().st_uid != uid:
            own(path, uid, gid, recursive=True)


# --- the command ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxSpec:
    """What one job's sandbox holds; JSON in the job's launch file."""

    uid: int | None  # None: keep the server's uid (unprivileged user namespace)
    gid: int | None
    writable: list[str] = field(default_factory=list)
    readable: list[str] = field(default_factory=list)
    network: bool = False
    memory_mb: int = 6144
    processes: int = 1024
    home: str = PRIVATE_TMP

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SandboxSpec:
        return cls(**data)  # type: ignore[arg-type]


def _namespaces(network: bool) -> list[str]:
    spaces = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if os.geteuid() != 0:
        spaces.append("--unshare-user")
    if not network:
        spaces.append("--unshare-net")
    return [*spaces, "--die-with-parent", "--hostname", "crispml-job"]


def _system_mounts() -> list[str]:
    argv = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for link, target in SYSTEM_LINKS.items():
        if Path(link).is_symlink():
            argv += ["--symlink", target, link]
        elif Path(link).is_dir():
            argv += ["--ro-bind", link, link]
    return [*argv, "--proc", "/proc", "--dev", "/dev", "--tmpfs", PRIVATE_TMP, "--tmpfs", "/run"]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _outermost(paths: Iterable[str]) -> list[str]:
    """Paths without those already inside another one, parents first."""
    kept: list[str] = []
    for path in sorted({os.path.normpath(p) for p in paths if p}, key=len):
        if not any(_inside(path, k) for k in kept):
            kept.append(path)
    return kept


def _binds(readable: Iterable[str], writable: Iterable[str]) -> list[str]:
    """Bind mounts, parents before what they hold. bubblewrap would make missing parent folders
    mode 0700 (root's), which the user could not pass through: they are made 0755 first."""
    rw = _outermost(writable)
    ro = [
        p
        for p in _outermost(r for r in readable if not r.startswith("/usr/"))
        if os.path.exists(p) and not any(_inside(p, w) for w in rw)
    ]
    mounts = sorted([(p, "--ro-bind") for p in ro] + [(p, "--bind") for p in rw])
    argv: list[str] = []
    made: set[str] = set()
    for path, _ in mounts:
        parents = list(reversed(Path(path).parents))[1:]  # without "/"
        for parent in map(str, parents):
            if parent in made or any(_inside(parent, p) for p, _ in mounts):
                continue
            if parent in (PRIVATE_TMP, "/usr", "/etc", "/proc", "/dev", "/run"):
                continue
            argv += ["--perms", "0755", "--dir", parent]
            made.add(parent)
    for path, flag in sorted(mounts, key=lambda m: len(m[0])):
        argv += [flag, path, path]
    return argv


def command(
    spec: SandboxSpec, argv: list[str], workdir: str, environment: dict[str, str]
) -> list[str]:
    """``argv`` wrapped in bubblewrap (and ``setpriv`` to the user's uid, as root)."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxError("bubblewrap is not installed (apt-get install bubblewrap).")
    wrapped = [bwrap, *_namespaces(spec.network), *_system_mounts()]
    wrapped += _binds(spec.readable, spec.writable)
    if spec.network:
        wrapped += ["--ro-bind-try", "/run/systemd/resolve", "/run/systemd/resolve"]
    variables = {
        "PATH": SANDBOX_PATH,
        "HOME": spec.home,
        "LANG": "C.UTF-8",
        "TMPDIR": PRIVATE_TMP,
        **environment,
    }
    # The root's own folders (made for the binds) read-only too: in a user namespace the user
    # owns them and could otherwise make files that look like the server's.
    wrapped += ["--remount-ro", "/", "--chdir", workdir, "--clearenv"]
    for key, value in variables.items():
        wrapped += ["--setenv", key, value]
    wrapped.append("--")
    if spec.uid is not None and os.geteuid() == 0:
        wrapped += [
            "/usr/bin/setpriv",
            f"--reuid={spec.uid}",
            f"--regid={spec.gid if spec.gid is not None else spec.uid}",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ]
    return [*wrapped, *argv]


# --- limits -----------------------------------------------------------------------------------


class JobLimits:
    """A job's memory and process limits: a cgroup of its own where this machine lets us make
    one (v2, or v1's memory and pids controllers), rlimits otherwise."""

    def __init__(self, job_id: str, memory_mb: int, processes: int) -> None:
        self.memory = memory_mb * 1024 * 1024
        self.processes = processes
        self.groups: list[Path] = []
        self.version = 0
        name = f"crispml-job-{job_id}"
        with contextlib.suppress(OSError):
            self._make(name)

    def _make(self, name: str) -> None:
        mine = Path("/proc/self/cgroup").read_text().splitlines()
        unified = Path("/sys/fs/cgroup/cgroup.controllers")
        if unified.exists():
            here = next((line.split(":", 2)[2] for line in mine if line.startswith("0::")), "")
            parent = Path("/sys/fs/cgroup") / here.lstrip("/")
            wanted = {"memory", "pids"}
            if not wanted <= set((parent / "cgroup.controllers").read_text().split()):
                return
            if not wanted <= set((parent / "cgroup.subtree_control").read_text().split()):
                return  # delegating them would move this process: not ours to do
            group = parent / name
            group.mkdir(exist_ok=True)
            self.groups = [group]
            (group / "memory.max").write_text(str(self.memory))
            with contextlib.suppress(OSError):
                (group / "memory.swap.max").write_text("0")
            (group / "pids.max").write_text(str(self.processes))
            self.version = 2
            return
        paths = {}
        for line in mine:
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                paths[controller] = path
        groups = []
        for controller, limit_file, value in (
            ("memory", "memory.limit_in_bytes", self.memory),
            ("pids", "pids.max", self.processes),
        ):
            base = Path("/sys/fs/cgroup") / controller / paths.get(controller, "/").lstrip("/")
            if not (base / "cgroup.procs").exists():
                continue
            group = base / name
            group.mkdir(exist_ok=True)
            (group / limit_file).write_text(str(value))
            if controller == "memory":
                with contextlib.suppress(OSError):
                    (group / "memory.memsw.limit_in_bytes").write_text(str(value))
            groups.append(group)
        if len(groups) == 2:
            self.groups, self.version = groups, 1
        else:
            for group in groups:
                with contextlib.suppress(OSError):
                    group.rmdir()

    @property
    def kind(self) -> str:
        return f"cgroup v{self.version}" if self.version else "rlimits"

    def enter(self) -> None:
        """In the job's process before it executes (a ``preexec_fn``): join the cgroup, or
        set rlimits that the sandbox and everything it starts inherit."""
        if self.groups:
            for group in self.groups:
                (group / "cgroup.procs").write_text(str(os.getpid()))
            return
        resource.setrlimit(resource.RLIMIT_AS, (self.memory, self.memory))
        resource.setrlimit(resource.RLIMIT_NPROC, (self.processes, self.processes))

    def out_of_memory(self) -> bool:
        """Whether the kernel killed something in the job for memory."""
        if not self.groups:
            return False
        group = self.groups[0]
        try:
            if self.version == 2:
                events = (group / "memory.events").read_text()
                return any(
                    line.split()[0] == "oom_kill" and int(line.split()[1]) > 0
                    for line in events.splitlines()
                )
            control = (group / "memory.oom_control").read_text()
            killed = [
                int(line.split()[1])
                for line in control.splitlines()
                if line.split()[:1] == ["oom_kill"]
            ]
            if killed:
                return killed[0] > 0
            return int((group / "memory.failcnt").read_text()) > 0
        except (OSError, ValueError, IndexError):
            return False

    def describe_memory(self) -> str:
        gib = self.memory / 1024**3
        return f"{gib:.1f} GiB" if gib >= 1 else f"{self.memory / 1024**2:.0f} MiB"

    def remove(self, wait_s: float = 5.0) -> None:
        """Remove the job's cgroups once the processes killed in them are gone."""
        deadline = time.monotonic() + wait_s
        for group in self.groups:
            while True:
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)


def remove_links(folder: Path) -> int:
    """Remove symbolic links a job left in its folder, so the server, which reads and copies
    what jobs write, never follows one out of it. Returns how many were removed."""
    removed = 0
    for parent, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(parent, name)
            if os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.unlink(path)
                    removed += 1
    return removed


def python_paths(interpreter: str, prefix: str = "") -> list[str]:
    """What an interpreter needs to be readable in a sandbox: its installation (and, for a
    venv, the base installation it was made from)."""
    paths = []
    for start in (Path(interpreter), Path(interpreter).resolve()):
        root = start.parent.parent
        paths.append(str(root))
        cfg = root / "pyvenv.cfg"
        with contextlib.suppress(OSError):  # none, or not this account's to read
            for line in cfg.read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home" and value.strip():
                    home = Path(value.strip())
                    paths += [str(home.parent), str(home.resolve().parent.parent)]
    if prefix:
        paths.append(prefix)
    return [p for p in dict.fromkeys(paths) if p not in ("/", "/usr") and not p.startswith("/usr/")]


def server_pythonpath() -> list[str]:
    """The folders on the server's own PYTHONPATH (set by its operator) that exist: jobs in the
    system environment import from them as the server does."""
    entries = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    return [os.path.abspath(e) for e in entries if e and os.path.isdir(e)]


def own_python_paths() -> list[str]:
    """This server's own interpreter and packages (crispml's runners and the system env)."""
    import crispml  # the package's folder: an editable install lives outside site-packages

    package = str(Path(crispml.__file__).resolve().parent)
    paths = [sys.prefix, sys.base_prefix, os.path.realpath(sys.base_prefix), package]
    paths += server_pythonpath()  # the operator's additions to the system environment
    return [p for p in dict.fromkeys(paths) if p not in ("/", "/usr") and not p.startswith("/usr/")]
