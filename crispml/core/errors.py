"""The domain errors, for core's modules (they live in ``crispml.errors``, a module of no
dependencies that every layer, the store included, may import)."""

from crispml.errors import (
    Conflict,
    CrispmlError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unavailable,
)

__all__ = [
    "Conflict",
    "CrispmlError",
    "InvalidInput",
    "NotFound",
    "PermissionDenied",
    "Unavailable",
]
