"""Datasets: file types, samples, the shapes generator, profiles (inline and as a real job) and
preparation recipes, on SQLite and PostgreSQL with real files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from crispml.core.data import service as data_service
from crispml.core.data.prepare import ColumnStep, ImageRecipe, Recipe
from crispml.core.data.profile import profile_table
from crispml.core.data.samples import SAMPLES, table_sample
from crispml.core.data.shapes import CLASSES, figure_mask, generate, rle_decode
from crispml.core.errors import Conflict, InvalidInput, NotFound
from crispml.services import Services
from tests.helpers import USER_PASSWORD


@pytest.fixture
def admin(services: Services):
    return services.auth.first_admin()


@pytest.fixture
def project(services: Services, admin):
    from crispml.core.projects import ProjectFields

    return services.projects.create(admin.id, ProjectFields(name="Data"), actor="t")


def user_files(services: Services, admin) -> Path:
    return services.files.space(admin.username, admin.role, f"~{admin.username}").resolve("")


def test_each_table_format_loads(services: Services, admin, project) -> None:
    frame = table_sample("iris")
    folder = user_files(services, admin)
    frame.to_csv(folder / "iris.csv", index=False)
    frame.to_parquet(folder / "iris.parquet", index=False)
    frame.to_excel(folder / "iris.xlsx", index=False)
    frame.to_json(folder / "iris.jsonl", orient="records", lines=True)
    for suffix in ("csv", "parquet", "xlsx", "jsonl"):
        dataset = services.datasets.register(
            admin, project.id, f"iris {suffix}", folder / f"iris.{suffix}", f"~admin:iris.{suffix}"
        )
        assert (dataset.rows, dataset.columns) == (150, list(frame.columns))
        assert dataset.format == {"xlsx": "excel"}.get(suffix, suffix)
        loaded = services.datasets.frame(dataset)
        pd.testing.assert_frame_equal(loaded, frame, check_dtype=False)
    again = services.datasets.register(admin, project.id, "again", folder / "iris.csv", "x")
    assert again.version == services.datasets.all(admin.id, project.id)[0].version


def test_bad_files_get_a_clear_error_and_leave_nothing(services: Services, admin, project) -> None:
    folder = user_files(services, admin)
    (folder / "broken.parquet").write_bytes(b"not parquet at all")
    (folder / "empty.csv").write_text("")
    (folder / "notes.txt").write_text("hello")
    (folder / "no-images").mkdir()
    cases = [
        ("broken.parquet", "could not be read as parquet"),
        ("empty.csv", "could not be read as csv"),
        ("notes.txt", "not a table crispml reads"),
        ("no-images", "holds no images"),
    ]
    for name, message in cases:
        with pytest.raises(InvalidInput, match=message):
            services.datasets.register(admin, project.id, name, folder / name, name)
    assert services.datasets.all(admin.id, project.id) == []
    root = services.settings.home / "datasets"
    assert not root.exists() or list(root.iterdir()) == []


def test_every_sample_builds(services: Services, admin, project) -> None:
    expected = {
        "iris": (150, "species", {"setosa", "versicolor", "virginica"}),
        "wine": (178, "cultivar", {"class_0", "class_1", "class_2"}),
        "breast_cancer": (569, "diagnosis", {"malignant", "benign"}),
        "diabetes": (442, "progression", None),
        "digits": (1797, "digit", {str(d) for d in range(10)}),
    }
    for name, (rows, target, classes) in expected.items():
        dataset = services.datasets.add_sample(admin, project.id, name)
        frame = services.datasets.frame(dataset)
        assert (dataset.rows, dataset.columns[-1], dataset.details["task"]) == (
            rows,
            target,
            SAMPLES[name].task,
        )
        if classes:
            assert set(frame[target]) == classes
    shapes = services.datasets.add_sample(admin, project.id, "shapes", seed=5, count=12, size=48)
    assert (shapes.kind, shapes.rows, shapes.details["image_size"]) == ("images", 12, 48)
    assert len(services.datasets.images(shapes)) == 12
    with pytest.raises(Conflict, match="exists in this project already"):
        services.datasets.add_sample(admin, project.id, "iris")
    with pytest.raises(InvalidInput, match="No sample named 'mnist'"):
        services.datasets.add_sample(admin, project.id, "mnist")


def test_the_task_a_target_suggests(services: Services, admin, project) -> None:
    iris = services.datasets.add_sample(admin, project.id, "iris")
    diabetes = services.datasets.add_sample(admin, project.id, "diabetes")
    guess = services.datasets.guess_task
    assert guess(iris, "species") == "classification"  # as prepared
    assert guess(iris, "sepal_length_cm") == "regression"  # numeric, 35 distinct values
    assert guess(diabetes, "progression") == "regression"
    assert guess(diabetes, "sex") == "classification"  # numeric, two values


def test_shapes_masks_match_the_drawn_shapes_exactly(tmp_path: Path) -> None:
    coco = generate(tmp_path, 30, 64, seed=11)
    assert [c["name"] for c in coco["categories"]] == list(CLASSES[1:])
    assert {a["figure"]["shape"] for a in coco["annotations"]} == {"circle", "square", "triangle"}
    for image_info in coco["images"]:
        image = np.asarray(Image.open(tmp_path / "images" / image_info["file_name"]))
        mask = np.asarray(Image.open(tmp_path / "masks" / image_info["file_name"]))
        drawn = np.zeros(mask.shape, dtype=np.uint8)
        for a in (a for a in coco["annotations"] if a["image_id"] == image_info["id"]):
            figure = a["figure"]
            geometric = figure_mask(figure["shape"], tuple(figure["center"]), figure["half"], 64)
            assert (rle_decode(a["segmentation"]) == geometric).all()
            assert (image[geometric] == figure["color"]).all()  # the shape's pixels, its colour
            ys, xs = np.nonzero(geometric)
            assert a["bbox"] == [
                xs.min(),
                ys.min(),
                xs.max() - xs.min() + 1,
                ys.max() - ys.min() + 1,
            ]
            assert a["area"] == geometric.sum()
            drawn[geometric] = a["category_id"]
        assert (mask == drawn).all()  # every mask pixel is a drawn shape's class, and only those
    again = generate(tmp_path / "again", 30, 64, seed=11)
    assert json.dumps(again) == json.dumps(coco)  # the seed decides everything


def test_a_profile_is_right_and_computed_once(services: Services, admin, project) -> None:
    frame = pd.DataFrame(
        {
            "x": [1.0, 2.0, 3.0, None, 5.0, 6.0],
            "y": [2.0, 4.0, 6.0, 8.0, 10.0, 12.0],
            "colour": ["red", "blue", "red", None, "red", "green"],
        }
    )
    profile = profile_table(frame)
    x, _, colour = profile["column_profiles"]
    assert (x["missing"], x["distinct"], x["mean"], x["median"]) == (1, 5, 3.4, 3.0)
    assert sum(x["histogram"]["counts"]) == 5
    assert (colour["kind"], colour["top"][0], colour["missing"]) == ("categorical", ["red", 3], 1)
    assert profile["correlations"]["columns"] == ["x", "y"]
    assert profile["correlations"]["matrix"][0][1] == pytest.approx(1.0)
    assert profile["missing_cells"] == 2
    iris = services.datasets.add_sample(admin, project.id, "iris")
    assert services.datasets.cached_profile(iris) is None
    first = services.datasets.profile(iris)
    path = services.datasets.profile_path(iris)
    stamp = path.stat().st_mtime_ns
    assert services.datasets.profile(iris) == first and path.stat().st_mtime_ns == stamp


def test_a_large_table_is_profiled_as_a_job(
    services: Services, admin, project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data_service, "PROFILE_INLINE_CELLS", 100)  # iris has 750 cells
    iris = services.datasets.add_sample(admin, project.id, "iris")
    assert services.datasets.needs_job(iris)
    job = services.datasets.start_profile_job(admin, iris)
    assert services.datasets.start_profile_job(admin, iris).id == job.id  # not twice
    deadline = time.monotonic() + 60
    while not services.jobs.get(admin.id, job.id).finished and time.monotonic() < deadline:
        time.sleep(0.1)
    done = services.jobs.get(admin.id, job.id)
    assert (done.kind, done.status) == ("profile", "succeeded"), services.jobs.log_tail(done)
    assert services.datasets.cached_profile(iris) is None  # the job wrote into its own folder
    assert services.datasets.collect_profile(iris, done)["rows"] == 150  # checked, then kept
    assert services.datasets.cached_profile(iris)["rows"] == 150


def test_a_prepared_version_rebuilds_to_the_same_split_and_values(
    services: Services, admin, project
) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": np.where(rng.random(300) < 0.1, np.nan, rng.normal(40, 10, 300)),
            "plan": rng.choice(["basic", "pro", None], 300),
            "region": rng.choice(["north", "south", "east"], 300),
            "churn": rng.choice(["yes", "no"], 300, p=[0.3, 0.7]),
        }
    )
    folder = user_files(services, admin)
    frame.to_parquet(folder / "churn.parquet", index=False)
    churn = services.datasets.register(admin, project.id, "churn", folder / "churn.parquet", "x")
    recipe = Recipe(
        target="churn",
        features=["age", "plan", "region"],
        task="classification",
        overrides={"region": ColumnStep("none", "none", "ordinal")},
    )
    prepared = services.datasets.prepare(admin, churn.id, recipe)
    parts = {p: services.datasets.frame(prepared, p) for p in ("train", "validation", "test")}
    assert [len(parts[p]) for p in parts] == [210, 45, 45]
    assert set(parts["train"].columns) == {
        "_row", "age", "plan=basic", "plan=pro", "region", "churn"
    }  # fmt: skip
    assert not parts["train"]["age"].isna().any()  # median-filled, then standardised on train
    assert parts["train"]["age"].mean() == pytest.approx(0, abs=1e-9)
    for part in parts.values():  # stratified: the same share of "yes" everywhere
        assert (part["churn"] == "yes").mean() == pytest.approx(0.3, abs=0.03)
    fitted = prepared.recipe["fitted"]
    assert fitted["region"]["categories"] == ["east", "north", "south"]
    assert fitted["age"]["scale"] == "standard"
    rebuilt = services.datasets.rebuild(admin, prepared.id)
    for name, part in parts.items():
        pd.testing.assert_frame_equal(rebuilt[name], part)
    record = json.loads((services.datasets.folder(prepared.id) / "recipe.json").read_text())
    assert record["source"]["version"] == churn.version
    other_seed = services.datasets.prepare(
        admin, churn.id, Recipe(**{**recipe.__dict__, "seed": 7})
    )
    assert other_seed.version != prepared.version
    diabetes = services.datasets.add_sample(admin, project.id, "diabetes")
    regression = services.datasets.prepare(
        admin,
        diabetes.id,
        Recipe(
            "progression",
            [c for c in diabetes.columns if c != "progression"],
            "regression",
            numeric=ColumnStep("mean", "minmax"),
        ),
    )
    train = services.datasets.frame(regression, "train")
    assert train["bmi"].min() == 0 and train["bmi"].max() == 1


def test_bad_recipes_are_refused_before_anything_is_written(
    services: Services, admin, project
) -> None:
    iris = services.datasets.add_sample(admin, project.id, "iris")
    features = [c for c in iris.columns if c != "species"]
    bad = [
        (Recipe("nope", features, "classification"), "not a column"),
        (Recipe("species", [], "classification"), "at least one feature"),
        (Recipe("species", ["species"], "classification"), "cannot also be a feature"),
        (Recipe("species", features, "classification", train=0.9, validation=0.3), "adding up"),
        (Recipe("species", features, "clustering"), "The task is one of"),
    ]
    for recipe, message in bad:
        with pytest.raises(InvalidInput, match=message):
            services.datasets.prepare(admin, iris.id, recipe)
    tiny = pd.DataFrame({"a": [1, 2, 3, 4], "label": ["x", "x", "x", "y"]})
    folder = user_files(services, admin)
    tiny.to_csv(folder / "tiny.csv", index=False)
    small = services.datasets.register(admin, project.id, "tiny", folder / "tiny.csv", "x")
    with pytest.raises(InvalidInput, match="Cannot stratify: the class 'y' has only 1 row"):
        services.datasets.prepare(admin, small.id, Recipe("label", ["a"], "classification"))
    assert [d.role for d in services.datasets.all(admin.id, project.id)] == ["raw", "raw"]


def test_images_register_and_prepare(services: Services, admin, project) -> None:
    folder = user_files(services, admin) / "cells"
    generate(folder, 10, 32, seed=2)
    (folder / "annotations.json").unlink()
    dataset = services.datasets.register(admin, project.id, "cells", folder, "~admin:cells")
    assert (dataset.kind, dataset.rows, dataset.details["masks"]) == ("images", 10, 10)
    recipe = ImageRecipe(size=32, augment=["horizontal flip"], train=0.6, validation=0.2, test=0.2)
    prepared = services.datasets.prepare_images(admin, dataset.id, recipe)
    parts = prepared.recipe["parts"]
    assert [len(parts[p]) for p in ("train", "validation", "test")] == [6, 2, 2]
    assert sorted(n for names in parts.values() for n in names) == [
        f"{i:04d}.png" for i in range(10)
    ]
    again = services.datasets.prepare_images(admin, dataset.id, recipe, "same recipe")
    assert again.recipe["parts"] == parts and again.version == prepared.version
    with pytest.raises(InvalidInput, match="Unknown augmentation"):
        services.datasets.prepare_images(admin, dataset.id, ImageRecipe(augment=["shear"]))


def test_datasets_belong_to_their_owner_and_project(services: Services, admin, project) -> None:
    iris = services.datasets.add_sample(admin, project.id, "iris")
    prepared = services.datasets.prepare(
        admin, iris.id, Recipe("species", iris.columns[:-1], "classification")
    )
    services.auth.create_user("bob", USER_PASSWORD, actor="t")
    bob = services.auth.get_user("bob")
    with pytest.raises(NotFound):
        services.datasets.get(bob.id, iris.id)
    with pytest.raises(NotFound, match="Choose one of your projects"):
        services.datasets.add_sample(bob, project.id, "iris")
    assert services.datasets.delete(admin, iris.id) == [prepared.name, iris.name]
    assert services.datasets.all(admin.id, project.id) == []
    assert not services.datasets.folder(iris.id).exists()
    assert not services.datasets.folder(prepared.id).exists()


def test_deleting_a_project_removes_its_datasets_files(services: Services, admin, project) -> None:
    from crispml.core.projects import ProjectFields

    other = services.projects.create(admin.id, ProjectFields(name="Other"), actor="t")
    iris = services.datasets.add_sample(admin, project.id, "iris")
    kept = services.datasets.add_sample(admin, other.id, "wine")
    in_flight = services.datasets.folder("being-written")  # another user's, not yet a row
    in_flight.mkdir(parents=True)
    services.projects.delete(admin.id, project.id, actor="t")
    assert not services.datasets.folder(iris.id).exists()
    assert in_flight.exists()
    assert services.datasets.folder(kept.id).exists()
    assert [d.name for d in services.datasets.all(admin.id, other.id)] == ["Wine"]


def test_awkward_columns_and_files(services: Services, admin, project) -> None:
    folder = user_files(services, admin)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "index": rng.normal(size=60),  # a feature with pandas' favourite name
            "when": [f"2024-01-0{i % 9 + 1}" for i in range(60)],  # dates
            "label": ["a", "b", "c"] * 20,
        }
    )
    frame.to_csv(folder / "awkward.csv", index=False)
    awkward = services.datasets.register(admin, project.id, "awkward", folder / "awkward.csv", "x")
    prepared = services.datasets.prepare(
        admin, awkward.id, Recipe("label", ["index", "when"], "classification")
    )
    train = services.datasets.frame(prepared, "train")
    assert "index" in train.columns and "level_0" not in train.columns
    assert train["_row"].between(0, 59).all()  # row ids, not a feature
    source = frame["index"].iloc[train["_row"]].to_numpy()  # the feature's own values
    expected = (source - source.mean()) / source.std()  # standardised on the training rows
    assert np.allclose(train["index"].to_numpy(), expected)
    (folder / "rows.csv").write_text("_row,y\n1,a\n2,b\n3,a\n4,b\n")
    rows = services.datasets.register(admin, project.id, "rows", folder / "rows.csv", "x")
    with pytest.raises(InvalidInput, match="keeps for row ids"):
        services.datasets.prepare(admin, rows.id, Recipe("y", ["_row"], "classification"))
    single = pd.DataFrame({"x": range(10), "y": ["same"] * 10, "t": ["a"] * 10})
    single.to_csv(folder / "single.csv", index=False)
    one = services.datasets.register(admin, project.id, "single", folder / "single.csv", "x")
    with pytest.raises(InvalidInput, match="one class only"):
        services.datasets.prepare(admin, one.id, Recipe("y", ["x"], "classification"))
    with pytest.raises(InvalidInput, match="is not numeric"):
        services.datasets.prepare(admin, one.id, Recipe("t", ["x"], "regression"))
    (folder / "nested.jsonl").write_text('{"a": 1, "tags": ["x", "y"]}\n{"a": 2, "tags": []}\n')
    nested = services.datasets.register(admin, project.id, "nested", folder / "nested.jsonl", "x")
    assert list(services.datasets.frame(nested)["tags"]) == ['["x", "y"]', "[]"]
    assert services.datasets.profile(nested)["rows"] == 2
    images = folder / "pictures"
    generate(images, 3, 32, seed=1)
    (images / "images" / "readme.png").write_text("not an image")
    with pytest.raises(InvalidInput, match=r"readme\.png is not an image"):
        services.datasets.register(admin, project.id, "pictures", images, "x")
