"""Evaluation's Register box and the registry's Delete through AppTest (issue 21), on real
services and real training jobs: an MLP on iris and a U-Net on the shapes sample."""

from __future__ import annotations

from pathlib import Path

import pytest

from crispml.core.workspace import encode, project_scope
from crispml.services import Services
from tests.models import iris_and_shapes, wait_finished
from tests.ui.test_data_pages import button, session

pytestmark = pytest.mark.needs("torch")

RUN = "eval.register.run"  # the Register box
PICK = "ws.eval.register_run"  # the user's pick, kept in the workspace


def test_the_register_box_offers_every_run_and_registers_the_one_shown(svc: Services) -> None:
    admin = svc.auth.first_admin()
    project = svc.projects.list(admin.id)[0].id
    iris, shapes = iris_and_shapes(svc, admin, project)
    mlp = svc.modeling.start(admin, iris.id, "mlp_classifier", {"epochs": 5})
    wait_finished(svc, mlp.id)
    # The user compares the MLP alone; the comparison is kept in their workspace.
    page = session("evaluation")
    page.multiselect(key="ws.eval.runs").set_value([mlp.id]).run()
    assert not page.exception
    # Later a U-Net learns the shapes; a new session restores the old comparison.
    unet = svc.modeling.start(admin, shapes.id, "unet_segmentation", {"epochs": 2})
    wait_finished(svc, unet.id)
    page = session("evaluation")
    assert not page.exception
    assert page.multiselect(key="ws.eval.runs").value == [mlp.id]
    box = page.selectbox(key=RUN)
    assert box.options == [  # every successful run, newest first, not only the compared
        f"segmentation · unet_segmentation · {shapes.name} · validation_mean_iou "
        f"{svc.modeling.get(admin.id, unet.id).metrics['validation_mean_iou']:.3g} · run {unet.id}",
        f"classification · mlp_classifier · {iris.name} · validation_accuracy "
        f"{svc.modeling.get(admin.id, mlp.id).metrics['validation_accuracy']:.3g} · run {mlp.id}",
    ]
    assert box.value == mlp.id  # the best compared run, shown as such
    assert any("every successful run of this project (2)" in c.value for c in page.caption)
    # The iris run cannot go under a name holding the U-Net: the page says why.
    box.set_value(unet.id).run()
    page.text_input(key="ws.eval.model_name").input("shapes-unet").run()
    button(page, "Register").click().run()
    assert not page.exception
    assert page.success[0].value == (
        f"Registered shapes-unet version 1. From run {unet.id}: segmentation, unet_segmentation."
    )
    model = svc.modeling.model("shapes-unet", 1)
    assert (model.run_id, model.task) == (unet.id, "segmentation")
    page.selectbox(key=RUN).set_value(mlp.id).run()
    button(page, "Register").click().run()
    assert "'shapes-unet' holds segmentation models" in page.error[0].value
    assert "is a classification model" in page.error[0].value
    assert [m.version for m in svc.modeling.models() if m.name == "shapes-unet"] == [1]
    # The user's pick is kept by run id: a new session shows (and would register) the same run.
    page.selectbox(key=RUN).set_value(unet.id).run()
    again = session("evaluation")
    assert again.selectbox(key=RUN).value == unet.id
    # A kept pick that is no longer a run of the project is dropped, not moved to another run.
    revision, _ = svc.workspace.revision(admin.id)
    svc.workspace.save(
        admin.id,
        {project_scope(project): {PICK: encode("0123456789ab")}},
        writer="elsewhere",
        known_revision=revision,
    )
    stale = session("evaluation")
    assert not stale.exception
    assert stale.selectbox(key=RUN).value is None
    assert "The run chosen before (0123456789ab) is no longer" in stale.warning[0].value
    assert button(stale, "Register").disabled
    stale.selectbox(key=RUN).set_value(unet.id).run()
    assert not button(stale, "Register").disabled
    assert session("evaluation").selectbox(key=RUN).value == unet.id


def test_delete_a_version_from_the_registry(svc: Services) -> None:
    admin = svc.auth.first_admin()
    project = svc.projects.list(admin.id)[0].id
    iris = svc.modeling.resolve_data(admin, project, "sample:iris")
    run = svc.modeling.start(admin, iris.id, "logistic_regression", {})
    wait_finished(svc, run.id)
    svc.modeling.register(admin, run.id, "iris-lr")
    wrong = svc.modeling.register(admin, run.id, "iris-lr")
    svc.deployments.deploy(admin, "iris-lr", 2)
    page = session("evaluation")
    page.selectbox(key="eval.version").set_value("iris-lr:2").run()
    button(page, "Delete version").click().run()
    assert "Delete iris-lr v2 (no stage)" in page.warning[0].value  # asks first
    button(page, "Confirm").click().run()
    assert "iris-lr:2 is deployed: undeploy it first" in page.error[0].value
    svc.deployments.undeploy(admin, "iris-lr", 2)
    button(page, "Delete version").click().run()
    button(page, "Confirm").click().run()
    assert not page.exception
    assert "Deleted iris-lr v2." in page.success[0].value
    assert [m.version for m in svc.modeling.models()] == [1]
    assert list(page.dataframe[-1].value["Version"]) == [1]
    assert not Path(wrong.path).exists()
