"""Table samples from the data sets scikit-learn ships (nothing is downloaded)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Sample:
    name: str
    title: str
    kind: str  # table or images
    target: str
    task: str  # classification, regression or segmentation
    description: str


SAMPLES: dict[str, Sample] = {
    s.name: s
    for s in (
        Sample("iris", "Iris", "table", "species", "classification",
               "150 iris flowers: 4 measurements, 3 species."),
        Sample("wine", "Wine", "table", "cultivar", "classification",
               "178 wines: 13 chemical measurements, 3 cultivars."),
        Sample("breast_cancer", "Breast cancer", "table", "diagnosis", "classification",
               "569 tumours: 30 cell-nucleus features, malignant or benign."),
        Sample("diabetes", "Diabetes", "table", "progression", "regression",
               "442 patients: 10 baseline variables, disease progression after one year."),
        Sample("digits", "Digits", "table", "digit", "classification",
               "1,797 handwritten digits as 8x8 pixel intensities."),
        Sample("shapes", "Shapes", "images", "mask", "segmentation",
               "Generated images of circles, squares and triangles with per-pixel masks and "
               "COCO-style annotations; you choose the seed, the number of images and their size."),
    )
}  # fmt: skip


def table_sample(name: str) -> pd.DataFrame:
    """The sample as a DataFrame, the target named and, for classes, given their names."""
    from sklearn import datasets

    sample = SAMPLES[name]
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.copy()
    target = frame.pop("target")
    if sample.task == "classification":
        names = getattr(bunch, "target_names", None)
        if names is not None and name != "digits":
            target = target.map(dict(enumerate(str(n) for n in names)))
        else:
            target = target.astype(str)
    frame[sample.target] = target
    frame.columns = [str(c).replace(" (cm)", "_cm").replace(" ", "_") for c in frame.columns]
    return frame
