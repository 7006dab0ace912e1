"""Which roots a user may read or write (``FileService.roots_for``: own root; other users' for
admins; shared roots by role), and a FileSpace on one of them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from crispml.core.audit import AuditLog
from crispml.core.auth import USERNAME_RE
from crispml.core.errors import NotFound, PermissionDenied
from crispml.core.files.space import FileSpace, Root
from crispml.core.files.zips import ZipLimits


def user_files(home: Path, username: str) -> Path:
    """A user's file-explorer root (also what their sandboxed jobs may write)."""
    path = home / "users" / username / "files"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class SharedRootConfig:
    name: str
    path: Path
    read_roles: tuple[str, ...]
    write_roles: tuple[str, ...]


class FileService:
    """Which roots a user may reach, and a FileSpace for one of them."""

    def __init__(
        self,
        home: Path,
        audit: AuditLog,
        shared: Iterable[SharedRootConfig] = (),
        zip_limits: ZipLimits | None = None,
        max_upload_bytes: int = 200_000_000,
    ) -> None:
        self._home = home
        self._users = home / "users"
        self._audit = audit
        self._shared = {s.name: s for s in shared}
        self.zip_limits = zip_limits or ZipLimits()
        self.max_upload_bytes = max_upload_bytes

    def user_root(self, username: str) -> Root:
        path = user_files(self._home, username)
        return Root(f"~{username}", f"{username}'s files", path, writable=True)

    def roots_for(self, username: str, role: str) -> list[Root]:
        """The user's own root first, then the shared roots their role may read."""
        roots = [self.user_root(username)]
        roots[0] = Root(roots[0].id, "My files", roots[0].path, True)
        for s in self._shared.values():
            if role in s.read_roles:
                roots.append(Root(s.name, s.name, s.path, role in s.write_roles))
        return roots

    def space(self, username: str, role: str, root_id: str) -> FileSpace:
        """A FileSpace on ``root_id`` acting for this user; refuses roots they may not reach.

        Another user's root is reachable by admins only; a shared root by its read roles.
        """
        if root_id.startswith("~"):
            owner = root_id[1:]
            if not USERNAME_RE.fullmatch(owner):  # also keeps '~../x' from leaving users/
                raise NotFound(f"No user folder '{root_id}'.")
            if owner != username and role != "admin":
                raise PermissionDenied("You can only open your own files.")
            if not (self._users / owner).is_dir() and owner != username:
                raise NotFound(f"No user folder '{root_id}'.")
            root = self.user_root(owner)
            if owner == username:
                root = Root(root.id, "My files", root.path, True)
            return FileSpace(root, self._audit, username)
        shared = self._shared.get(root_id)
        if shared is None or role not in shared.read_roles:
            raise NotFound(f"No folder '{root_id}'.")
        root = Root(shared.name, shared.name, shared.path, role in shared.write_roles)
        return FileSpace(root, self._audit, username)
