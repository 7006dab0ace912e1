"""Reading what users bring: tables (CSV, Parquet, Excel, JSON lines) and image folders."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from crispml.core.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

TABLE_FORMATS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "excel",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def table_format(path: Path) -> str:
    fmt = TABLE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(TABLE_FORMATS))
        raise InvalidInput(f"{path.name}: not a table crispml reads ({known}).")
    return fmt


@dataclass(frozen=True)
class TableLimits:
    """What a table brought in may hold, checked before it is read: a Parquet file's row groups
    and an Excel file's zip entries can unpack to far more than the upload's size."""

    max_rows: int = 20_000_000
    max_columns: int = 10_000
    max_mb: int = 2_000  # the data once unpacked (Parquet, Excel) or the file (CSV, JSON lines)


def check_table(path: Path, fmt: str, limits: TableLimits) -> None:
    """Refuse, before reading, a table over ``limits`` (from its metadata, never its data)."""
    most = limits.max_mb * 1_000_000
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            meta = pq.ParquetFile(path).metadata
        except Exception as exc:
            raise InvalidInput(f"{path.name} could not be read as parquet: {exc}") from exc
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        rows, columns = meta.num_rows, meta.num_columns
    elif fmt == "excel":
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                size = sum(info.file_size for info in archive.infolist())
        except (zipfile.BadZipFile, OSError) as exc:
            raise InvalidInput(f"{path.name} could not be read as excel: {exc}") from exc
        rows = columns = 0  # known only once read: bounded by the unpacked size
    else:
        size, rows, columns = path.stat().st_size, 0, 0
        with path.open("rb") as f:  # the header line (or first record) for the columns
            head = f.readline(4_000_000)
        columns = head.count(b",") + 1 if fmt == "csv" else head.count(b'":')
    if size > most:
        raise InvalidInput(
            f"{path.name} unpacks to {size / 1e6:,.0f} MB, more than the {limits.max_mb:,} MB "
            "a table may hold."
        )
    if rows > limits.max_rows:
        raise InvalidInput(f"{path.name} has {rows:,} rows, more than {limits.max_rows:,}.")
    if columns > limits.max_columns:
        raise InvalidInput(
            f"{path.name} has {columns:,} columns, more than {limits.max_columns:,}."
        )


def read_table(path: Path, limits: TableLimits | None = None) -> pd.DataFrame:
    """The table in ``path``; a clear error when it cannot be read, is empty or is over
    ``limits`` (checked before it is read)."""
    import pandas as pd

    fmt = table_format(path)
    limits = limits or TableLimits()
    check_table(path, fmt, limits)
    try:
        if fmt == "csv":
            frame = pd.read_csv(path, engine="pyarrow")
        elif fmt == "parquet":
            frame = pd.read_parquet(path)
        elif fmt == "excel":
            frame = pd.read_excel(path, engine="openpyxl")
        else:
            frame = pd.read_json(path, lines=True)
    except Exception as exc:  # every reader has its own errors; all mean "cannot read"
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"{path.name} could not be read as {fmt}: {detail}") from exc
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise InvalidInput(f"{path.name} holds no rows or no columns.")
    if frame.shape[0] > limits.max_rows or frame.shape[1] > limits.max_columns:
        raise InvalidInput(
            f"{path.name} has {frame.shape[0]:,} rows and {frame.shape[1]:,} columns: at most "
            f"{limits.max_rows:,} rows and {limits.max_columns:,} columns."
        )
    for column in frame.columns:  # nested JSON (lists, objects) is kept as its JSON text
        if frame[column].dtype == object and frame[column].map(type).isin([list, dict]).any():
            frame[column] = frame[column].map(
                lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v
            )
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        raise InvalidInput(f"{path.name} has two columns with the same name.")
    frame.columns = names
    return frame


@dataclass(frozen=True)
class ImageItem:
    image: Path
    mask: Path | None


def scan_images(folder: Path) -> list[ImageItem]:
    """Images in ``folder`` (or its ``images/``), each with the mask of the same name in
    ``masks/`` when there is one."""
    images_dir = folder / "images" if (folder / "images").is_dir() else folder
    masks_dir = folder / "masks"
    masks = (
        {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        if masks_dir.is_dir()
        else {}
    )
    items = [
        ImageItem(p, masks.get(p.stem))
        for p in sorted(images_dir.iterdir())
        if p.is_file() and not p.is_symlink() and p.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not items:
        raise InvalidInput(f"{folder.name} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    return items


def check_images(items: list[ImageItem]) -> None:
    """Every image and mask opens as an image; a clear error naming the first that does not."""
    from PIL import Image, UnidentifiedImageError

    for item in items:
        for path in (item.image, item.mask):
            if path is None:
                continue
            try:
                with Image.open(path) as picture:
                    picture.verify()
            except (UnidentifiedImageError, OSError, SyntaxError) as exc:
                raise InvalidInput(f"{path.name} is not an image crispml can read: {exc}") from exc
