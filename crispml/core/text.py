"""Small formatting helpers shared by the pages and the CLI."""

from __future__ import annotations


def human_size(size: int | None) -> str:
    """1234567 -> '1.2 MB'; None -> ''."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover - the loop returns at GB
