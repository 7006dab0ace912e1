"""Evaluation metrics with numpy only, so they run in any training environment.

Classification: accuracy, macro precision, recall and F1, ROC AUC (binary, or one-vs-rest macro
when class scores are given) and the confusion matrix. Regression: RMSE, MAE, R² and residuals
(a sample, for plots). Segmentation: IoU and Dice per class and their means.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence


def _labels(values: Any) -> Any:
    import numpy as np

    return np.asarray([str(v) for v in values])


def _auc(truth: Any, score: Any) -> Optional[float]:
    """Area under the ROC curve: how often a positive outranks a negative (ties count half)."""
    import numpy as np

    truth = np.asarray(truth, dtype=bool)
    positives, negatives = truth.sum(), (~truth).sum()
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=float)
    sorted_scores = np.asarray(score)[order]
    # average ranks of ties
    i = 0
    while i < len(sorted_scores):
        j = i
        while j + 1 < len(sorted_scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def classification(
    truth: Sequence[Any],
    predicted: Sequence[Any],
    scores: Any = None,
    classes: Optional[List[str]] = None,
) -> Dict[str, Any]:
    import numpy as np

    y, p = _labels(truth), _labels(predicted)
    names = list(classes) if classes else sorted(set(y.tolist()) | set(p.tolist()))
    index = {c: i for i, c in enumerate(names)}
    matrix = np.zeros((len(names), len(names)), dtype=int)
    for t, q in zip(y.tolist(), p.tolist()):
        if t in index and q in index:
            matrix[index[t], index[q]] += 1
    tp = np.diag(matrix).astype(float)
    predicted_count = matrix.sum(axis=0).astype(float)
    actual_count = matrix.sum(axis=1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, tp / predicted_count, 0.0)
        recall = np.where(actual_count > 0, tp / actual_count, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (actual_count > 0) | (predicted_count > 0)  # sklearn's macro: labels seen at all
    result: Dict[str, Any] = {
        "accuracy": float((y == p).mean()) if len(y) else 0.0,
        "precision": float(precision[present].mean()) if present.any() else 0.0,
        "recall": float(recall[present].mean()) if present.any() else 0.0,
        "f1": float(f1[present].mean()) if present.any() else 0.0,
        "confusion_matrix": {"labels": names, "matrix": matrix.tolist()},
    }
    if scores is not None:
        s = np.asarray(scores, dtype=float)
        if s.ndim == 1 and len(names) == 2:
            result["roc_auc"] = _auc(y == names[1], s)
        elif s.ndim == 2 and s.shape[1] == len(names):
            aucs = [_auc(y == c, s[:, i]) for i, c in enumerate(names)]
            known = [a for a in aucs if a is not None]
            if known:
                result["roc_auc"] = float(np.mean(known)) if len(names) > 2 else aucs[1]
    return result


def regression(truth: Sequence[Any], predicted: Sequence[Any]) -> Dict[str, Any]:
    import numpy as np

    y = np.asarray(truth, dtype=float)
    p = np.asarray(predicted, dtype=float)
    error = p - y
    total = float(((y - y.mean()) ** 2).sum())
    step = max(1, len(y) // 500)
    return {
        "rmse": float(np.sqrt((error**2).mean())),
        "mae": float(np.abs(error).mean()),
        "r2": float(1 - (error**2).sum() / total) if total > 0 else 0.0,
        "residuals": {"predicted": p[::step].tolist(), "residual": error[::step].tolist()},
    }


def segmentation(truth: Any, predicted: Any, classes: List[str]) -> Dict[str, Any]:
    """``truth`` and ``predicted``: integer class masks of the same shape (any number of images)."""
    import numpy as np

    t, p = np.asarray(truth), np.asarray(predicted)
    per_class: Dict[str, Dict[str, Optional[float]]] = {}
    ious, dices = [], []
    for index, name in enumerate(classes):
        if index == 0:
            continue  # the background is not a class anyone asks about
        a, b = t == index, p == index
        union = np.logical_or(a, b).sum()
        both = np.logical_and(a, b).sum()
        sizes = a.sum() + b.sum()
        iou = float(both / union) if union else None
        dice = float(2 * both / sizes) if sizes else None
        per_class[name] = {"iou": iou, "dice": dice}
        if iou is not None:
            ious.append(iou)
        if dice is not None:
            dices.append(dice)
    shapes_true, shapes_predicted = t > 0, p > 0
    either = np.logical_or(shapes_true, shapes_predicted).sum()
    return {
        "mean_iou": float(np.mean(ious)) if ious else 0.0,
        "foreground_iou": float(np.logical_and(shapes_true, shapes_predicted).sum() / either)
        if either
        else 0.0,
        "mean_dice": float(np.mean(dices)) if dices else 0.0,
        "pixel_accuracy": float((t == p).mean()) if t.size else 0.0,
        "per_class": per_class,
    }
