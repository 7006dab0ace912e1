"""Training runs as real jobs, every built-in algorithm, a third-party plugin, sweeps, the model
registry, and training in a venv built with uv. SQLite (the run records are plain rows; the
store itself is tested on PostgreSQL elsewhere)."""

from __future__ import annotations

import importlib
import itertools
import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crispml.core.envs.registry import JOBSIDE
from crispml.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from crispml.core.modeling import Run
from crispml.services import Services, bootstrap, build_services
from crispml.settings import Settings
from tests.helpers import ADMIN_PASSWORD

PLUGINS = Path(__file__).parents[1] / "plugins"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    home = tmp_path_factory.mktemp("modeling") / "home"
    services = build_services(Settings(home=home, admin_password=ADMIN_PASSWORD))
    bootstrap(services, samples=False)
    yield services
    services.jobs.stop_all(None, actor="test")
    services.db.dispose()


@pytest.fixture(scope="module")
def admin(svc: Services):
    return svc.auth.first_admin()


@pytest.fixture(scope="module")
def project(svc: Services, admin):
    return svc.projects.list(admin.id)[0]


@pytest.fixture(scope="module")
def iris(svc: Services, admin, project):
    return svc.modeling.resolve_data(admin, project.id, "sample:iris")


@pytest.fixture(scope="module")
def diabetes(svc: Services, admin, project):
    return svc.modeling.resolve_data(admin, project.id, "sample:diabetes")


def finished(svc: Services, admin, run: Run, timeout: float = 180) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = svc.modeling.get(admin.id, run.id)
        if current.finished:
            return current
        time.sleep(0.2)
    raise AssertionError(f"run {run.id} did not finish")


@pytest.fixture(scope="module")
def sklearn_runs(svc, admin, iris, diabetes) -> dict[str, Run]:
    """Every scikit-learn built-in trained once (iris or diabetes), for the tests that need runs."""
    started = [
        svc.modeling.start(admin, (iris if a.task == "classification" else diabetes).id, a.name, {})
        for a in svc.modeling.algorithms.all()
        if a.tags == ("scikit-learn",)
    ]
    return {run.algorithm: finished(svc, admin, run) for run in started}


def test_every_builtin_algorithm_trains_to_a_sane_quality(svc, admin, sklearn_runs) -> None:
    assert len(sklearn_runs) == 7
    started = list(sklearn_runs.values())
    for done in started:
        run = done
        log = svc.jobs.log_tail(svc.jobs.get(admin.id, run.id))
        assert done.status == "succeeded", log
        if done.task == "classification":
            assert done.metrics["test_accuracy"] >= 0.9, (done.algorithm, done.metrics)
            assert done.metrics["test_roc_auc"] >= 0.9
            matrix = done.details["test_confusion_matrix"]
            assert matrix["labels"] == ["setosa", "versicolor", "virginica"]
            assert sum(map(sum, matrix["matrix"])) == 23
        else:
            assert done.metrics["test_r2"] > 0.25, (done.algorithm, done.metrics)
            assert done.metrics["test_rmse"] < 70  # the target's spread is about 77
            assert len(done.details["test_residuals"]["residual"]) == 67
        assert done.duration_s and done.duration_s > 0
        assert (svc.modeling.run_folder(done) / "artifacts" / "model.skops").exists()
    curve = (svc.modeling.run_folder(started[1]) / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line)["step"] for line in curve if '"step"' in line]
    assert steps == list(range(1, 11))  # the forest grew in ten logged rounds


def test_bad_requests_are_refused_before_any_job_starts(svc, admin, project, iris) -> None:
    raw = next(d for d in svc.datasets.all(admin.id, project.id) if d.name == "Iris")
    cases = [
        (iris.id, "logistic_regression", {"C": 0}, "system", "C = 0 is out of range"),
        (iris.id, "logistic_regression", {"C": "many"}, "system", "'many' is not a number between"),
        (iris.id, "logistic_regression", {"gamma": 1}, "system", "has no hyperparameter 'gamma'"),
        (iris.id, "knn_classifier", {"weights": "x"}, "system", "one of uniform, distance"),
        (iris.id, "ridge_regression", {}, "system", "is for regression, but"),
        (raw.id, "logistic_regression", {}, "system", "is not prepared"),
        (iris.id, "logistic_regression", {}, "gpu", "the environment 'gpu' does not exist"),
        (iris.id, "no_such_algorithm", {}, "system", "No algorithm named"),
    ]
    before = len(svc.jobs.history(None))
    for dataset, algorithm, params, env, message in cases:
        with pytest.raises((InvalidInput, NotFound), match=message):
            svc.modeling.start(admin, dataset, algorithm, params, env)
    with pytest.raises(InvalidInput, match="at most 200"):
        svc.modeling.sweep(
            admin, iris.id, "knn_classifier", {}, {"n_neighbors": list(range(1, 202))}
        )
    assert len(svc.jobs.history(None)) == before


def test_an_environment_that_lacks_the_requirements_is_refused(svc, admin, iris) -> None:
    _, build = svc.environments.create_venv(admin, "bare", "", [])
    while not svc.jobs.get(admin.id, build.id).finished:
        time.sleep(0.2)
    with pytest.raises(InvalidInput, match="cannot run in 'bare': scikit-learn is not installed"):
        svc.modeling.start(admin, iris.id, "logistic_regression", {}, "bare")
    spec = svc.modeling.algorithms.get("logistic_regression")
    assert "bare" not in svc.modeling.suitable_environments(spec)
    assert "system" in svc.modeling.suitable_environments(spec)


def test_training_in_a_venv_built_with_uv(svc, admin, iris) -> None:
    spec = svc.modeling.algorithms.get("logistic_regression")
    _, build = svc.environments.create_venv(admin, "sklearn-env", "", spec.requirements)
    while not svc.jobs.get(admin.id, build.id).finished:
        time.sleep(0.2)
    log = svc.jobs.log_tail(svc.jobs.get(admin.id, build.id))
    assert svc.jobs.get(admin.id, build.id).status == "succeeded", log
    assert "sklearn-env" in svc.modeling.suitable_environments(spec)
    run = finished(svc, admin, svc.modeling.start(admin, iris.id, spec.name, {}, "sklearn-env"))
    assert run.status == "succeeded", svc.jobs.log_tail(svc.jobs.get(admin.id, run.id))
    result = json.loads((svc.modeling.run_folder(run) / "result.json").read_text())
    assert result["executable"] == str(
        svc.settings.home / "envs" / "sklearn-env" / "bin" / "python"
    )
    assert run.metrics["test_accuracy"] >= 0.9


def test_a_third_party_plugin_appears_trains_and_crashes_clearly(
    svc, admin, iris, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    shutil.copytree(PLUGINS, site)  # "installed": a distribution with entry points on the path
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))  # the jobs' system environment sees it too
    importlib.invalidate_caches()
    svc.modeling.algorithms.reload()
    try:
        names = [a.name for a in svc.modeling.algorithms.all("classification")]
        assert "demo_majority" in names and "logistic_regression" in names
        run = finished(svc, admin, svc.modeling.start(admin, iris.id, "demo_majority", {}))
        assert run.status == "succeeded", svc.jobs.log_tail(svc.jobs.get(admin.id, run.id))
        assert run.metrics["test_accuracy"] == pytest.approx(8 / 23, abs=0.01)  # one class of 3
        crash = finished(svc, admin, svc.modeling.start(admin, iris.id, "demo_crash", {}))
        assert crash.status == "failed"
        assert crash.error == "RuntimeError: the demo plugin crashed on purpose"
        log = svc.jobs.log_tail(svc.jobs.get(admin.id, crash.id))
        assert "Traceback" in log and "crashed on purpose" in log
    finally:
        monkeypatch.undo()
        svc.modeling.algorithms.reload()
    assert "demo_majority" not in [a.name for a in svc.modeling.algorithms.all()]


def test_a_sweep_starts_one_run_per_point(svc, admin, iris) -> None:
    runs = svc.modeling.sweep(admin, iris.id, "knn_classifier", {}, {"n_neighbors": [1, 15]})
    assert sorted(r.params["n_neighbors"] for r in runs) == [1, 15]
    assert len({r.sweep for r in runs}) == 1
    assert all(finished(svc, admin, r).status == "succeeded" for r in runs)
    sampled = svc.modeling.sweep(
        admin,
        iris.id,
        "knn_classifier",
        {"weights": "distance"},
        {"n_neighbors": [1, 2, 3, 4, 5, 6]},
        random_points=1,
        seed=3,
    )
    assert len(sampled) == 1 and sampled[0].params["weights"] == "distance"
    svc.jobs.stop(admin.id, sampled[0].id, actor="t")  # its training adds nothing here
    finished(svc, admin, sampled[0])


def test_the_model_registry(svc, admin, iris, sklearn_runs) -> None:
    first, second = sklearn_runs["logistic_regression"], sklearn_runs["knn_classifier"]
    v1 = svc.modeling.register(admin, first.id, "iris-clf", stage="production")
    v2 = svc.modeling.register(admin, second.id, "iris-clf")
    assert (v1.version, v2.version, v1.stage) == (1, 2, "production")
    assert v2.info["classes"] == ["setosa", "versicolor", "virginica"]
    assert v2.params == second.params and v2.metrics == second.metrics
    assert svc.modeling.model("iris-clf").version == 1  # production wins over newest
    svc.modeling.set_stage(admin, "iris-clf", 2, "production")
    assert svc.modeling.model("iris-clf", 1).stage == "archived"
    assert svc.modeling.model("iris-clf").version == 2
    with pytest.raises(InvalidInput, match="cannot name a model"):
        svc.modeling.register(admin, first.id, "bad name/")
    with pytest.raises(NotFound):
        svc.modeling.model("iris-clf", 9)
    stopped = svc.modeling.start(admin, iris.id, "logistic_regression", {})
    svc.jobs.stop(admin.id, stopped.id, actor="t")
    assert finished(svc, admin, stopped).status == "stopped"
    with pytest.raises(Conflict, match="only a succeeded run has a model"):
        svc.modeling.register(admin, stopped.id, "broken")
    # The saved model loads with skops (no pickle) and predicts, in the job-side code.
    sys.path.insert(0, str(JOBSIDE))
    try:
        module = importlib.import_module("crispml_algos.sklearn_models")
        model = module.load(v2.path)
        features = svc.datasets.frame(iris, "test").drop(columns=["species", "_row"])
        assert set(model.predict(features)) <= {"setosa", "versicolor", "virginica"}
    finally:
        sys.path.remove(str(JOBSIDE))


@pytest.mark.needs("torch")
def test_pytorch_algorithms_train_on_the_cpu(svc, admin, project, iris, diabetes) -> None:
    from PIL import Image

    from crispml.core.data.prepare import ImageRecipe

    raw = svc.datasets.add_sample(admin, project.id, "shapes", seed=3, count=60, size=64)
    shapes = svc.datasets.prepare_images(
        admin,
        raw.id,
        ImageRecipe(size=64, augment=["horizontal flip"], train=0.75, validation=0.25, test=0),
    )
    unet = svc.modeling.start(admin, shapes.id, "unet_segmentation", {"epochs": 30})
    mlp = svc.modeling.start(admin, iris.id, "mlp_classifier", {"epochs": 40})
    regressor = svc.modeling.start(admin, diabetes.id, "mlp_regressor", {"weight_decay": 0.01})
    done = {r.algorithm: finished(svc, admin, r, timeout=300) for r in (unet, mlp, regressor)}
    for run in done.values():
        assert run.status == "succeeded", svc.jobs.log_tail(svc.jobs.get(admin.id, run.id))
    assert done["mlp_classifier"].metrics["test_accuracy"] >= 0.9
    assert done["mlp_regressor"].metrics["test_r2"] > 0.2
    segmentation = done["unet_segmentation"]
    # A constant prediction (all background) has an IoU of 0 for every shape and for the
    # foreground; the U-Net, trained from scratch for 30 epochs, is clearly above that.
    assert segmentation.metrics["validation_foreground_iou"] > 0.5, segmentation.metrics
    assert segmentation.metrics["validation_mean_iou"] > 0.15, segmentation.metrics
    per_class = segmentation.details["validation_per_class"]
    assert set(per_class) == {"circle", "square", "triangle"}
    folder = svc.modeling.run_folder(segmentation) / "artifacts"
    assert (folder / "model.pt").exists() and (folder / "example-0.png").exists()
    with Image.open(folder / "example-0.png") as example:  # input | truth | prediction
        assert example.size == (3 * 64, 64)
    model = svc.modeling.register(admin, segmentation.id, "shapes-unet")
    sys.path.insert(0, str(JOBSIDE))
    try:
        torch_models = importlib.import_module("crispml_algos.torch_models")
        loaded = torch_models.load(model.path)  # a state dict, loaded with weights_only=True
        annotations = svc.datasets.annotations(raw)
        first = annotations["images"][0]
        picture = Image.open(svc.datasets.folder(raw.id) / "images" / first["file_name"])
        (result,) = torch_models.predict(loaded, [picture], overlay=True)
    finally:
        sys.path.remove(str(JOBSIDE))
    assert set(result) == {"classes", "scores", "boxes", "mask", "overlay"}
    assert len(result["classes"]) == len(result["scores"]) == len(result["boxes"])
    assert len(result["mask"]) == 64 and len(result["mask"][0]) == 64
    assert result["overlay"].shape == (64, 64, 3)
    for (y0, x0, y1, x1), score in zip(result["boxes"], result["scores"], strict=True):
        assert 0 <= y0 <= y1 < 64 and 0 <= x0 <= x1 < 64 and 0 <= score <= 1
    truth = [a for a in annotations["annotations"] if a["image_id"] == first["id"]]
    best = max(
        (b for b in result["boxes"]), key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), default=None
    )
    assert best is not None and truth  # at least the largest shape is found
    x, y, w, h = max(truth, key=lambda a: a["area"])["bbox"]
    overlap_y = max(0, min(best[2], y + h - 1) - max(best[0], y) + 1)
    overlap_x = max(0, min(best[3], x + w - 1) - max(best[1], x) + 1)
    assert overlap_y * overlap_x > 0  # the largest box found overlaps the largest true shape


def test_review_fixes_without_training(svc, admin, iris, sklearn_runs, tmp_path: Path) -> None:
    from crispml.core.algorithms import Param
    from crispml.core.modeling import _grid_point
    from tests.helpers import USER_PASSWORD

    # Macro averages count every label seen, as scikit-learn does.
    sys.path.insert(0, str(JOBSIDE))
    try:
        metrics = importlib.import_module("crispml_metrics")
        sklearn_models = importlib.import_module("crispml_algos.sklearn_models")
    finally:
        sys.path.remove(str(JOBSIDE))
    from sklearn.metrics import f1_score, precision_score

    truth, predicted = ["a", "a", "b", "b"], ["a", "c", "b", "b"]
    result = metrics.classification(truth, predicted)
    assert result["precision"] == pytest.approx(
        precision_score(truth, predicted, average="macro", zero_division=0)
    )
    assert result["f1"] == pytest.approx(
        f1_score(truth, predicted, average="macro", zero_division=0)
    )
    # Non-finite integers are a message, not an OverflowError.
    with pytest.raises(InvalidInput, match="'inf' is not a whole number"):
        Param("n", "int", 1, 1, 10).parse("inf")
    # A huge sweep is refused before anything is built; random points are drawn lazily.
    started = time.monotonic()
    with pytest.raises(InvalidInput, match="2,000,000 points; at most 200"):
        svc.modeling.sweep(
            admin, iris.id, "random_forest_classifier", {},
            {"n_estimators": list(range(1, 201)), "max_depth": list(range(100)),
             "min_samples_leaf": list(range(1, 101))},
        )  # fmt: skip
    assert time.monotonic() - started < 2
    options = [[1, 2, 3], ["a", "b"], [True, False]]
    names = ["x", "y", "z"]
    for index, combo in enumerate(itertools.product(*options)):
        assert _grid_point(names, options, index) == dict(zip(names, combo, strict=True))
    # Another user cannot touch a model name that is not theirs.
    svc.auth.create_user("mallory", USER_PASSWORD, actor="t")
    mallory = svc.auth.get_user("mallory")
    run = sklearn_runs["knn_classifier"]
    model = svc.modeling.register(admin, run.id, "owned-model")
    with pytest.raises(PermissionDenied, match="belongs to another user"):
        svc.modeling.set_stage(mallory, "owned-model", model.version, "archived")
    # A folder a crash left behind does not block the name.
    (svc.settings.home / "models" / "left-behind" / "1").mkdir(parents=True)
    assert svc.modeling.register(admin, run.id, "left-behind").version == 2
    with pytest.raises(InvalidInput, match="cannot name a model"):
        svc.modeling.register(admin, run.id, "trailing\n")
    # A model file holding a function (not a class) is refused by the loader.
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.utils.validation import check_array

    pipeline = make_pipeline(FunctionTransformer(check_array), LogisticRegression())
    features = svc.datasets.frame(iris, "train").drop(columns=["species", "_row"])
    pipeline.fit(features.to_numpy(), svc.datasets.frame(iris, "train")["species"])
    sio.dump(pipeline, tmp_path / "model.skops")
    with pytest.raises(ValueError, match=r"does not load: sklearn\.utils\.validation\.check_array"):
        sklearn_models.load(tmp_path)
