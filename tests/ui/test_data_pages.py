"""Data understanding and preparation through AppTest, on real services and real files."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from crispml.services import Services
from crispml.ui.views import data_preparation


def session(view: str) -> AppTest:
    """A browser session on one page, with the workspace restored and autosaved."""
    return AppTest.from_string(
        "from crispml.ui import context, workspace\n"
        f"from crispml.ui.views import {view}\n"
        "a = context.require_login()\nworkspace.restore(a.user.id)\n"
        f"{view}.render()\nworkspace.autosave(a.user.id)\n",
        default_timeout=60,
    ).run()


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_add_iris_and_look_at_its_profile(svc: Services) -> None:
    at = session("data_understanding")
    assert not at.exception
    assert "has no datasets yet" in at.info[0].value
    button(at, "Add sample").click().run()  # iris is the default sample
    assert not at.exception
    assert "Added the sample 'Iris' (150 rows)." in at.success[0].value
    assert metrics(at) == {
        "Rows": "150",
        "Columns": "5",
        "Missing cells": "0",
        "On disk": metrics(at)["On disk"],
    }
    columns = at.dataframe[1].value
    assert list(columns["Column"])[-1] == "species" and columns["Kind"].iloc[0] == "numeric"
    assert (
        at.selectbox(key="ws.data." + svc.datasets.all(1, 1)[0].id + ".target").value == "species"
    )
    dataset = svc.datasets.all(svc.auth.first_admin().id, 1)[0]
    assert svc.datasets.cached_profile(dataset)["rows"] == 150  # computed once, kept
    again = session("data_understanding")  # a refresh: the same dataset, from the cache
    assert again.selectbox(key="ws.data.dataset").value == dataset.id
    assert metrics(again)["Rows"] == "150"


def test_shapes_gallery(svc: Services) -> None:
    at = session("data_understanding")
    at.selectbox(key="ws.data.sample").select("shapes").run()
    at.number_input(key="ws.data.shapes.count").set_value(6).run()
    at.number_input(key="ws.data.shapes.size").set_value(48).run()
    button(at, "Add sample").click().run()
    assert not at.exception
    assert metrics(at)["Images"] == "6" and metrics(at)["With masks"] == "6"
    assert len(at.get("image")) == 6  # the gallery, masks overlaid


def test_prepare_iris_and_keep_the_choices(svc: Services) -> None:
    admin = svc.auth.first_admin()
    project = svc.projects.list(admin.id)[0]
    iris = svc.datasets.add_sample(admin, project.id, "iris")
    at = session("data_preparation")
    assert not at.exception
    assert at.selectbox(key=f"ws.prep.{iris.id}.target").value == "species"
    task = at.selectbox(key=f"ws.prep.{iris.id}.task.{data_preparation._short('species')}")
    assert task.value == "classification"
    # Bad shares: a readable error and nothing made.
    at.slider(key=f"ws.prep.{iris.id}.train").set_value(0.9).run()
    at.slider(key=f"ws.prep.{iris.id}.validation").set_value(0.3).run()
    button(at, "Prepare").click().run()
    assert "adding up to 1" in at.error[0].value
    assert [d.role for d in svc.datasets.all(admin.id, project.id)] == ["raw"]
    at.slider(key=f"ws.prep.{iris.id}.train").set_value(0.6).run()
    at.slider(key=f"ws.prep.{iris.id}.validation").set_value(0.2).run()
    button(at, "Prepare").click().run()
    assert not at.exception
    assert "Prepared 'Iris · prepared 1': 90 train, 30 validation, 30 test." in at.success[0].value
    prepared = [d for d in svc.datasets.all(admin.id, project.id) if d.role == "prepared"]
    assert prepared[0].recipe["train"] == 0.6 and prepared[0].recipe["seed"] == 42
    again = session("data_preparation")  # the choices were kept in the workspace
    assert again.slider(key=f"ws.prep.{iris.id}.train").value == 0.6
    assert "Iris · prepared 1" in list(again.dataframe[0].value["Name"])
