"""PyTorch algorithms, trained on the CPU from scratch (no downloaded weights): an MLP for
tables and a small U-Net for image segmentation. Models are saved as state dicts (tensors only)
beside ``model.json``; loading uses ``torch.load(weights_only=True)``, which runs no code."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Tuple

import crispml_metrics

# --- tables: the MLP ---------------------------------------------------------------------------


def _mlp(inputs: int, hidden: int, layers: int, outputs: int) -> Any:
    from torch import nn

    blocks: List[Any] = []
    width = inputs
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    blocks.append(nn.Linear(width, outputs))
    return nn.Sequential(*blocks)


def _tensor(frame: Any) -> Any:
    import torch

    text = [str(c) for c, t in frame.dtypes.items() if t.kind not in "biuf"]
    if text:
        raise ValueError(
            "these columns are not numbers: " + ", ".join(text) + ". Encode them (one-hot or "
            "ordinal) in Data preparation."
        )
    return torch.tensor(frame.to_numpy(dtype="float32"))


def _train_mlp(ctx: Any) -> None:
    import torch
    from torch import nn

    p = ctx.params
    features, truth = ctx.table("train")
    x = _tensor(features)
    classification = ctx.task == "classification"
    classes = ctx.classes or sorted(truth.astype(str).unique().tolist())
    if classification:
        index = {c: i for i, c in enumerate(classes)}
        y = torch.tensor([index[str(v)] for v in truth], dtype=torch.long)
        y_mean, y_std = 0.0, 1.0
    else:
        values = truth.to_numpy(dtype="float32")
        y_mean, y_std = float(values.mean()), float(values.std()) or 1.0
        y = torch.tensor((values - y_mean) / y_std).unsqueeze(1)
    model = _mlp(
        x.shape[1], int(p["hidden"]), int(p["layers"]), len(classes) if classification else 1
    )
    optimiser = torch.optim.Adam(
        model.parameters(), lr=float(p["learning_rate"]), weight_decay=float(p["weight_decay"])
    )
    loss_fn = nn.CrossEntropyLoss() if classification else nn.MSELoss()
    validation = None
    if ctx.has_part("validation"):
        val_features, val_truth = ctx.table("validation")
        validation = (_tensor(val_features), val_truth)
    epochs, batch = int(p["epochs"]), int(p["batch_size"])
    ctx.total_steps(epochs)
    generator = torch.Generator().manual_seed(ctx.seed)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), batch):
            rows = order[start : start + batch]
            optimiser.zero_grad()
            loss = loss_fn(model(x[rows]), y[rows])
            loss.backward()
            optimiser.step()
            total += loss.item() * len(rows)
        values = {"train_loss": total / len(x)}
        if validation is not None:
            predicted, _ = _mlp_predict(
                model, validation[0], classes, classification, y_mean, y_std
            )
            if classification:
                values["validation_accuracy"] = float(
                    (predicted == validation[1].astype(str).to_numpy()).mean()
                )
            else:
                values["validation_rmse"] = float(
                    ((predicted - validation[1].to_numpy()) ** 2).mean() ** 0.5
                )
        ctx.log(step=epoch, **values)
    for part in ("validation", "test", "train"):
        if ctx.has_part(part):
            part_features, part_truth = ctx.table(part)
            predicted, scores = _mlp_predict(
                model, _tensor(part_features), classes, classification, y_mean, y_std
            )
            if classification:
                part_truth = part_truth.astype(str)
                scores = scores if len(classes) > 2 else scores[:, 1]
            ctx.evaluate(part, predicted, scores if classification else None, part_truth)
    meta = {
        "format": "torch-state-dict",
        "algorithm": ctx.spec["algorithm"],
        "architecture": {
            "inputs": int(x.shape[1]),
            "hidden": int(p["hidden"]),
            "layers": int(p["layers"]),
            "outputs": len(classes) if classification else 1,
        },
        "features": [str(c) for c in features.columns],
        "classes": classes if classification else [],
        "task": ctx.task,
        "target": ctx.target,
        "y_mean": y_mean,
        "y_std": y_std,
    }
    _save(model, ctx.artifact("model.pt"), meta)


def _mlp_predict(
    model: Any, x: Any, classes: List[str], classification: bool, mean: float, std: float
) -> Tuple[Any, Any]:
    import numpy as np
    import torch

    model.eval()
    with torch.no_grad():
        out = model(x)
    if classification:
        scores = torch.softmax(out, dim=1).numpy()
        return np.asarray(classes)[scores.argmax(axis=1)], scores
    return out.squeeze(1).numpy() * std + mean, None


# --- images: the U-Net -------------------------------------------------------------------------


def _unet(channels: int, classes: int) -> Any:
    import torch
    from torch import nn

    def block(a: int, b: int) -> Any:
        return nn.Sequential(
            nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
            nn.Conv2d(b, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(inplace=True),
        )  # fmt: skip

    class UNet(nn.Module):
        """Three levels down and up, with skip connections (enough context to tell shapes
        apart at 64 pixels)."""

        def __init__(self) -> None:
            super().__init__()
            c = channels
            self.enc1, self.enc2, self.enc3 = block(3, c), block(c, 2 * c), block(2 * c, 4 * c)
            self.mid = block(4 * c, 8 * c)
            self.up3, self.dec3 = nn.ConvTranspose2d(8 * c, 4 * c, 2, stride=2), block(8 * c, 4 * c)
            self.up2, self.dec2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2), block(4 * c, 2 * c)
            self.up1, self.dec1 = nn.ConvTranspose2d(2 * c, c, 2, stride=2), block(2 * c, c)
            self.head = nn.Conv2d(c, classes, 1)
            self.pool = nn.MaxPool2d(2)

        def forward(self, x: Any) -> Any:
            e1 = self.enc1(x)
            e2 = self.enc2(self.pool(e1))
            e3 = self.enc3(self.pool(e2))
            m = self.mid(self.pool(e3))
            d3 = self.dec3(torch.cat([self.up3(m), e3], dim=1))
            d2 = self.dec2(torch.cat([self.up2(d3), e2], dim=1))
            d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
            return self.head(d1)

    return UNet()


def _load_images(pairs: List[Tuple[str, str]], size: int) -> Tuple[Any, Any]:
    import numpy as np
    import torch
    from PIL import Image

    images, masks = [], []
    for image_path, mask_path in pairs:
        image = (
            Image.open(image_path).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        )
        mask = Image.open(mask_path).convert("L").resize((size, size), Image.Resampling.NEAREST)
        images.append(np.asarray(image, dtype="float32") / 255.0)
        masks.append(np.asarray(mask, dtype="int64"))
    x = torch.tensor(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(np.stack(masks))


def _augment(x: Any, y: Any, choices: List[str], generator: Any) -> Tuple[Any, Any]:
    import torch

    if "horizontal flip" in choices and torch.rand(1, generator=generator) < 0.5:
        x, y = x.flip(-1), y.flip(-1)
    if "vertical flip" in choices and torch.rand(1, generator=generator) < 0.5:
        x, y = x.flip(-2), y.flip(-2)
    if "rotate 90" in choices:
        turns = int(torch.randint(0, 4, (1,), generator=generator))
        x, y = torch.rot90(x, turns, (-2, -1)), torch.rot90(y, turns, (-2, -1))
    if "brightness" in choices:
        x = (x * (0.8 + 0.4 * torch.rand(1, generator=generator))).clamp(0, 1)
    return x, y


def _train_unet(ctx: Any) -> None:
    import torch
    from torch import nn

    p = ctx.params
    size = ctx.image_size or 64
    if size % 8:
        raise ValueError(f"the U-Net needs an image size divisible by 8, not {size}")
    classes = ctx.classes or ["background", "foreground"]
    x, y = _load_images(ctx.images("train"), size)
    if int(y.max()) >= len(classes):
        raise ValueError(
            f"a mask holds class {int(y.max())}, but only {len(classes)} classes are known"
        )
    val = _load_images(ctx.images("validation"), size) if ctx.has_part("validation") else None
    model = _unet(int(p["base_channels"]), len(classes))
    optimiser = torch.optim.Adam(model.parameters(), lr=float(p["learning_rate"]))
    # Shapes cover a small share of the pixels: weigh each class by the inverse of its share
    # (square root, capped) so the background does not win by default.
    counts = torch.bincount(y.flatten(), minlength=len(classes)).float().clamp(min=1)
    weights = (counts.sum() / counts).sqrt().clamp(max=20.0)
    loss_fn = nn.CrossEntropyLoss(weight=weights / weights.mean())
    epochs, batch = int(p["epochs"]), int(p["batch_size"])
    generator = torch.Generator().manual_seed(ctx.seed)
    ctx.total_steps(epochs)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), batch):
            rows = order[start : start + batch]
            xb, yb = _augment(x[rows], y[rows], ctx.augment, generator)
            optimiser.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimiser.step()
            total += loss.item() * len(rows)
        values = {"train_loss": total / len(x)}
        if val is not None:
            predicted = _segment(model, val[0])
            values["validation_mean_iou"] = crispml_metrics.segmentation(
                val[1].numpy(), predicted, classes
            )["mean_iou"]
        ctx.log(step=epoch, **values)
    for part in ("validation", "test"):
        if ctx.has_part(part):
            px, py = _load_images(ctx.images(part), size)
            predicted = _segment(model, px)
            ctx.record(part, crispml_metrics.segmentation(py.numpy(), predicted, classes))
            if part == "validation":
                _save_examples(ctx, px, py.numpy(), predicted)
    meta = {
        "format": "torch-state-dict",
        "algorithm": ctx.spec["algorithm"],
        "architecture": {"base_channels": int(p["base_channels"]), "classes": len(classes)},
        "classes": classes,
        "image_size": size,
        "task": "segmentation",
        "target": "mask",
    }
    _save(model, ctx.artifact("model.pt"), meta)


def _segment(model: Any, x: Any) -> Any:
    import torch

    model.eval()
    with torch.no_grad():
        return torch.cat([model(x[i : i + 16]).argmax(dim=1) for i in range(0, len(x), 16)]).numpy()


PALETTE = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180)]


def _overlay(image: Any, mask: Any) -> Any:
    import numpy as np

    colours = np.asarray([PALETTE[i % len(PALETTE)] for i in range(256)], dtype="float32")
    tinted = np.where((mask > 0)[..., None], 0.5 * image + 0.5 * colours[mask], image)
    return tinted.astype("uint8")


def _save_examples(ctx: Any, x: Any, truth: Any, predicted: Any, count: int = 6) -> None:
    """Input, ground truth and prediction side by side, for the run's page."""
    import numpy as np
    from PIL import Image

    for i in range(min(count, len(x))):
        image = (x[i].permute(1, 2, 0).numpy() * 255).astype("float32")
        row = np.concatenate(
            [image.astype("uint8"), _overlay(image, truth[i]), _overlay(image, predicted[i])],
            axis=1,
        )
        Image.fromarray(row, "RGB").save(ctx.artifact(f"example-{i}.png"))


# --- saving, loading, predicting ----------------------------------------------------------------


def _save(model: Any, path: Path, meta: Dict[str, Any]) -> None:
    import torch

    torch.save(model.state_dict(), path)
    (path.parent / "model.json").write_text(json.dumps(meta))


def load(folder: Any) -> Dict[str, Any]:
    import torch

    folder = Path(folder)
    meta = json.loads((folder / "model.json").read_text())
    arch = meta["architecture"]
    if meta["task"] == "segmentation":
        model = _unet(arch["base_channels"], arch["classes"])
    else:
        model = _mlp(arch["inputs"], arch["hidden"], arch["layers"], arch["outputs"])
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    model.eval()
    return {"model": model, "meta": meta}


def components(mask: Any) -> List[Tuple[int, Any]]:
    """Connected regions (4-neighbour) of each class > 0: (class, boolean mask) pairs, in the
    order of their first pixel (row by row). SciPy's labelling when the environment has SciPy,
    else a flood fill in Python (the same regions, far slower)."""
    import numpy as np

    try:
        from scipy import ndimage
    except ImportError:
        return components_python(mask)
    found = []
    for label in np.unique(mask):
        if label == 0:
            continue
        labelled, count = ndimage.label(mask == label)  # 4-neighbour: the default structure
        for number in range(1, count + 1):
            region = labelled == number
            found.append((int(region.argmax()), int(label), region))
    found.sort(key=lambda item: item[0])
    return [(label, region) for _, label, region in found]


def components_python(mask: Any) -> List[Tuple[int, Any]]:
    """:func:`components` without SciPy."""
    import numpy as np

    found = []
    seen = np.zeros(mask.shape, dtype=bool)
    height, width = mask.shape
    for start_y, start_x in zip(*np.nonzero(mask)):
        if seen[start_y, start_x]:
            continue
        label = int(mask[start_y, start_x])
        region = np.zeros(mask.shape, dtype=bool)
        stack = [(int(start_y), int(start_x))]
        seen[start_y, start_x] = True
        while stack:
            cy, cx = stack.pop()
            region[cy, cx] = True
            for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                if (
                    0 <= ny < height
                    and 0 <= nx < width
                    and not seen[ny, nx]
                    and mask[ny, nx] == label
                ):
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        found.append((label, region))
    return found


def predict(
    loaded: Dict[str, Any], inputs: List[Any], overlay: bool = False
) -> List[Dict[str, Any]]:
    """Segmentation: per image (a PIL image or an array), the classes found, their scores and
    boxes ``[y_min, x_min, y_max, x_max]`` (in the image's own pixels, one per connected region),
    the class mask, and with ``overlay`` the image with the mask drawn on it. Tables: one label
    (or number) per row of features."""
    import numpy as np
    import torch
    from PIL import Image

    model, meta = loaded["model"], loaded["meta"]
    if meta["task"] != "segmentation":
        x = torch.tensor(np.asarray(inputs, dtype="float32"))
        predicted, _ = _mlp_predict(
            model,
            x,
            meta["classes"],
            meta["task"] == "classification",
            meta["y_mean"],
            meta["y_std"],
        )
        return [{"prediction": v.item() if hasattr(v, "item") else v} for v in predicted]
    size, names = meta["image_size"], meta["classes"]
    if not inputs:
        return []
    pictures = [
        (
            item
            if isinstance(item, Image.Image)
            else Image.fromarray(np.asarray(item, dtype="uint8"))
        ).convert("RGB")
        for item in inputs
    ]
    # One forward pass for all the images (concurrent requests batched by the server share it).
    x = torch.tensor(
        np.stack(
            [
                np.asarray(p.resize((size, size), Image.Resampling.BILINEAR), dtype="float32")
                for p in pictures
            ]
        )
        / 255.0
    ).permute(0, 3, 1, 2)
    with torch.no_grad():
        batch = torch.softmax(model(x), dim=1).numpy()
    # The rest in NumPy, the argmax once for the batch: per image, small torch operations
    # cost more in dispatch than in work (a profile of the model API under load).
    labels = batch.argmax(axis=1).astype("uint8")
    results = []
    for index, picture in enumerate(pictures):
        width, height = picture.size
        probabilities, small = batch[index], labels[index]
        mask = (
            small
            if (width, height) == (size, size)
            else np.asarray(
                Image.fromarray(small, "L").resize((width, height), Image.Resampling.NEAREST)
            )
        )
        scale_y, scale_x = size / height, size / width
        found: Dict[str, Any] = {"classes": [], "scores": [], "boxes": [], "mask": mask}
        for label, region in components(mask):
            ys, xs = np.nonzero(region)
            small_region = np.zeros((size, size), dtype=bool)
            small_region[
                np.clip((ys * scale_y).astype(int), 0, size - 1),
                np.clip((xs * scale_x).astype(int), 0, size - 1),
            ] = True
            score = float(probabilities[label][small_region].mean())
            found["classes"].append(names[label] if label < len(names) else str(label))
            found["scores"].append(round(score if not math.isnan(score) else 0.0, 4))
            found["boxes"].append([int(ys.min()), int(xs.min()), int(ys.max()), int(xs.max())])
        if overlay:
            found["overlay"] = _overlay(np.asarray(picture, dtype="float32"), mask)
        results.append(found)
    return results


def train(ctx: Any) -> None:
    import torch

    torch.manual_seed(ctx.seed)
    # Jobs run side by side, as many as there are cores by default: one core each is the
    # fastest overall (two threads per job on two busy cores only contend).
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    if ctx.spec["algorithm"] == "unet_segmentation":
        _train_unet(ctx)
    else:
        _train_mlp(ctx)
