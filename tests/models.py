"""Homes with data and trained models, for the model API tests and the browser journeys."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crispml.core.data.prepare import ImageRecipe, Recipe
from crispml.services import Services, bootstrap, build_services
from crispml.settings import Settings
from tests.helpers import ADMIN_PASSWORD

# One flower's measurements; every iris model here says virginica.
IRIS_ROW = {"sepal_length_cm": 6.7, "sepal_width_cm": 3.0, "petal_length_cm": 5.2,
            "petal_width_cm": 2.3}  # fmt: skip


def admin_home(home: Path) -> tuple[Services, Any, int]:
    """Services on a new home (no samples): the first admin and the id of their project."""
    svc = build_services(Settings(home=home, admin_password=ADMIN_PASSWORD))
    bootstrap(svc, samples=False)
    admin = svc.auth.first_admin()
    return svc, admin, svc.projects.list(admin.id)[0].id


def iris_and_shapes(svc: Services, admin: Any, project_id: int) -> tuple[Any, Any]:
    """The iris table and 24 shapes of 32 pixels prepared for segmentation."""
    iris = svc.modeling.resolve_data(admin, project_id, "sample:iris")
    raw = svc.datasets.add_sample(admin, project_id, "shapes", seed=5, count=24, size=32)
    shapes = svc.datasets.prepare_images(
        admin, raw.id, ImageRecipe(size=32, train=0.75, validation=0.25, test=0)
    )
    return iris, shapes


def wait_finished(svc: Services, run_id: str, timeout: float = 300) -> None:
    """Until the run ends; it must have succeeded."""
    admin = svc.auth.first_admin()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = svc.modeling.get(admin.id, run_id)
        if run.finished:
            assert run.status == "succeeded", svc.jobs.log_tail(svc.jobs.get(admin.id, run_id))
            return
        time.sleep(0.3)
    raise AssertionError("the run did not finish")


@dataclass(frozen=True)
class Trained:
    """A home copied from the session's trained one, with its services opened: the runs are
    ``iris`` (logistic regression on iris), ``narrow`` (the same on two of its columns),
    ``unet`` (a U-Net on 24 shapes of 32 pixels, 3 epochs) and ``elsewhere`` (``iris`` again,
    in the environment "elsewhere": this Python registered under another name). Nothing is
    registered or deployed: each test module does what it needs."""

    home: Path
    svc: Services
    admin: Any
    project: int
    runs: dict[str, str]  # name above -> run id


def train_template(home: Path) -> dict[str, str]:
    """Build the trained home once: data, the four runs, each finished and succeeded."""
    svc, admin, project = admin_home(home)
    iris, shapes = iris_and_shapes(svc, admin, project)
    raw = next(d for d in svc.datasets.all(admin.id, project) if d.id == iris.parent_id)
    two = ["sepal_length_cm", "sepal_width_cm"]
    narrow = svc.datasets.prepare(admin, raw.id, Recipe("species", two, "classification"))
    svc.environments.register_interpreter(admin, "elsewhere", sys.executable)
    runs = {
        "iris": svc.modeling.start(admin, iris.id, "logistic_regression", {}),
        "narrow": svc.modeling.start(admin, narrow.id, "logistic_regression", {}),
        "unet": svc.modeling.start(admin, shapes.id, "unet_segmentation", {"epochs": 3}),
        "elsewhere": svc.modeling.start(admin, iris.id, "logistic_regression", {}, env="elsewhere"),
    }
    for run in runs.values():
        wait_finished(svc, run.id)
    svc.db.dispose()
    return {name: run.id for name, run in runs.items()}


def copy_home(template: Path, home: Path) -> None:
    """A copy of a home (owners and modes kept: the runs' files belong to the users' uids) at
    another path. The database names files by absolute path (a job's folder, its mounts), so
    the template's path is replaced with the copy's in every text column, and in the JSON
    records of the runs (their folder, their inputs)."""
    home.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(template), str(home)], check=True)
    for record in home.glob("runs/*/*.json"):
        text = record.read_text()
        if str(template) in text:
            record.write_text(text.replace(str(template), str(home)))
    with sqlite3.connect(home / "crispml.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in db.execute(f'PRAGMA table_info("{table}")').fetchall():
                if column[2].upper().startswith(("VARCHAR", "TEXT")):
                    name = column[1]  # table and column names from the database's catalogue
                    update = f'UPDATE "{table}" SET "{name}" = replace("{name}", ?, ?)'  # noqa: S608
                    db.execute(update, (str(template), str(home)))


def open_trained(template: Path, runs: dict[str, str], home: Path) -> Trained:
    copy_home(template, home)
    svc, admin, project = admin_home(home)
    return Trained(home, svc, admin, project, runs)
