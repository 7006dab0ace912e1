"""A model worker: ``python -m crispml_serve_worker <model folder>``, run by the model API in
the model's own environment when that is not the server's.

The channel is the worker's stdin and stdout, one JSON object per line (the worker's own prints
go to stderr, so nothing else reaches the channel):

    -> {"op": "rows", "columns": [...], "matrix": [[...], ...]}   <- {"ok": true, "result": [...]}
    -> {"op": "images", "images": ["<base64 PNG>", ...], "overlay": true}
    <- {"ok": true, "result": [{"classes", "scores", "boxes", "overlay": "<base64 PNG>"}, ...]}
    <- {"ok": false, "error": "..."}   (the model refused the input; the worker goes on)

The first line the worker writes is {"ok": true, "ready": "<kind>"} once the model is loaded.
Standard library only, besides what the model itself needs.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List


def _load(folder: Path) -> Any:
    if (folder / "model.skops").exists():
        from crispml_algos import sklearn_models

        return "sklearn", sklearn_models.load(folder)
    from crispml_algos import torch_models

    return "torch", torch_models.load(folder)


def _png(pixels: Any) -> str:
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype="uint8")).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _answer(kind: str, model: Any, message: Dict[str, Any]) -> Any:
    if message["op"] == "rows":
        if kind == "sklearn":
            import pandas as pd

            frame = pd.DataFrame(message["matrix"], columns=message["columns"] or None)
            return [v.item() if hasattr(v, "item") else v for v in model.predict(frame)]
        from crispml_algos import torch_models

        return [r["prediction"] for r in torch_models.predict(model, message["matrix"])]
    from crispml_algos import torch_models
    from PIL import Image

    pictures = [Image.open(io.BytesIO(base64.b64decode(t))) for t in message["images"]]
    found: List[Dict[str, Any]] = torch_models.predict(
        model, pictures, overlay=bool(message.get("overlay"))
    )
    for item in found:
        item.pop("mask", None)
        if "overlay" in item:
            item["overlay"] = _png(item["overlay"])
    return found


def main(argv: List[str]) -> int:
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # prints of the model's libraries go to stderr, not into the channel
    sys.stdout = sys.stderr
    kind, model = _load(Path(argv[0]))
    channel.write(json.dumps({"ok": True, "ready": kind}) + "\n")
    channel.flush()
    for line in sys.stdin:
        try:
            reply = {"ok": True, "result": _answer(kind, model, json.loads(line))}
        except (ValueError, TypeError, KeyError) as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        channel.write(json.dumps(reply) + "\n")
        channel.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
