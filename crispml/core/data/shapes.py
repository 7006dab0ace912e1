"""The "shapes" sample: a generated image-segmentation set, nothing downloaded.

Each image holds one to three circles, squares and triangles of random size, colour and position
on a noisy background. Shapes never overlap, so each one's pixels are exactly its geometric
figure. Written per image: ``images/NNNN.png`` (RGB), ``masks/NNNN.png`` (one byte per pixel: 0
background, 1 circle, 2 square, 3 triangle), and for the set ``annotations.json`` in COCO's
layout (images, categories, annotations with bbox ``[x, y, width, height]``, area and an
uncompressed RLE segmentation), each annotation also carrying its figure (centre, half-size,
colour) so the masks can be checked against the geometry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

CLASSES = ("background", "circle", "square", "triangle")


def figure_mask(shape: str, center: tuple[int, int], half: int, size: int) -> NDArray[np.bool_]:
    """The pixels of one figure on a ``size`` x ``size`` grid (pixel centres)."""
    ys, xs = np.mgrid[0:size, 0:size]
    cx, cy = center
    if shape == "circle":
        return np.asarray((xs - cx) ** 2 + (ys - cy) ** 2 <= half**2)
    if shape == "square":
        return np.asarray((np.abs(xs - cx) <= half) & (np.abs(ys - cy) <= half))
    if shape == "triangle":  # apex up: (cx, cy - half), base from (cx - half) to (cx + half)
        inside_base = ys <= cy + half
        # the two sides: |x - cx| <= (y - (cy - half)) / 2
        inside_sides = 2 * np.abs(xs - cx) <= ys - (cy - half)
        return np.asarray(inside_base & inside_sides)
    raise ValueError(f"unknown shape {shape!r}")


def rle(mask: NDArray[np.bool_]) -> dict[str, Any]:
    """COCO's uncompressed RLE: run lengths in column-major order, starting with zeros."""
    flat = mask.flatten(order="F")
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": runs}


def rle_decode(segmentation: dict[str, Any]) -> NDArray[np.bool_]:
    height, width = segmentation["size"]
    flat = np.zeros(height * width, dtype=bool)
    position, value = 0, False
    for count in segmentation["counts"]:
        flat[position : position + count] = value
        position += count
        value = not value
    return flat.reshape((height, width), order="F")


def _place(
    rng: np.random.Generator, size: int, taken: list[tuple[int, int, int, int]]
) -> tuple[tuple[int, int], int] | None:
    for _ in range(50):
        half = int(rng.integers(max(3, size // 12), max(4, size // 5) + 1))
        cx = int(rng.integers(half, size - half))
        cy = int(rng.integers(half, size - half))
        box = (cx - half - 1, cy - half - 1, cx + half + 1, cy + half + 1)
        if all(box[2] < t[0] or t[2] < box[0] or box[3] < t[1] or t[3] < box[1] for t in taken):
            taken.append(box)
            return (cx, cy), half
    return None


def generate(folder: Path, count: int, size: int, seed: int) -> dict[str, Any]:
    """Write ``count`` images of ``size`` x ``size`` pixels into ``folder``; returns the COCO
    annotations (also written to ``annotations.json``)."""
    if not 1 <= count <= 10_000:
        raise ValueError("count must be between 1 and 10000")
    if not 32 <= size <= 1024:
        raise ValueError("size must be between 32 and 1024 pixels")
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    coco: dict[str, Any] = {
        "info": {"description": "crispml shapes sample", "seed": seed, "size": size},
        "images": [],
        "annotations": [],
        "categories": [{"id": i, "name": n} for i, n in enumerate(CLASSES) if i],
    }
    for index in range(count):
        base = rng.integers(30, 226, size=3)
        noise = rng.normal(0, 12, size=(size, size, 3))
        image = np.clip(base + noise, 0, 255).astype(np.uint8)
        classes = np.zeros((size, size), dtype=np.uint8)
        taken: list[tuple[int, int, int, int]] = []
        name = f"{index:04d}.png"
        for _ in range(int(rng.integers(1, 4))):
            placed = _place(rng, size, taken)
            if placed is None:
                continue
            center, half = placed
            category = int(rng.integers(1, len(CLASSES)))
            shape = CLASSES[category]
            colour = rng.integers(0, 256, size=3).astype(np.uint8)
            pixels = figure_mask(shape, center, half, size)
            image[pixels] = colour
            classes[pixels] = category
            ys, xs = np.nonzero(pixels)
            x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": index,
                    "category_id": category,
                    "bbox": [x0, y0, x1 - x0 + 1, y1 - y0 + 1],
                    "area": int(pixels.sum()),
                    "segmentation": rle(pixels),
                    "iscrowd": 0,
                    "figure": {
                        "shape": shape,
                        "center": list(center),
                        "half": half,
                        "color": colour.tolist(),
                    },
                }
            )
        Image.fromarray(image, "RGB").save(folder / "images" / name)
        Image.fromarray(classes, "L").save(folder / "masks" / name)
        coco["images"].append({"id": index, "file_name": name, "width": size, "height": size})
    (folder / "annotations.json").write_text(json.dumps(coco))
    return coco
