"""Modeling and Evaluation with AppTest, on real services and real training jobs."""

from __future__ import annotations

import contextlib
import time

from crispml.core.errors import Conflict
from crispml.core.workspace import encode, project_scope
from crispml.services import Services
from tests.ui.test_data_pages import button, session


def wait_for_runs(svc: Services, user_id: int, project_id: int, count: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = svc.modeling.all(user_id, project_id)
        if len(runs) >= count and all(r.finished for r in runs):
            return
        time.sleep(0.2)
    raise AssertionError("runs did not finish")


def test_train_compare_and_register(svc: Services) -> None:
    admin = svc.auth.first_admin()
    project = svc.projects.list(admin.id)[0]
    iris = svc.modeling.resolve_data(admin, project.id, "sample:iris")
    at = session("modeling")
    assert not at.exception
    assert at.selectbox(key="ws.model.dataset").value == iris.id
    algorithm = at.selectbox(key="ws.model.algorithm.classification")
    assert algorithm.value == "logistic_regression"
    assert at.selectbox(key="ws.model.logistic_regression.env").value == "system"
    at.text_input(key="ws.model.logistic_regression.C").input("0.05").run()
    button(at, "Train").click().run()
    assert "Started run" in at.success[0].value
    at.selectbox(key="ws.model.algorithm.classification").select("knn_classifier").run()
    assert at.selectbox(key="ws.model.knn_classifier.weights").value == "uniform"
    button(at, "Train").click().run()
    wait_for_runs(svc, admin.id, project.id, 2)
    at.run()
    runs = at.dataframe[0].value
    assert set(runs["Status"]) == {"succeeded"} and len(runs) == 2
    # Training curves of the latest run (none is running): its logged metrics, charted
    assert not at.exception
    latest = [c.value for c in at.caption if "points · latest" in c.value]
    assert len(latest) == 1 and "validation_accuracy" in latest[0]
    assert len(at.get("vega_lite_chart")) >= 2  # one chart per metric

    page = session("evaluation")
    assert not page.exception
    # both runs' curves compared; the chart settings are kept in the user's workspace
    assert len([c for c in page.caption if "points · latest" in c.value]) == 2
    page.selectbox(key="wsu.live.interval").select(0).run()
    page.toggle(key="wsu.live.log").set_value(True).run()
    assert not page.exception
    again = session("evaluation")
    assert again.selectbox(key="wsu.live.interval").value == 0
    assert again.toggle(key="wsu.live.log").value is True
    assert page.selectbox(key="ws.eval.sort").value == "validation_accuracy"
    table = page.dataframe[0].value
    values = list(table["validation_accuracy"])
    assert values == sorted(values, reverse=True)  # best first
    page.text_input(key="ws.eval.model_name").input("iris-best").run()
    button(page, "Register").click().run()
    assert not page.exception
    assert "Registered iris-best version 1." in page.success[0].value
    registry = page.dataframe[-1].value
    assert list(registry["Model"]) == ["iris-best"]
    assert svc.modeling.model("iris-best").run_id == table["Run"].iloc[0]
    page.selectbox(key="eval.stage").select("production").run()
    button(page, "Set stage").click().run()
    assert svc.modeling.model("iris-best", 1).stage == "production"


def test_an_algorithm_no_environment_satisfies_offers_to_build_one(svc: Services) -> None:
    from crispml.core.algorithms import AlgorithmRegistry, AlgorithmSpec

    needy = AlgorithmSpec(
        "needs_a_new_env",
        "Needs a new environment",
        "classification",
        (),
        ("crispml-test-package-nobody-has>=1",),
        "crispml_demo_plugin.job",
    )
    svc.modeling.algorithms = AlgorithmRegistry(extra=[needy])
    admin = svc.auth.first_admin()
    project = svc.projects.list(admin.id)[0]
    svc.modeling.resolve_data(admin, project.id, "sample:iris")
    at = session("modeling")
    at.selectbox(key="ws.model.algorithm.classification").select("needs_a_new_env").run()
    assert "No environment has what Needs a new environment needs" in at.warning[0].value
    assert next(b for b in at.button if b.label == "Train").disabled
    button(at, "Build an environment for it").click().run()
    assert "Building needs_a_new_env-env as job" in at.success[0].value
    build = svc.jobs.history(None, kinds=["environment build"])[0]
    assert build.argv[-1] == "crispml-test-package-nobody-has>=1"
    with contextlib.suppress(Conflict):  # uv may already have failed: nobody has the package
        svc.jobs.stop(admin.id, build.id, actor="t")


def test_the_form_trains_only_what_it_shows(svc: Services) -> None:
    """Numbers are what the boxes show: a huge or negative one is named with its range and
    Train does nothing; a value restored as a number shows as itself, a missing one as the
    default, never the smallest allowed."""
    admin = svc.auth.first_admin()
    project = svc.projects.list(admin.id)[0]
    svc.modeling.resolve_data(admin, project.id, "sample:iris")
    at = session("modeling")
    at.selectbox(key="ws.model.algorithm.classification").select("mlp_classifier").run()
    assert not at.exception
    hidden = at.text_input(key="ws.model.mlp_classifier.hidden")
    assert hidden.value == "64"  # the declared default
    for typed in ("99999999999999999999", "-3", "many"):
        at.text_input(key="ws.model.mlp_classifier.epochs").input(typed).run()
        problems = [e.value for e in at.error]
        assert any(p.startswith("epochs") and "between 1 and" in p for p in problems), problems
        assert next(b for b in at.button if b.label == "Train").disabled  # it cannot be pressed
    assert svc.modeling.all(admin.id, project.id) == []
    at.text_input(key="ws.model.mlp_classifier.epochs").input("3").run()
    # A number as an older version kept it in the workspace, restored in a new session.
    revision, _ = svc.workspace.revision(admin.id)
    stored = {"ws.model.mlp_classifier.hidden": encode(32)}
    svc.workspace.save(
        admin.id, {project_scope(project.id): stored}, writer="old", known_revision=revision
    )
    at = session("modeling")
    assert at.text_input(key="ws.model.mlp_classifier.hidden").value == "32"
    assert at.text_input(key="ws.model.mlp_classifier.epochs").value == "3"
    button(at, "Train").click().run()
    assert "Started run" in at.success[0].value, [e.value for e in at.error]
    (run,) = svc.modeling.all(admin.id, project.id)
    assert run.params["epochs"] == 3 and run.params["hidden"] == 32
    assert run.params["learning_rate"] == 0.01 and run.params["layers"] == 2
    jobs = session("jobs")  # the job's details show every parameter it trains with
    jobs.selectbox(key="jobs.chosen").select(run.id).run()
    shown = " ".join(c.value for c in jobs.caption)
    assert "epochs=3" in shown and "hidden=32" in shown and "learning_rate=0.01" in shown
    with contextlib.suppress(Conflict):
        svc.jobs.stop(admin.id, run.id, actor="test")


def test_every_run_sends_the_algorithm_and_its_settings_their_values(svc: Services) -> None:
    """A run cut short before it drew a new algorithm's fields leaves the next run to draw them
    fresh; the browser must then get the values the server holds, not the widgets' defaults
    (seen in the colleague journey: weight_decay showed empty, and the empty value came back)."""
    admin = svc.auth.first_admin()
    project = svc.projects.list(admin.id)[0]
    svc.modeling.resolve_data(admin, project.id, "sample:iris")
    at = session("modeling")
    at.selectbox(key="ws.model.algorithm.classification").select("mlp_classifier").run()
    at.run()  # a run in which nothing changed these values
    for key, value in (
        ("ws.model.mlp_classifier.weight_decay", "0.0"),
        ("ws.model.mlp_classifier.epochs", "50"),
    ):
        field = at.text_input(key=key)
        assert field.proto.set_value and field.proto.value == value, key
    for key in ("ws.model.algorithm.classification", "ws.model.mlp_classifier.env"):
        assert at.selectbox(key=key).proto.set_value, key  # not the box's first option
