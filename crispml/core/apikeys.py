"""API keys for the model API: shown once, stored hashed, scoped to models, revocable, with the
time they were last used.

A key reads ``cml_<key id>_<secret>``: the key id (public, 12 hex characters) finds the row, and
the SHA-256 of the whole key is compared in constant time. The secret is 256 random bits, so a
fast hash is enough (a slow password hash would add milliseconds to every request for nothing).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from crispml.core.audit import AuditLog
from crispml.core.auth import User
from crispml.core.clock import Clock, utcnow
from crispml.core.errors import InvalidInput, NotFound
from crispml.core.paging import PAGE_SIZE, Page, fetch
from crispml.store.db import Database
from crispml.store.tables import ApiKeyRow, UserRow

PREFIX = "cml_"
_KEY = re.compile(r"^cml_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
TOUCH_EVERY = timedelta(seconds=60)  # last-used time is written at most this often per key
MAX_NAME = 100


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    owner_id: int
    name: str
    models: tuple[str, ...]  # empty: every deployed model its owner may use
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    owner_is_admin: bool = False  # as of the last verification
    owner: str = ""  # the owner's name, where the key was read with it

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, model: str, model_owner_id: int) -> bool:
        """Whether the key may use the model: one of its owner's (any, for an admin's key),
        and within its scope when it has one."""
        mine = self.owner_is_admin or model_owner_id == self.owner_id
        return mine and (not self.models or model in self.models)

    @property
    def shown(self) -> str:
        """How a key is shown after creation: its public part only."""
        return f"{PREFIX}{self.key_id}_…"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _to_key(row: ApiKeyRow, owner_is_admin: bool = False) -> ApiKey:
    return ApiKey(
        row.key_id,
        row.owner_id,
        row.name,
        tuple(json.loads(row.models or "[]")),
        row.created_at,
        row.last_used_at,
        row.revoked_at,
        owner_is_admin,
    )


def _to_owned_key(row: Any) -> ApiKey:
    key, owner, role = row
    return replace(_to_key(key, role == "admin"), owner=owner)


class ApiKeyService:
    def __init__(self, db: Database, audit: AuditLog, clock: Clock = utcnow) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock

    def create(self, user: User, name: str, models: list[str] | None = None) -> tuple[ApiKey, str]:
        """A new key; the plain key is returned this once and never stored."""
        name = name.strip()
        if not name or len(name) > MAX_NAME:
            raise InvalidInput(f"A key needs a name of 1 to {MAX_NAME} characters.")
        scope = sorted({m.strip() for m in models or [] if m.strip()})
        key_id = secrets.token_hex(6)
        plain = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        with self._db.session() as s:
            row = ApiKeyRow(
                key_id=key_id,
                owner_id=user.id,
                name=name,
                key_hash=_digest(plain),
                models=json.dumps(scope),
                created_at=self._clock(),
            )
            s.add(row)
            self._audit.add(
                s, user.username, "apikey.create", key_id, f"{name}; models={scope or 'all'}"
            )
            s.flush()
            return _to_key(row), plain

    def all(self, user: User) -> list[ApiKey]:
        """The user's keys (admins: everyone's), newest first: the CLI's listing."""
        with self._db.session() as s:
            query = select(ApiKeyRow).order_by(ApiKeyRow.id.desc())
            if not user.is_admin:
                query = query.where(ApiKeyRow.owner_id == user.id)
            return [_to_key(r) for r in s.scalars(query)]

    def page(self, user: User, *, number: int = 1, size: int = PAGE_SIZE) -> Page[ApiKey]:
        """One page of the user's keys (admins: everyone's), newest first, each with its
        owner's name and whether the owner is an admin."""
        query = (
            select(ApiKeyRow, UserRow.username, UserRow.role)
            .join(UserRow, UserRow.id == ApiKeyRow.owner_id)
            .order_by(ApiKeyRow.id.desc())
        )
        if not user.is_admin:
            query = query.where(ApiKeyRow.owner_id == user.id)
        with self._db.session() as s:
            return fetch(s, query, _to_owned_key, number=number, size=size, scalars=False)

    def revoke(self, user: User, key_id: str) -> ApiKey:
        with self._db.session() as s:
            row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id))
            if row is None or (row.owner_id != user.id and not user.is_admin):
                raise NotFound(f"No API key {key_id}.")
            if row.revoked_at is None:
                row.revoked_at = self._clock()
                self._audit.add(s, user.username, "apikey.revoke", key_id, row.name)
            return _to_key(row)

    def verify(self, presented: str | None) -> ApiKey | None:
        """The active key ``presented`` is, or None (also when its owner's account is
        disabled); notes when it was used."""
        match = _KEY.fullmatch((presented or "").strip())
        if match is None:
            return None
        with self._db.session() as s:
            found = s.execute(
                select(ApiKeyRow, UserRow.role, UserRow.active)
                .join(UserRow, UserRow.id == ApiKeyRow.owner_id)
                .where(ApiKeyRow.key_id == match.group(1))
            ).first()
            if found is None:
                return None
            row, role, active = found
            if row.revoked_at is not None or not active:
                return None
            if not hmac.compare_digest(row.key_hash, _digest(match.group(0))):
                return None
            now = self._clock()
            if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
                row.last_used_at = now
            return _to_key(row, owner_is_admin=role == "admin")
