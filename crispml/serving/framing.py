"""What an image model sees of a picture and what the caller gets back: the article's
IMAGE_MIN_DIM, IMAGE_MAX_DIM and mode applied before the model and undone after it (Framing),
and the article's result for one image."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crispml.core.errors import InvalidInput
from crispml.serving.inputs import number
from crispml.serving.models import png_base64

if TYPE_CHECKING:
    from PIL import Image

ROIS = "rois [y_min, x_min, y_max, x_max]"
# A model's answer for one image: classes, scores, boxes and maybe the overlay (base64 PNG).
Found = dict[str, Any]
# The article's result for one image, and its overlay when asked for.
Result = tuple[dict[str, Any], str | None]


@dataclass(frozen=True)
class Framing:
    """The article's IMAGE_MIN_DIM, IMAGE_MAX_DIM and mode (from Mask R-CNN). An image whose
    long side exceeds MAX_DIM is scaled down before the model sees it; mode "square" pads it to
    a square (the model then sees it undistorted). Boxes and overlays are mapped back to the
    image as sent, as Mask R-CNN's are. So upscaling to MIN_DIM could not change a result (it is
    checked, not done), and other modes (the article's "2") change nothing."""

    picture: Image.Image
    size: tuple[int, int]  # the image as sent
    scale: float = 1.0
    pad: tuple[int, int] = (0, 0)  # x, y

    @classmethod
    def of(cls, picture: Image.Image, config: Mapping[str, object]) -> Framing:
        from PIL import Image

        low = number(config, "IMAGE_MIN_DIM", 0.0)
        high = number(config, "IMAGE_MAX_DIM", 0.0)
        if low < 0 or high < 0 or (high and low > high):
            raise InvalidInput(
                f"IMAGE_MIN_DIM ({low:g}) and IMAGE_MAX_DIM ({high:g}) must be positive, "
                "the minimum not above the maximum."
            )
        width, height = picture.size
        scale = min(1.0, high / max(width, height)) if high else 1.0
        shown = picture
        if scale != 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            shown = picture.resize(size, Image.Resampling.BILINEAR)
        pad = (0, 0)
        if str(config.get("mode") or "").strip().lower() == "square":
            side = max(shown.size)
            pad = ((side - shown.size[0]) // 2, (side - shown.size[1]) // 2)
            canvas = Image.new("RGB", (side, side))
            canvas.paste(shown, pad)
            shown = canvas
        return cls(shown, (width, height), scale, pad)

    def back(self, found: Found, create: bool) -> Found:
        """The model's answer mapped back to the image as sent (boxes, and the overlay when
        ``create``)."""
        if self.scale == 1.0 and self.pad == (0, 0):
            return found
        width, height = self.size
        boxes = []
        for y0, x0, y1, x1 in found["boxes"]:
            boxes.append([
                min(height - 1, max(0, int((y0 - self.pad[1]) / self.scale))),
                min(width - 1, max(0, int((x0 - self.pad[0]) / self.scale))),
                min(height - 1, max(0, int((y1 - self.pad[1]) / self.scale))),
                min(width - 1, max(0, int((x1 - self.pad[0]) / self.scale))),
            ])  # fmt: skip
        mapped = {**found, "boxes": boxes}
        if create and found.get("overlay"):
            from PIL import Image

            drawn = Image.open(io.BytesIO(base64.b64decode(found["overlay"])))
            inner = (round(width * self.scale), round(height * self.scale))
            cropped = drawn.crop((*self.pad, self.pad[0] + inner[0], self.pad[1] + inner[1]))
            mapped["overlay"] = png_base64(cropped.resize(self.size))
        return mapped


def shown_classes(config: Mapping[str, object]) -> set[str] | None:
    """The article's ``class_show``: the class names to keep (a list, or comma-separated); None
    keeps all."""
    shown = config.get("class_show")
    if shown in (None, "", "None", "none", []):
        return None
    names = shown if isinstance(shown, list) else str(shown).split(",")
    return {str(w).strip() for w in names}


def article_result(
    weight: str, found: Found, minimum: float, wanted: set[str] | None, create: bool
) -> Result:
    """The article's result for one image: the detections scoring at least ``minimum`` (of
    the ``wanted`` classes), the weight that found them, and the overlay when ``create``."""
    keep = [
        i
        for i, (name, score) in enumerate(zip(found["classes"], found["scores"], strict=True))
        if score >= minimum and (wanted is None or name in wanted)
    ]
    result = {
        "results": {
            "class_name": [found["classes"][i] for i in keep],
            "scores": [found["scores"][i] for i in keep],
            ROIS: [found["boxes"][i] for i in keep],
        },
        "weight": weight,
    }
    return result, found.get("overlay") if create else None
