"""The model registry's rules (issue 21): a name's versions share one task and one input, and a
wrong registration can be undone by deleting the version. Real runs (an iris classifier, an iris
classifier on two columns, a small shapes U-Net) trained as jobs, on a real SQLite home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crispml.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from crispml.services import Services
from crispml.store.tables import ModelRow
from tests.helpers import USER_PASSWORD
from tests.models import Trained

pytestmark = pytest.mark.needs("torch")


@dataclass
class Home:
    path: Path
    svc: Services
    admin: Any
    iris: str  # run ids
    narrow: str
    unet: str


@pytest.fixture(scope="module")
def home(trained: Trained) -> Home:
    runs = trained.runs
    return Home(
        trained.home, trained.svc, trained.admin, runs["iris"], runs["narrow"], runs["unet"]
    )


def versions(home: Home, name: str) -> list[int]:
    return sorted(m.version for m in home.svc.modeling.models() if m.name == name)


def test_a_name_holds_one_task(home: Home) -> None:
    registry, admin = home.svc.modeling, home.admin
    unet = registry.register(admin, home.unet, "shapes-seg")
    assert (unet.task, unet.inputs) == ("segmentation", {"kind": "images"})
    with pytest.raises(InvalidInput) as refused:
        registry.register(admin, home.iris, "shapes-seg")
    message = str(refused.value)
    assert "'shapes-seg' holds segmentation models" in message
    assert f"run {home.iris} is a classification model" in message
    assert "register it under another name" in message
    assert versions(home, "shapes-seg") == [1]  # nothing added, no files left behind
    assert sorted(p.name for p in (home.path / "models" / "shapes-seg").iterdir()) == ["1"]
    # ... and the other way round.
    iris = registry.register(admin, home.iris, "iris-clf")
    assert iris.inputs == {
        "kind": "table",
        "columns": ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"],
    }
    with pytest.raises(InvalidInput, match="'iris-clf' holds classification models") as refused:
        registry.register(admin, home.unet, "iris-clf")
    assert f"run {home.unet} is a segmentation model" in str(refused.value)
    assert versions(home, "iris-clf") == [1]
    # The same kind of model is welcome.
    assert registry.register(admin, home.iris, "iris-clf").version == 2
    assert registry.register(admin, home.unet, "shapes-seg").version == 2


def test_a_name_holds_one_input(home: Home) -> None:
    registry, admin = home.svc.modeling, home.admin
    registry.register(admin, home.iris, "iris-four")
    with pytest.raises(InvalidInput, match="must take the same input") as refused:
        registry.register(admin, home.narrow, "iris-four")
    message = str(refused.value)
    assert "taking rows of sepal_length_cm, sepal_width_cm, petal_length_cm" in message
    assert "takes rows of sepal_length_cm, sepal_width_cm." in message
    # A version registered before the input was recorded: its input is read from its files.
    with home.svc.db.session() as s:
        row = s.scalar(select(ModelRow).where(ModelRow.name == "iris-four"))
        assert row is not None
        info = json.loads(row.info)
        del info["inputs"]
        row.info = json.dumps(info)
    assert "inputs" not in registry.model("iris-four", 1).info
    with pytest.raises(InvalidInput, match="must take the same input"):
        registry.register(admin, home.narrow, "iris-four")
    assert registry.register(admin, home.iris, "iris-four").version == 2


def cli(home: Home, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CRISPML_")}
    return subprocess.run(
        [sys.executable, "-m", "crispml", "--home", str(home.path), "models", *args],
        input="", capture_output=True, text=True, env=environment, timeout=60, check=False,
    )  # fmt: skip


def test_a_wrong_registration_is_undone_by_deleting_the_version(home: Home) -> None:
    svc, admin = home.svc, home.admin
    svc.modeling.register(admin, home.iris, "to-undo")
    second = svc.modeling.register(admin, home.iris, "to-undo")
    folder = Path(second.path)
    assert folder.is_dir()
    # Not while it is deployed: the API would lose it under its clients.
    svc.deployments.deploy(admin, "to-undo", 2)
    with pytest.raises(Conflict, match=r"to-undo:2 is deployed: undeploy it first"):
        svc.modeling.delete_version(admin, "to-undo", 2)
    assert folder.is_dir()
    svc.deployments.undeploy(admin, "to-undo", 2)
    # Not by another user.
    svc.auth.create_user("mallory", USER_PASSWORD, actor="t")
    mallory = svc.auth.get_user("mallory")
    with pytest.raises(PermissionDenied, match="only its owner or an admin"):
        svc.modeling.delete_version(mallory, "to-undo", 2)
    with pytest.raises(NotFound):
        svc.modeling.delete_version(admin, "to-undo", 7)
    # By its owner: the row, its folder, audited.
    deleted = svc.modeling.delete_version(admin, "to-undo", 2)
    assert deleted.run_id == home.iris
    assert versions(home, "to-undo") == [1]
    assert not folder.exists()
    event = next(e for e in svc.audit.recent(20) if e.action == "model.delete")
    assert (event.actor, event.target, event.detail) == ("admin", "to-undo:2", home.iris)
    # Its number is not given again: a client that knew to-undo:2 never gets another model.
    assert svc.modeling.register(admin, home.iris, "to-undo").version == 3
    # The command line: the version is required, a deployed one refused, then deleted.
    assert cli(home, "delete", "to-undo", "--yes").returncode == 2
    svc.deployments.deploy(admin, "to-undo", 3)
    refused = cli(home, "delete", "to-undo:3", "--yes")
    assert refused.returncode == 1 and "to-undo:3 is deployed" in refused.stderr
    svc.deployments.undeploy(admin, "to-undo", 3)
    asked = cli(home, "delete", "to-undo:3")  # no answer to the question: nothing deleted
    assert asked.returncode == 1 and versions(home, "to-undo") == [1, 3]
    done = cli(home, "delete", "to-undo:3", "--yes")
    assert done.returncode == 0 and "deleted to-undo:3" in done.stdout
    assert versions(home, "to-undo") == [1]
    done = cli(home, "delete", "to-undo:1", "--yes")
    assert done.returncode == 0, done.stderr
    assert versions(home, "to-undo") == []
    assert not (home.path / "models" / "to-undo").exists()  # the name's folder, once empty
