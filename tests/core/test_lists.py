"""Runs, model versions and datasets are read a page at a time (SQLite and PostgreSQL): the order,
the filters, the totals, and a page past the end. Rows are inserted directly, as months of use
would leave them; the services read them back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from crispml.core.projects import ProjectFields
from crispml.services import Services
from crispml.store.tables import DatasetRow, ModelRow, RunRow

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def add_runs(svc: Services, owner: int, project: int, statuses: list[str]) -> list[str]:
    """Runs created a minute apart, the last the newest; their ids, oldest first."""
    rows = [
        {"id": f"run{i:03d}", "project_id": project, "owner_id": owner, "algorithm": "logreg",
         "task": "classification", "params": "{}", "env": "system", "dataset_id": "d",
         "dataset_name": "Iris", "dataset_version": "v", "status": status,
         "metrics": json.dumps({"validation_accuracy": i / 100}), "details": "{}", "error": "",
         "created_at": T0 + timedelta(minutes=i)}
        for i, status in enumerate(statuses)
    ]  # fmt: skip
    with svc.db.session() as s:
        s.execute(insert(RunRow), rows)
    return [r["id"] for r in rows]


def test_runs_come_a_page_at_a_time_and_active_ones_are_settled(services: Services) -> None:
    admin = services.auth.first_admin()
    project = services.projects.create(admin.id, ProjectFields("Lists"), actor="t").id
    statuses = ["succeeded", "failed", "succeeded", "running", "succeeded", "succeeded"]
    ids = add_runs(services, admin.id, project, statuses)
    page = services.modeling.recent(admin.id, project, size=4)
    assert (page.total, page.pages) == (6, 2)
    assert [r.id for r in page.items] == ids[::-1][:4]  # newest first
    # The "running" run has no job: reading it settles it as lost, so it is not active.
    assert [r.status for r in page.items][2] == "lost"
    assert services.modeling.active(admin.id, project) == []
    ok = services.modeling.recent(admin.id, project, succeeded=True, number=2, size=3)
    assert [r.id for r in ok.items] == [ids[0]] and ok.total == 4
    other = services.projects.create(admin.id, ProjectFields("Other"), actor="t").id
    assert services.modeling.recent(admin.id, other).total == 0


def test_the_registry_comes_a_page_at_a_time(services: Services) -> None:
    admin = services.auth.first_admin()
    bob = services.auth.create_user("bob", "lilac-harbor-93", actor="t")
    rows = [
        {"name": name, "version": version, "owner_id": owner, "run_id": "r", "algorithm": "a",
         "task": "classification", "env": "system", "params": "{}", "metrics": "{}",
         "info": "{}", "path": "/nowhere", "stage": "", "created_at": T0}
        for name, version, owner in [("beta", 1, bob.id), ("alpha", 1, admin.id),
                                     ("beta", 2, bob.id), ("alpha", 2, admin.id)]
    ]  # fmt: skip
    with services.db.session() as s:
        s.execute(insert(ModelRow), rows)
    page = services.modeling.versions_page(size=3)
    assert [(m.name, m.version) for m in page.items] == [("alpha", 2), ("beta", 2), ("alpha", 1)]
    assert (page.total, page.pages) == (4, 2)
    assert services.modeling.model_names() == ["alpha", "beta"]
    assert services.modeling.model_names(bob.id) == ["beta"]
    assert [m.version for m in services.modeling.versions("beta")] == [2, 1]
    assert [m.version for m in services.modeling.versions("beta", limit=1)] == [2]


def test_datasets_come_newest_first_by_role(services: Services) -> None:
    admin = services.auth.first_admin()
    project = services.projects.create(admin.id, ProjectFields("Data"), actor="t").id
    rows = [
        {"id": f"ds{i}", "project_id": project, "owner_id": admin.id, "name": f"data {i}",
         "kind": "table", "role": role, "source": "sample:iris", "format": "csv",
         "version": "v", "parent_id": parent, "created_at": T0 + timedelta(minutes=i)}
        for i, (role, parent) in enumerate([("raw", None), ("raw", None), ("prepared", "ds0"),
                                            ("prepared", "ds1"), ("prepared", "ds0")])
    ]  # fmt: skip
    with services.db.session() as s:
        s.execute(insert(DatasetRow), rows)
    raw = services.datasets.recent(admin.id, project, role="raw")
    assert [d.id for d in raw.items] == ["ds1", "ds0"] and raw.total == 2
    every = services.datasets.recent(admin.id, project, size=2, number=3)
    assert [d.id for d in every.items] == ["ds0"] and every.pages == 3
    assert [d.id for d in services.datasets.prepared_from(admin.id, "ds0")] == ["ds2", "ds4"]
    assert [d.id for d in services.datasets.prepared_from(admin.id, "ds0", limit=1)] == ["ds4"]


def test_a_long_list_is_counted_only_so_far_ahead(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crispml.core import paging

    monkeypatch.setattr(paging, "COUNT_AHEAD", 3)
    admin = services.auth.first_admin()
    project = services.projects.create(admin.id, ProjectFields("Long"), actor="t").id
    ids = add_runs(services, admin.id, project, ["succeeded"] * 6)
    first = services.modeling.recent(admin.id, project, size=2)
    assert (first.total, first.more, first.pages) == (3, True, 2)  # "of more than 3"
    second = services.modeling.recent(admin.id, project, number=2, size=2)
    assert (second.total, second.more) == (5, True)
    last = services.modeling.recent(admin.id, project, number=3, size=2)
    assert (last.total, last.more) == (6, False)
    assert [r.id for r in last.items] == ids[:2][::-1]


def test_model_names_come_by_prefix_and_up_to_a_limit(services: Services) -> None:
    admin = services.auth.first_admin()
    rows = [
        {"name": name, "version": 1, "owner_id": admin.id, "run_id": "r", "algorithm": "a",
         "task": "classification", "env": "system", "params": "{}", "metrics": "{}",
         "info": "{}", "path": "/nowhere", "stage": "", "created_at": T0}
        for name in ("iris-a", "iris-b", "iris%c", "wine", "irk")
    ]  # fmt: skip
    with services.db.session() as s:
        s.execute(insert(ModelRow), rows)
    every = services.modeling.model_names()
    assert sorted(every) == sorted(["iris-a", "iris-b", "iris%c", "wine", "irk"])
    assert services.modeling.model_names(limit=2) == every[:2]  # in the database's order
    assert sorted(services.modeling.model_names(starting="iris")) == ["iris%c", "iris-a", "iris-b"]
    assert services.modeling.model_names(starting="iris%") == ["iris%c"]  # % is a character
    assert services.modeling.model_names(starting="zebra") == []
