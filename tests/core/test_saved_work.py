"""Saved work: save, list, load, rename, duplicate, delete, export and import, on both databases."""

from __future__ import annotations

import json

import pytest

from crispml.core.errors import Conflict, InvalidInput, NotFound
from crispml.core.projects import ProjectFields
from crispml.core.saved_work import ArtifactRef, Snapshot
from crispml.core.workspace import encode
from crispml.services import Services


@pytest.fixture
def alice(services: Services) -> int:
    return services.auth.create_user("alice", "lilac-harbor-93", actor="t").id


def snapshot_for(services: Services, owner: int, name: str = "Churn") -> Snapshot:
    project = services.projects.create(owner, ProjectFields(name), actor="t")
    return Snapshot(
        page="modeling",
        values={
            "ws.algorithm": encode("random_forest"),
            "ws.trees": encode(200),
            "ws.split": encode((0.7, 0.15)),
        },
        refs=(ArtifactRef("project", str(project.id), project.name),),
        project_id=project.id,
        project_name=project.name,
    )


def test_round_trip(services: Services, alice: int) -> None:
    sw = services.saved_work
    snap = snapshot_for(services, alice)
    info = sw.save(alice, "  baseline  ", "first try", snap, actor="alice")
    assert info.name == "baseline"
    assert info.project_name == "Churn"
    assert info.holds == "project, 3 values"
    assert info.size_bytes > 50
    loaded = sw.load(alice, info.id)
    assert loaded.missing == []
    assert loaded.snapshot.values == snap.values
    assert loaded.snapshot.page == "modeling"
    sw.rename(alice, info.id, "baseline v1", actor="alice")
    copy = sw.duplicate(alice, info.id, "baseline v2", actor="alice")
    assert [i.name for i in sw.page(alice).items] == ["baseline v2", "baseline v1"]
    assert sw.load(alice, copy.id).snapshot.values == snap.values
    sw.delete(alice, info.id, actor="alice")
    assert [i.name for i in sw.page(alice).items] == ["baseline v2"]


def test_export_then_import_on_another_server(services: Services, alice: int, tmp_path) -> None:
    from crispml.services import bootstrap, build_services
    from crispml.settings import Settings

    snap = snapshot_for(services, alice)
    info = services.saved_work.save(alice, "to move", "", snap, actor="alice")
    filename, data = services.saved_work.export(alice, info.id)
    assert filename == "to-move.crispml.json"
    doc = json.loads(data)
    assert (doc["format"], doc["schema"], doc["name"]) == ("crispml-saved-work", 1, "to move")

    other = build_services(Settings(home=tmp_path / "other", admin_password="tulip-meadow-4821"))
    bootstrap(other)
    admin = other.auth.first_admin()
    project = other.projects.list(admin.id)[0]
    imported = other.saved_work.import_(
        admin.id, data, name=None, project_id=project.id, project_name=project.name, actor="admin"
    )
    assert imported.name == "to move"
    loaded = other.saved_work.load(admin.id, imported.id)
    assert loaded.snapshot.values == snap.values
    assert loaded.missing == []
    assert loaded.snapshot.project_id == project.id  # it joined the project it was imported into
    assert loaded.snapshot.refs[0] == ArtifactRef("project", str(project.id), "Iris species")
    other.db.dispose()


def test_foreign_references_are_reported_missing_after_import(
    services: Services, alice: int
) -> None:
    snap = snapshot_for(services, alice)
    with_dataset = Snapshot(
        snap.page,
        snap.values,
        (*snap.refs, ArtifactRef("dataset", "1", "customers.csv")),
        snap.project_id,
        snap.project_name,
    )
    services.saved_work.register_artifact_kind("dataset", lambda owner, id_, label: id_ == "1")
    info = services.saved_work.save(alice, "w", "", with_dataset, actor="a")
    assert services.saved_work.load(alice, info.id).missing == []
    _, data = services.saved_work.export(alice, info.id)
    project = services.projects.create(alice, ProjectFields("Here"), actor="a")
    imported = services.saved_work.import_(
        alice, data, name="w2", project_id=project.id, project_name="Here", actor="a"
    )
    # Dataset 1 exists on this server too, but the file's dataset 1 is another server's.
    assert services.saved_work.load(alice, imported.id).missing == ["dataset 'customers.csv'"]


def test_renaming_a_project_keeps_saved_work_whole(services: Services, alice: int) -> None:
    snap = snapshot_for(services, alice)
    info = services.saved_work.save(alice, "w", "", snap, actor="a")
    services.projects.update(alice, snap.project_id, ProjectFields("Renamed"), actor="a")
    assert services.saved_work.load(alice, info.id).missing == []


def test_missing_artifacts_are_listed(services: Services, alice: int) -> None:
    snap = snapshot_for(services, alice)
    gone = Snapshot(
        snap.page,
        snap.values,
        (*snap.refs, ArtifactRef("dataset", "42", "customers.csv")),
        snap.project_id,
        snap.project_name,
    )
    info = services.saved_work.save(alice, "refs", "", gone, actor="alice")
    assert services.saved_work.load(alice, info.id).missing == ["dataset 'customers.csv'"]
    services.projects.delete(alice, snap.project_id, actor="alice")
    loaded = services.saved_work.load(alice, info.id)
    assert loaded.missing == ["project 'Churn'", "dataset 'customers.csv'"]
    assert loaded.snapshot.values == snap.values  # what can be loaded still is


def test_saved_work_is_per_user_and_admins_see_all(services: Services, alice: int) -> None:
    bob = services.auth.create_user("bob", "lilac-harbor-93", actor="t").id
    info = services.saved_work.save(alice, "mine", "", snapshot_for(services, alice), actor="a")
    services.saved_work.save(bob, "mine", "", snapshot_for(services, bob, "B"), actor="b")
    assert [i.owner for i in services.saved_work.page(bob).items] == ["bob"]
    assert sorted(i.owner for i in services.saved_work.page(None).items) == ["alice", "bob"]
    for action in (
        lambda: services.saved_work.load(bob, info.id),
        lambda: services.saved_work.rename(bob, info.id, "x", actor="b"),
        lambda: services.saved_work.delete(bob, info.id, actor="b"),
        lambda: services.saved_work.export(bob, info.id),
    ):
        with pytest.raises(NotFound):
            action()
    services.saved_work.delete(None, info.id, actor="admin")  # an admin may
    assert [i.owner for i in services.saved_work.page(None).items] == ["bob"]


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("", InvalidInput, "needs a name"),
        ("   ", InvalidInput, "needs a name"),
        ("n" * 101, InvalidInput, "at most 100"),
        ("taken", Conflict, "already have"),
    ],
)
def test_bad_names(services: Services, alice: int, name: str, error: type, match: str) -> None:
    snap = snapshot_for(services, alice)
    services.saved_work.save(alice, "taken", "", snap, actor="a")
    other = services.saved_work.save(alice, "other", "", snap, actor="a")
    with pytest.raises(error, match=match):
        services.saved_work.save(alice, name, "", snap, actor="a")
    with pytest.raises(error, match=match):
        services.saved_work.rename(alice, other.id, name, actor="a")
    assert sorted(i.name for i in services.saved_work.page(alice).items) == ["other", "taken"]


def _export(**changes: object) -> bytes:
    doc = {
        "format": "crispml-saved-work",
        "schema": 1,
        "name": "x",
        "page": "",
        "values": {},
        "refs": [],
    }
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x89PNG\r\n\x1a\n binary", "not crispml saved work"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "no 'format' marker"),
        (json.dumps({"format": "something-else"}).encode(), "no 'format' marker"),
        (_export(schema=99), "newer crispml \\(schema 99\\)"),
        (_export(schema="one"), "schema version is missing or invalid"),
        (_export(values=[1, 2]), "'values' must map names"),
        (_export(values={"ws.x": {"$date": "not a date"}}), "a value cannot be read"),
        (_export(refs=[{"kind": "project"}]), "'refs' must list"),
        (_export(name=""), "needs a name"),
        (_export(values={"_crispml.ws.reload": True}), "not a workspace value name"),
        (_export(values={"crumb-root": True}), "not a workspace value name"),
        (_export(values={"wsu.page": "files"}), "not a workspace value name"),
        (_export(values={"ws." + "k" * 300: 1}), "not a workspace value name"),
        (b"[" * 100_000 + b"]" * 100_000, "cannot be read|not valid JSON"),
        (
            b'{"format": "crispml-saved-work", "schema": 1, "values": {"ws.n": '
            + b"9" * 5000
            + b"}}",
            "cannot be read",
        ),
    ],
)
def test_bad_imports_change_nothing(
    services: Services, alice: int, data: bytes, match: str
) -> None:
    before = services.saved_work.page(alice).items
    with pytest.raises(InvalidInput, match=match):
        services.saved_work.import_(
            alice, data, name=None, project_id=None, project_name="", actor="a"
        )
    assert services.saved_work.page(alice).items == before


def test_saved_work_is_read_a_page_at_a_time(services: Services, alice: int) -> None:
    sw = services.saved_work
    snap = snapshot_for(services, alice)
    for i in range(7):
        sw.save(alice, f"w{i}", "", snap, actor="alice")
    first = sw.page(alice, number=1, size=3)
    assert [i.name for i in first.items] == ["w6", "w5", "w4"]  # last changed first
    assert (first.total, first.pages, first.first, first.last) == (7, 3, 1, 3)
    last = sw.page(alice, number=3, size=3)
    assert [i.name for i in last.items] == ["w0"]
    assert (last.first, last.last) == (7, 7)
    assert sw.page(alice, number=99, size=3) == last  # past the end: the last page
    assert all(i.holds == "project, 3 values" for i in first.items)  # stored, not parsed
    assert sw.page(None, size=1000).total == 7
