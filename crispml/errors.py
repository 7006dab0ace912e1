"""Domain errors, for every layer (no dependencies). Each carries a message written for the
person who caused it."""

from __future__ import annotations


class CrispmlError(Exception):
    """Base class; ``str(error)`` is safe to show to the user."""


class InvalidInput(CrispmlError):
    """The request itself is wrong (bad name, weak password, value out of range)."""


class NotFound(CrispmlError):
    """The thing asked for does not exist (or is not visible to the asker)."""


class Conflict(CrispmlError):
    """The request clashes with existing state (name taken, last admin)."""


class PermissionDenied(CrispmlError):
    """The asker may not do this."""


class Unavailable(CrispmlError):
    """A part the server needs (the database, the disk) cannot be used now; nothing was changed
    by the request that met it. Answered as 503. ``detail`` (the driver's words) is for the
    server's log, never for the page."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail
