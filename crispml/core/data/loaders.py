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


def read_table(path: Path) -> pd.DataFrame:
    """The table in ``path``; a clear error when it cannot be read or is empty."""
    import pandas as pd

    fmt = table_format(path)
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
