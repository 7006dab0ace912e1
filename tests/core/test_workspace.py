"""The autosaved workspace store, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from crispml.core.errors import InvalidInput
from crispml.core.workspace import (
    USER_SCOPE,
    Unencodable,
    WorkspaceService,
    decode,
    encode,
    project_scope,
)
from crispml.services import Services


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        3,
        2.5,
        "text",
        [1, "a"],
        {"nested": {"list": [1, 2]}},
        (0.1, 0.9),
        dt.date(2026, 1, 2),
        dt.datetime(2026, 1, 2, 3, 4, 5),
        dt.time(7, 30),
        {"when": [dt.date(2026, 5, 1), (1, 2)]},
    ],
)
def test_codec_round_trips_plain_data(value: object) -> None:
    assert decode(encode(value)) == value
    assert type(decode(encode(value))) is type(value)


@pytest.mark.parametrize(
    "value", [object(), b"bytes", {1: "int key"}, {"$date": "x"}, float("nan")]
)
def test_codec_refuses_what_is_not_plain_data(value: object) -> None:
    with pytest.raises(Unencodable):
        encode(value)


def test_encoding_is_canonical() -> None:
    assert encode({"b": 1, "a": 2}) == encode({"a": 2, "b": 1})


@pytest.fixture
def users(services: Services) -> tuple[int, int]:
    alice = services.auth.create_user("alice", "lilac-harbor-93", actor="t")
    bob = services.auth.create_user("bob", "lilac-harbor-93", actor="t")
    return alice.id, bob.id


def test_save_and_load_per_user_and_scope(services: Services, users: tuple[int, int]) -> None:
    ws: WorkspaceService = services.workspace
    alice, bob = users
    assert ws.load(alice, (USER_SCOPE,)).revision == 0
    saved = ws.save(
        alice,
        {USER_SCOPE: {"wsu.page": encode("modeling")}, "p1": {"ws.trees": encode(100)}},
        writer="tab-a",
        known_revision=0,
    )
    assert saved.revision == 1
    assert not saved.others_wrote
    assert ws.load(alice, (USER_SCOPE,)).values == {"wsu.page": '"modeling"'}
    assert ws.load(alice, ("p1",)).values == {"ws.trees": "100"}
    assert ws.load(alice, ("p2",)).values == {}
    assert ws.load(bob, (USER_SCOPE, "p1")).values == {}
    assert ws.revision(alice) == (1, "tab-a")


def test_two_writers_merge_by_key_and_learn_of_each_other(
    services: Services, users: tuple[int, int]
) -> None:
    ws = services.workspace
    alice, _ = users
    scope = project_scope(7)
    a = ws.save(alice, {scope: {"ws.x": encode(1)}}, writer="tab-a", known_revision=0)
    b = ws.save(alice, {scope: {"ws.y": encode(2)}}, writer="tab-b", known_revision=0)
    assert not a.others_wrote
    assert b.others_wrote  # tab-b had not seen tab-a's write
    assert b.revision == 2
    assert ws.load(alice, (scope,)).values == {"ws.x": "1", "ws.y": "2"}  # nothing lost
    c = ws.save(alice, {scope: {"ws.x": encode(3)}}, writer="tab-b", known_revision=2)
    assert not c.others_wrote
    assert ws.load(alice, (scope,)).values["ws.x"] == "3"  # the later writer wins


def test_replace_and_clear(services: Services, users: tuple[int, int]) -> None:
    ws = services.workspace
    alice, _ = users
    ws.save(
        alice,
        {"p1": {"ws.a": "1", "ws.b": "2"}, USER_SCOPE: {"wsu.page": '""'}},
        writer="t",
        known_revision=0,
    )
    ws.save(alice, {"p1": {"ws.c": "3"}}, writer="t", known_revision=1, replace=("p1",))
    assert ws.load(alice, ("p1",)).values == {"ws.c": "3"}
    revision = ws.clear(alice, writer="t")
    assert revision == 3
    assert ws.load(alice, ("p1", USER_SCOPE)).values == {}


def test_bad_keys_are_refused_and_nothing_is_written(
    services: Services, users: tuple[int, int]
) -> None:
    alice, _ = users
    with pytest.raises(InvalidInput, match="keys have 1 to 200"):
        services.workspace.save(alice, {"p1": {"x" * 201: "1"}}, writer="t", known_revision=0)
    assert services.workspace.revision(alice) == (0, "")
