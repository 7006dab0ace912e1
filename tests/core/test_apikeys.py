"""API keys: shown once, stored hashed, scoped, revocable, last-used time (SQLite and
PostgreSQL)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from crispml.core.apikeys import ApiKeyService
from crispml.core.errors import InvalidInput, NotFound
from crispml.services import Services
from crispml.store.tables import ApiKeyRow


def test_a_key_is_shown_once_and_stored_hashed(services: Services) -> None:
    admin = services.auth.first_admin()
    key, plain = services.apikeys.create(admin, "client A", ["iris-best"])
    assert plain.startswith(f"cml_{key.key_id}_") and len(plain) == 4 + 12 + 1 + 43
    with services.db.session() as s:
        row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_id == key.key_id))
        assert row is not None and plain not in (row.key_hash, row.name, row.models)
        assert row.key_hash == hashlib.sha256(plain.encode()).hexdigest()
    found = services.apikeys.verify(plain)
    assert found is not None and found.allows("iris-best", admin.id)
    assert not found.allows("other", admin.id)
    assert found.last_used_at is not None
    assert services.apikeys.verify(plain[:-1] + ("A" if plain[-1] != "A" else "B")) is None
    assert services.apikeys.verify("") is None and services.apikeys.verify(None) is None
    assert services.apikeys.verify("Bearer " + plain) is None
    everything, _ = services.apikeys.create(admin, "all models")
    assert everything.models == () and everything.allows("anything", admin.id)


def test_revoked_keys_stop_working_and_owners_are_kept_apart(services: Services) -> None:
    admin = services.auth.first_admin()
    services.auth.create_user("nina", "lilac-harbor-93", actor="test")
    nina = services.auth.get_user("nina")
    key, plain = services.apikeys.create(nina, "nina's")
    assert [k.key_id for k in services.apikeys.all(nina)] == [key.key_id]
    mine, _ = services.apikeys.create(admin, "admin's")
    assert {k.key_id for k in services.apikeys.all(admin)} == {key.key_id, mine.key_id}
    with pytest.raises(NotFound):
        services.apikeys.revoke(nina, mine.key_id)  # not hers
    # A user's key reaches only her own models; an admin's key reaches anyone's.
    hers = services.apikeys.verify(plain)
    assert hers is not None and not hers.owner_is_admin
    assert hers.allows("nina-model", nina.id) and not hers.allows("admin-model", admin.id)
    admins = services.apikeys.verify(services.apikeys.create(admin, "any")[1])
    assert admins is not None and admins.allows("nina-model", nina.id)
    # A disabled account's keys stop working, and work again when it is enabled.
    services.auth.set_active("nina", False, actor="test")
    assert services.apikeys.verify(plain) is None
    services.auth.set_active("nina", True, actor="test")
    assert services.apikeys.verify(plain) is not None
    revoked = services.apikeys.revoke(nina, key.key_id)
    assert not revoked.active and services.apikeys.verify(plain) is None
    actions = [e.action for e in services.audit.recent(10)]
    assert "apikey.create" in actions and "apikey.revoke" in actions
    with pytest.raises(InvalidInput):
        services.apikeys.create(nina, "  ")


def test_last_used_is_written_at_most_once_a_minute(services: Services) -> None:
    now = [datetime(2026, 11, 24, 12, 0, tzinfo=UTC)]
    keys = ApiKeyService(services.db, services.audit, clock=lambda: now[0])
    admin = services.auth.first_admin()
    _, plain = keys.create(admin, "clocked")
    first = keys.verify(plain)
    assert first is not None and first.last_used_at == now[0]
    now[0] += timedelta(seconds=30)
    assert keys.verify(plain).last_used_at == first.last_used_at  # type: ignore[union-attr]
    now[0] += timedelta(seconds=31)
    assert keys.verify(plain).last_used_at == now[0]  # type: ignore[union-attr]


def test_keys_are_listed_a_page_at_a_time_with_their_owners(services: Services) -> None:
    admin = services.auth.first_admin()
    nina = services.auth.create_user("nina", "lilac-harbor-93", actor="test")
    for i in range(3):
        services.apikeys.create(nina, f"nina {i}")
    services.apikeys.create(admin, "admin's")
    first = services.apikeys.page(admin, size=3)
    assert [(k.name, k.owner, k.owner_is_admin) for k in first.items] == [
        ("admin's", "admin", True), ("nina 2", "nina", False), ("nina 1", "nina", False),
    ]  # fmt: skip
    assert (first.total, first.pages) == (4, 2)
    assert [k.name for k in services.apikeys.page(admin, number=2, size=3).items] == ["nina 0"]
    hers = services.apikeys.page(nina, size=10)
    assert hers.total == 3 and {k.owner for k in hers.items} == {"nina"}
