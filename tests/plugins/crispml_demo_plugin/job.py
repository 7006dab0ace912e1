"""Job side of the demo plugin: runs in the algorithm's environment, imports no crispml."""

import json


def train(ctx):
    if ctx.spec["algorithm"] == "demo_crash":
        raise RuntimeError("the demo plugin crashed on purpose")
    _, truth = ctx.table("train")
    majority = truth.astype(str).value_counts().idxmax()
    ctx.log(step=1, train_accuracy=float((truth.astype(str) == majority).mean()))
    for part in ("validation", "test"):
        features, part_truth = ctx.table(part)
        ctx.evaluate(part, [majority] * len(features), truth=part_truth)
    ctx.artifact("model.json").write_text(
        json.dumps({"format": "json", "majority": majority, "classes": ctx.classes})
    )


def load(folder):
    with open(f"{folder}/model.json") as f:
        return json.load(f)


def predict(model, rows):
    return [model["majority"] for _ in rows]
