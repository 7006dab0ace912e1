import pytest

from crispml.core.errors import Conflict, InvalidInput, NotFound
from crispml.core.projects import ProjectFields
from crispml.services import Services


def test_projects_are_per_user_and_editable(services: Services) -> None:
    auth, projects = services.auth, services.projects
    alice = auth.create_user("alice", "lilac-harbor-93", actor="t")
    bob = auth.create_user("bob", "lilac-harbor-93", actor="t")
    churn = projects.create(alice.id, ProjectFields("Churn", "Keep customers"), actor="alice")
    projects.create(alice.id, ProjectFields("Fraud"), actor="alice")
    projects.create(bob.id, ProjectFields("Churn"), actor="bob")  # same name, other owner: fine
    assert [p.name for p in projects.list(alice.id)] == ["Fraud", "Churn"]
    assert [p.name for p in projects.list(bob.id)] == ["Churn"]
    updated = projects.update(
        alice.id, churn.id, ProjectFields("Churn 2026", "Keep more", "AUC > 0.8", "n"), actor="a"
    )
    assert (updated.name, updated.success_criteria) == ("Churn 2026", "AUC > 0.8")
    assert projects.list(alice.id)[0].id == churn.id  # most recently updated first
    with pytest.raises(NotFound):
        projects.get(bob.id, churn.id)
    with pytest.raises(NotFound):
        projects.delete(bob.id, churn.id, actor="bob")
    projects.delete(alice.id, churn.id, actor="alice")
    assert [p.name for p in projects.list(alice.id)] == ["Fraud"]


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        (ProjectFields("   "), InvalidInput, "needs a name"),
        (ProjectFields("x" * 121), InvalidInput, "at most 120"),
        (ProjectFields("ok", goal="g" * 20_001), InvalidInput, "goal"),
        (ProjectFields("Existing"), Conflict, "already have"),
    ],
)
def test_bad_project_input(
    services: Services, fields: ProjectFields, error: type, match: str
) -> None:
    owner = services.auth.first_admin()
    services.projects.create(owner.id, ProjectFields("Existing"), actor="t")
    with pytest.raises(error, match=match):
        services.projects.create(owner.id, fields, actor="t")
    assert [p.name for p in services.projects.list(owner.id)] == ["Existing"]


def test_audit_log_records_changes(services: Services) -> None:
    owner = services.auth.first_admin()
    services.projects.create(owner.id, ProjectFields("Audited"), actor="admin")
    actions = [(e.actor, e.action, e.target) for e in services.audit.recent(5)]
    assert ("admin", "project.create", "Audited") in actions


def test_resolve_finds_a_project_by_name_else_the_latest_else_makes_one(
    services: Services,
) -> None:
    alice = services.auth.create_user("alice", "lilac-harbor-93", actor="t")
    bob = services.auth.create_user("bob", "lilac-harbor-93", actor="t")
    projects = services.projects
    samples = projects.resolve(alice, None)  # none yet: one is made, once
    assert (samples.name, samples.owner_id) == ("Samples", alice.id)
    assert ("alice", "project.create", "Samples") in [
        (e.actor, e.action, e.target) for e in services.audit.recent(5)
    ]
    assert projects.resolve(alice, None).id == samples.id
    churn = projects.create(alice.id, ProjectFields("Churn"), actor="alice")
    projects.create(bob.id, ProjectFields("Fraud"), actor="bob")
    assert projects.resolve(alice, None).id == churn.id  # the most recently updated
    assert projects.resolve(alice, "Samples").id == samples.id
    with pytest.raises(NotFound, match="alice has no project named 'Fraud'"):
        projects.resolve(alice, "Fraud")  # bob's
    assert [p.name for p in projects.list(alice.id)] == ["Churn", "Samples"]
