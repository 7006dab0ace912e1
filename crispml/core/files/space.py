"""A file system confined to a root folder (``FileSpace``): the Files page, the picker and
/files/ use it. How paths are confined: see crispml.core.files."""

from __future__ import annotations

import contextlib
import errno
import heapq
import os
import shutil
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from crispml.core.audit import AuditLog
from crispml.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied

SortKey = Literal["name", "type", "size", "modified"]
MAX_NAME = 255


@dataclass(frozen=True)
class Root:
    """A folder users may browse. ``id`` appears in URLs: '~alice' or a shared root's name."""

    id: str
    label: str
    path: Path
    writable: bool


@dataclass(frozen=True)
class Entry:
    name: str
    path: str  # relative to the root, '/'-separated
    is_dir: bool
    size: int
    modified: datetime
    kind: str  # "folder" or a short type: "csv", "png", "file"


@dataclass(frozen=True)
class Listing:
    folder: str
    entries: list[Entry]
    total: int
    page: int
    pages: int


def clean_relative(path: str) -> str:
    """A user-given path as clean '/'-separated parts; refuses escapes with a clear message."""
    if "\x00" in path:
        raise InvalidInput("A path cannot contain a NUL byte.")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise InvalidInput("A path cannot contain control characters (line breaks, tabs, ...).")
    if "\\" in path:
        raise InvalidInput("Use '/' to separate folders in a path.")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise InvalidInput(f"'{path}' is an absolute path; paths here are inside your folder.")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidInput(f"'{path}' goes outside its folder ('..' is not allowed).")
    return "/".join(parts)


def check_name(name: str) -> str:
    """A single file or folder name (no separators), as typed by a user."""
    clean = name.strip()
    if not clean or clean in (".", ".."):
        raise InvalidInput("A name cannot be empty, '.' or '..'.")
    if "/" in clean or "\\" in clean or "\x00" in clean:
        raise InvalidInput("A name cannot contain '/', '\\' or NUL.")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in clean):
        raise InvalidInput("A name cannot contain control characters (line breaks, tabs, ...).")
    if len(clean.encode()) > MAX_NAME:
        raise InvalidInput(f"A name has at most {MAX_NAME} bytes.")
    return clean


def kind_of(name: str, is_dir: bool) -> str:
    if is_dir:
        return "folder"
    suffix = PurePosixPath(name).suffix.lower().lstrip(".")
    return suffix or "file"


DIR_NOFOLLOW = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class FileSpace:
    """Operations on one root. Every method takes paths relative to the root."""

    def __init__(self, root: Root, audit: AuditLog | None = None, actor: str = "") -> None:
        self.root = root
        self._base = root.path.resolve()
        self._audit = audit
        self._actor = actor

    # Paths -------------------------------------------------------------------------------

    def resolve(self, path: str, *, must_exist: bool = True) -> Path:
        """The real path inside the root, or InvalidInput/NotFound saying why not."""
        rel = clean_relative(path)
        joined = self._base / rel if rel else self._base
        real = Path(os.path.realpath(joined))
        if real != self._base and self._base not in real.parents:
            raise InvalidInput(f"'{path}' leads outside your folder (through a link).")
        if must_exist and not real.exists():
            raise NotFound(f"'{rel or '/'}' does not exist.")
        return real

    def relative(self, real: Path) -> str:
        return real.relative_to(self._base).as_posix()

    @contextlib.contextmanager
    def _parent(self, real: Path) -> Iterator[tuple[int, str]]:
        """The folder holding ``real`` (a path ``resolve`` returned), opened one component at
        a time from the root without following a link, and ``real``'s name in it. Users' jobs
        change their own file space while the server (root, when it sandboxes) works in it: a
        folder swapped for a link after ``resolve`` is refused here, never followed."""
        parts = real.relative_to(self._base).parts
        if not parts:
            raise InvalidInput("The root folder itself cannot be written.")
        fd = os.open(self._base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parts[:-1]:
                try:
                    inner = os.open(part, DIR_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise InvalidInput(
                            f"'{self.relative(real)}' leads outside your folder (through a link)."
                        ) from None
                    raise
                os.close(fd)
                fd = inner
            yield fd, parts[-1]
        finally:
            os.close(fd)

    def _give(self, name: str, dir_fd: int) -> None:
        """What the server makes in a user's space belongs to that user (their sandbox account
        owns the root), so their jobs can change it like their own."""
        if os.geteuid() != 0:
            return
        owner = os.stat(self._base)
        if owner.st_uid != 0:
            with contextlib.suppress(OSError):
                os.chown(name, owner.st_uid, owner.st_gid, dir_fd=dir_fd, follow_symlinks=False)

    def require_writable(self) -> None:
        """PermissionDenied unless this root may be written."""
        if not self.root.writable:
            raise PermissionDenied(f"'{self.root.label}' is read-only.")

    def record(self, action: str, target: str, detail: str = "") -> None:
        """An audit entry for ``target`` (a path in this root), acting for this space's user."""
        if self._audit is not None:
            self._audit.record(self._actor, action, f"{self.root.id}:{target}", detail)

    # Reading -----------------------------------------------------------------------------

    def entry(self, path: str) -> Entry:
        real = self.resolve(path)
        st = real.stat()
        is_dir = stat.S_ISDIR(st.st_mode)
        return Entry(
            real.name,
            self.relative(real),
            is_dir,
            0 if is_dir else st.st_size,
            datetime.fromtimestamp(st.st_mtime, UTC),
            kind_of(real.name, is_dir),
        )

    def listing(
        self,
        folder: str = "",
        *,
        sort: SortKey = "name",
        descending: bool = False,
        page: int = 1,
        page_size: int = 100,
        extensions: tuple[str, ...] = (),
    ) -> Listing:
        """One page of a folder, folders first. Sorting by name stats only the page's entries,
        so the first page of a huge folder is quick."""
        real = self.resolve(folder)
        if not real.is_dir():
            raise InvalidInput(f"'{folder}' is a file, not a folder.")
        rel_folder = self.relative(real)
        if sort in ("size", "modified"):
            return self._listing_by_stat(
                real, rel_folder, sort == "size", descending, page, page_size, extensions
            )
        with os.scandir(real) as it:
            items = [(e.name, e.is_dir()) for e in it]
        if extensions:
            wanted = tuple(x.lower() for x in extensions)
            items = [(n, d) for n, d in items if d or n.lower().endswith(wanted)]
        total = len(items)
        pages = max(1, -(-total // page_size))
        page = min(max(1, page), pages)

        def stat_of(name: str) -> os.stat_result | None:
            try:
                return os.stat(real / name, follow_symlinks=False)
            except OSError:
                return None

        start, end = (page - 1) * page_size, page * page_size
        if sort == "name":
            chosen = _window_by_name(items, start, end, descending)
        else:  # type
            items.sort(
                key=lambda i: (not i[1], kind_of(i[0], i[1]), i[0].lower()), reverse=descending
            )
            items.sort(key=lambda i: not i[1])  # folders first, stable
            chosen = items[start:end]
        stats = {name: stat_of(name) for name, _ in chosen}
        chosen_stats = [(name, is_dir, stats.get(name)) for name, is_dir in chosen]
        return _listing(rel_folder, chosen_stats, total, page, pages)

    @staticmethod
    def _listing_by_stat(
        real: Path,
        rel_folder: str,
        by_size: bool,
        descending: bool,
        page: int,
        page_size: int,
        extensions: tuple[str, ...],
    ) -> Listing:
        """A page ordered by size or modified time: every entry is stat'ed, in the scan itself
        and relative to the open folder (no path to resolve per entry), and only the page's
        window is selected (heapq) for the first pages instead of sorting every entry."""
        wanted = tuple(x.lower() for x in extensions)
        sign = -1 if descending else 1
        keyed: list[tuple[bool, float, str, bool, os.stat_result | None]] = []
        add = keyed.append
        fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            with os.scandir(fd) as it:
                for e in it:
                    is_dir = e.is_dir()
                    if wanted and not is_dir and not e.name.lower().endswith(wanted):
                        continue
                    try:
                        st = e.stat(follow_symlinks=False)
                        value = st.st_size if by_size else st.st_mtime
                    except OSError:  # gone since the scan
                        st, value = None, 0.0
                    add((not is_dir, sign * value, e.name, is_dir, st))
        finally:
            os.close(fd)
        total = len(keyed)
        pages = max(1, -(-total // page_size))
        page = min(max(1, page), pages)
        start, end = (page - 1) * page_size, page * page_size
        if end <= total // 4:
            window = heapq.nsmallest(end, keyed)[start:]
        else:
            keyed.sort()
            window = keyed[start:end]
        return _listing(rel_folder, [(n, d, st) for _, _, n, d, st in window], total, page, pages)

    def folders(self, folder: str = "") -> list[str]:
        """Sub-folder names of a folder (for the lazily expanded tree)."""
        real = self.resolve(folder)
        with os.scandir(real) as it:
            return sorted((e.name for e in it if e.is_dir()), key=str.lower)

    def count_files(self, path: str) -> int:
        real = self.resolve(path)
        if not real.is_dir():
            return 1
        return sum(len(files) for _, _, files in os.walk(real))

    def open_read(self, path: str) -> IO[bytes]:
        real = self.resolve(path)
        if real.is_dir():
            raise InvalidInput(f"'{path}' is a folder.")
        with self._parent(real) as (folder, name):
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise InvalidInput(f"'{path}' leads outside your folder (a link).") from None
                raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InvalidInput(f"'{path}' is not a file.")
        return os.fdopen(fd, "rb")

    def read_head(self, path: str, limit: int = 65_536) -> bytes:
        with self.open_read(path) as f:
            return f.read(limit)

    # Writing -----------------------------------------------------------------------------

    def mkdir(self, folder: str, name: str) -> str:
        self.require_writable()
        parent = self.resolve(folder)
        target = parent / check_name(name)
        if target.exists():
            raise Conflict(f"'{target.name}' already exists here.")
        with self._parent(target) as (dir_fd, leaf):
            os.mkdir(leaf, 0o755, dir_fd=dir_fd)
            self._give(leaf, dir_fd)
        rel = self.relative(target)
        self.record("file.mkdir", rel)
        return rel

    def rename(self, path: str, new_name: str) -> str:
        self.require_writable()
        real = self.resolve(path)
        if real == self._base:
            raise InvalidInput("The root folder cannot be renamed.")
        target = real.parent / check_name(new_name)
        if target.exists():
            raise Conflict(f"'{target.name}' already exists here.")
        with self._parent(real) as (dir_fd, leaf):
            os.rename(leaf, target.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        rel = self.relative(target)
        self.record("file.rename", self.relative(real), f"to={rel}")
        return rel

    def move(self, path: str, to_folder: str) -> str:
        self.require_writable()
        real = self.resolve(path)
        destination = self.resolve(to_folder)
        if real == self._base:
            raise InvalidInput("The root folder cannot be moved.")
        if not destination.is_dir():
            raise InvalidInput(f"'{to_folder}' is not a folder.")
        if destination == real or real in destination.parents:
            raise InvalidInput("A folder cannot be moved into itself.")
        target = destination / real.name
        if target.exists():
            raise Conflict(f"'{real.name}' already exists in '{to_folder or '/'}'.")
        with self._parent(real) as (source, leaf), self._parent(target) as (into, _):
            os.rename(leaf, leaf, src_dir_fd=source, dst_dir_fd=into)  # one root, one disk
        rel = self.relative(target)
        self.record("file.move", self.relative(real), f"to={rel}")
        return rel

    def delete(self, path: str) -> int:
        """Delete a file, or a folder and everything in it; returns the number of files gone."""
        self.require_writable()
        real = self.resolve(path)
        if real == self._base:
            raise InvalidInput("The root folder cannot be deleted.")
        rel = self.relative(real)
        with self._parent(real) as (dir_fd, leaf):
            if stat.S_ISDIR(os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                count = self.count_files(rel)
                shutil.rmtree(leaf, dir_fd=dir_fd)  # never through a link inside, either
            else:
                count = 1
                os.unlink(leaf, dir_fd=dir_fd)
        self.record("file.delete", rel, f"files={count}")
        return count

    def write(
        self,
        folder: str,
        name: str,
        chunks: Iterable[bytes],
        *,
        max_bytes: int,
        overwrite: bool = False,
    ) -> str:
        """Write an uploaded file (to a temporary name, renamed when complete)."""
        self.require_writable()
        parent = self.resolve(folder)
        if not parent.is_dir():
            raise InvalidInput(f"'{folder}' is not a folder.")
        target = parent / check_name(name)
        if target.exists() and not overwrite:
            raise Conflict(f"'{target.name}' already exists here.")
        tmp = f".{target.name}.uploading"
        written = 0
        with self._parent(target) as (dir_fd, leaf):  # never through a link a job put there
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dir_fd)  # a leftover, or a link: removed, not followed
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                with os.fdopen(os.open(tmp, flags, 0o644, dir_fd=dir_fd), "wb") as f:
                    for chunk in chunks:
                        written += len(chunk)
                        if written > max_bytes:
                            limit = max_bytes // 1_000_000
                            raise InvalidInput(
                                f"'{target.name}' is larger than the {limit} MB limit."
                            )
                        f.write(chunk)
                self._give(tmp, dir_fd)
                os.replace(tmp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=dir_fd)
        rel = self.relative(target)
        self.record("file.upload", rel, f"bytes={written}")
        return rel

    def write_path(
        self,
        folder: str,
        relative_name: str,
        data: bytes,
        *,
        max_bytes: int,
        overwrite: bool = False,
    ) -> str:
        """Write a file given with sub-folders ('a/b/c.csv', from a folder upload)."""
        rel = clean_relative(relative_name)
        if not rel:
            raise InvalidInput("An uploaded file needs a name.")
        *dirs, name = rel.split("/")
        current = clean_relative(folder)
        for d in dirs:
            real = self.resolve(current) / check_name(d)
            if not real.exists():
                self.mkdir(current, d)
            current = self.relative(self.resolve(self.relative(real)))
        return self.write(current, name, [data], max_bytes=max_bytes, overwrite=overwrite)


def _listing(
    rel_folder: str,
    chosen: list[tuple[str, bool, os.stat_result | None]],
    total: int,
    page: int,
    pages: int,
) -> Listing:
    entries = []
    for name, is_dir, s in chosen:
        size = 0 if is_dir or s is None else s.st_size
        mtime = datetime.fromtimestamp(s.st_mtime if s else 0, UTC)
        path = f"{rel_folder}/{name}" if rel_folder not in ("", ".") else name
        entries.append(Entry(name, path, is_dir, size, mtime, kind_of(name, is_dir)))
    return Listing("" if rel_folder == "." else rel_folder, entries, total, page, pages)


def _window_by_name(
    items: list[tuple[str, bool]], start: int, end: int, descending: bool
) -> list[tuple[str, bool]]:
    """Entries ``start:end`` of a listing ordered folders first, then by name (any case).

    Only the requested window is ordered: for the first pages of a huge folder a partial
    selection (heapq) replaces a full sort of every name.
    """
    folders = sorted((n for n, d in items if d), key=str.lower, reverse=descending)
    files = [n for n, d in items if not d]
    ordered: list[tuple[str, bool]] = [(n, True) for n in folders[start:end]]
    need = end - len(folders)
    if need > 0 and files:
        if need * 4 < len(files):
            pick = heapq.nlargest if descending else heapq.nsmallest
            top = pick(need, files, key=str.lower)
        else:
            top = sorted(files, key=str.lower, reverse=descending)
        ordered += [(n, False) for n in top[max(0, start - len(folders)) : need]]
    return ordered
