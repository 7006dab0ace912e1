"""Homes with data and trained models, for the model API tests and the browser journeys."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from crispml.core.data.prepare import ImageRecipe
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
