"""Image sets: mask overlays for the gallery and class counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from crispml.core.data.loaders import ImageItem

# Distinct colours for classes 1, 2, 3, ... (0 is the background, left as it is).
PALETTE = np.array(
    [[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180],
     [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 190]],
    dtype=np.float32,
)  # fmt: skip


def overlay(image: Path, mask: Path | None, alpha: float = 0.5) -> Image.Image:
    """The image with each class of its mask tinted in the class's colour."""
    picture = Image.open(image).convert("RGB")
    if mask is None:
        return picture
    layer = Image.open(mask).convert("L").resize(picture.size, Image.Resampling.NEAREST)
    classes = np.asarray(layer)
    pixels = np.asarray(picture, dtype=np.float32)
    tint = PALETTE[classes % len(PALETTE)]
    where = (classes > 0)[..., None]
    blended = np.where(where, (1 - alpha) * pixels + alpha * tint, pixels)
    return Image.fromarray(blended.astype(np.uint8), "RGB")


def class_counts(
    items: list[ImageItem], annotations: dict[str, Any], names: list[str], limit: int = 500
) -> dict[str, dict[str, int]]:
    """Per class: objects (from COCO annotations, when there are any), images it appears in
    and pixels (from the masks of the first ``limit`` images)."""
    label = {i: (names[i] if i < len(names) else f"class {i}") for i in range(256)}
    counts: dict[str, dict[str, int]] = {}
    for annotation in annotations.get("annotations", []):
        entry = counts.setdefault(label[int(annotation["category_id"])], {})
        entry["objects"] = entry.get("objects", 0) + 1
    for item in items[:limit]:
        if item.mask is None:
            continue
        layer = np.asarray(Image.open(item.mask).convert("L"))
        values, pixels = np.unique(layer, return_counts=True)
        for value, count in zip(values.tolist(), pixels.tolist(), strict=True):
            entry = counts.setdefault(label[value], {})
            entry["pixels"] = entry.get("pixels", 0) + int(count)
            entry["images"] = entry.get("images", 0) + 1
    return counts
