"""Users, roles, login sessions and lockout.

Security notes (docs/security.md has the full model):
- Passwords are hashed with Argon2id; an unknown user name costs the same verification work as a
  known one and gets the same message, so login answers do not reveal which names exist.
- A session token is 256 random bits, given to the browser once; the database keeps only its
  SHA-256, so a leaked database does not yield usable cookies. Sessions end on logout, after an
  idle timeout, after an absolute lifetime, when revoked by an admin, and when the user is disabled
  or their password is reset.
- Failed logins are counted in the database per account (known or unknown names alike), per
  client address, and per account and address together, so a lockout survives restarts and is
  shared by all web replicas. A locked address is refused; a locked account is refused only to
  clients that have themselves failed on it, so an attacker cannot lock its owner out.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import secrets
import string
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, NoReturn

from sqlalchemy import and_, case, delete, func, literal, or_, select, update
from sqlalchemy.orm import Session

from crispml.core import passwords
from crispml.core.audit import AuditLog
from crispml.core.clock import Clock, utcnow
from crispml.core.errors import Conflict, InvalidInput, NotFound
from crispml.core.paging import PAGE_SIZE, Page, fetch
from crispml.store.db import Database
from crispml.store.tables import LoginSessionRow, LoginThrottleRow, UserRow, UTCDateTime
from crispml.store.upsert import upsert

Role = Literal["admin", "user"]
ROLES: tuple[Role, ...] = ("admin", "user")
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# "Last seen" is written back at most this often (less for short idle timeouts): see touch_interval.
MAX_TOUCH_INTERVAL = timedelta(seconds=60)
INVALID_LOGIN = "Invalid user name or password."
# The other half of the key of an account's own throttle row (address) or an address's (username).
ANY = "*"


def touch_interval(idle_timeout: timedelta) -> timedelta:
    """How stale "last seen" may get: a tenth of the idle timeout, at most a minute.

    The idle check allows this much on top of the timeout, so a session used within the timeout
    never ends; one left alone ends between the timeout and the timeout plus this interval.
    """
    return min(MAX_TOUCH_INTERVAL, idle_timeout / 10)


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role
    active: bool
    created_at: datetime
    code: bool = False  # may run code: job commands, JupyterLab (admins always may)
    network: bool = False  # the user's sandboxed processes may reach the network

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def may_run_code(self) -> bool:
        return self.is_admin or self.code


@dataclass(frozen=True)
class AuthSession:
    """A valid login session, as seen by the gate and the pages."""

    session_id: int
    user: User


@dataclass(frozen=True)
class NewSession:
    token: str  # the only time the raw token exists: it goes into the cookie
    session_id: int
    user: User


@dataclass(frozen=True)
class SessionInfo:
    id: int
    username: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str
    user_agent: str


@dataclass(frozen=True)
class AuthPolicy:
    session_idle_timeout: timedelta = timedelta(hours=8)
    session_lifetime: timedelta = timedelta(days=7)
    lockout_threshold: int = 5  # per account, and per account and client address
    lockout_window: timedelta = timedelta(minutes=15)
    lockout_duration: timedelta = timedelta(minutes=15)
    password_min_length: int = 8
    lockout_address_threshold: int = 20  # per client address, whatever the accounts


@dataclass(frozen=True)
class Lockout:
    """A locked account (address '*') or client address (username '*'), or one address's lock
    on one account."""

    username: str
    address: str
    failures: int
    locked_until: datetime


@dataclass(frozen=True)
class _Attempt:
    """Failures counted by _begin_attempt, this attempt included."""

    name: str
    address: str
    account: int
    pair: int
    from_address: int


class LoginFailed(Exception):
    """A refused login. ``str()`` is the message for the login page."""

    def __init__(self, message: str, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.retry_at = retry_at


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_password(length: int = 20) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def normalize_username(username: str) -> str:
    return username.strip().lower()


def validate_username(username: str) -> str:
    name = normalize_username(username)
    if not USERNAME_RE.fullmatch(name):
        raise InvalidInput(
            "A user name has 1 to 64 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return name


def _to_user(row: UserRow) -> User:
    role: Role = "admin" if row.role == "admin" else "user"
    return User(
        row.id,
        row.username,
        role,
        row.active,
        row.created_at,
        bool(row.code),
        bool(row.network),
    )


class AuthService:
    """Every account and login operation; pages, routes and the CLI all go through it."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        policy: AuthPolicy | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._db = db
        self._audit = audit
        self.policy = policy or AuthPolicy()
        self._clock = clock
        self._verify_slots = threading.BoundedSemaphore(max(2, os.cpu_count() or 2))
        self._touch_interval = touch_interval(self.policy.session_idle_timeout)
        # A session is idle once "last seen" is older than this (the timeout plus the staleness
        # "last seen" may have), so one used within the timeout never ends.
        self._idle_allowance = self.policy.session_idle_timeout + self._touch_interval

    # Users -------------------------------------------------------------------------------------

    def create_user(self, username: str, password: str, role: str = "user", *, actor: str) -> User:
        name = validate_username(username)
        checked_role = self._check_role(role)
        passwords.check_policy(password, username=name, min_length=self.policy.password_min_length)
        now = self._clock()
        with self._db.session() as s:
            if s.scalar(select(UserRow.id).where(UserRow.username == name)) is not None:
                raise Conflict(f"The user name '{name}' is taken.")
            row = UserRow(
                username=name,
                password_hash=passwords.hash_password(password),
                role=checked_role,
                active=True,
                created_at=now,
                password_changed_at=now,
            )
            s.add(row)
            self._audit.add(s, actor, "user.create", name, f"role={checked_role}")
            s.flush()
            return _to_user(row)

    def list_users(self) -> list[User]:
        """Every account (the CLI's listing); pages read ``users_page``."""
        with self._db.session() as s:
            return [_to_user(r) for r in s.scalars(select(UserRow).order_by(UserRow.username))]

    def users_page(self, *, search: str = "", number: int = 1, size: int = PAGE_SIZE) -> Page[User]:
        """One page of the accounts by name; ``search`` keeps the names containing it."""
        query = select(UserRow).order_by(UserRow.username)
        if search:
            query = query.where(
                func.lower(UserRow.username).contains(search.lower(), autoescape=True)
            )
        with self._db.session() as s:
            return fetch(s, query, _to_user, number=number, size=size)

    def get_user(self, username: str) -> User:
        with self._db.session() as s:
            return _to_user(self._user_row(s, username))

    def first_admin(self) -> User | None:
        """The oldest active admin: the default ``--user`` of CLI commands."""
        query = (
            select(UserRow)
            .where(UserRow.role == "admin", UserRow.active.is_(True))
            .order_by(UserRow.id)
            .limit(1)
        )
        with self._db.session() as s:
            row = s.scalar(query)
            return _to_user(row) if row else None

    def ensure_first_admin(self, username: str, password: str | None) -> str | None:
        """Create the first admin when there is none. Returns the password if it was generated."""
        if self.first_admin() is not None:
            return None
        generated = password is None
        secret = password if password is not None else generate_password()
        self.create_user(username, secret, "admin", actor="system")
        return secret if generated else None

    def set_password(self, username: str, password: str, *, actor: str) -> None:
        """Set a new password; every session of that user ends."""
        with self._db.session() as s:
            row = self._user_row(s, username)
            passwords.check_policy(
                password, username=row.username, min_length=self.policy.password_min_length
            )
            row.password_hash = passwords.hash_password(password)
            row.password_changed_at = self._clock()
            self._revoke_user_sessions(s, row.id)
            self._audit.add(s, actor, "user.password", row.username)

    def change_own_password(
        self, username: str, current: str, new: str, *, keep_session_id: int
    ) -> None:
        """A user changes their own password; their other sessions end, this one stays."""
        name = normalize_username(username)
        with self._db.session() as s:
            here = s.get(LoginSessionRow, keep_session_id)
            address = here.ip if here is not None else ""
        try:
            attempt = self._begin_attempt(name, address, current)
            with self._db.session() as s:
                stored = self._user_row(s, name).password_hash
            if not self._verify(stored, current):
                self._fail_attempt(attempt)
        except LoginFailed as exc:
            message = str(exc)
            wrong = "The current password is not right."
            raise InvalidInput(wrong if message == INVALID_LOGIN else message) from None
        with self._db.session() as s:
            row = self._user_row(s, name)
            self._forget_attempt(s, attempt)
            passwords.check_policy(
                new, username=row.username, min_length=self.policy.password_min_length
            )
            row.password_hash = passwords.hash_password(new)
            row.password_changed_at = self._clock()
            self._revoke_user_sessions(s, row.id, except_id=keep_session_id)
            self._audit.add(s, row.username, "user.password.own", row.username)

    def set_active(self, username: str, active: bool, *, actor: str) -> None:
        """Disable (ending every session) or enable an account; the last admin stays enabled."""
        with self._db.session() as s:
            row = self._user_row(s, username)
            if not active and row.role == "admin":
                self._refuse_last_admin(s, row, "disable")
            row.active = active
            if not active:
                self._revoke_user_sessions(s, row.id)
            self._audit.add(s, actor, "user.enable" if active else "user.disable", row.username)

    def set_code(self, username: str, allowed: bool, *, actor: str) -> None:
        """Allow or deny a user running code (job commands, JupyterLab), always sandboxed."""
        with self._db.session() as s:
            row = self._user_row(s, username)
            row.code = allowed
            action = "user.code.allow" if allowed else "user.code.deny"
            self._audit.add(s, actor, action, row.username)

    def set_network(self, username: str, allowed: bool, *, actor: str) -> None:
        """Allow or deny a user's sandboxed processes the network."""
        with self._db.session() as s:
            row = self._user_row(s, username)
            row.network = allowed
            action = "user.network.allow" if allowed else "user.network.deny"
            self._audit.add(s, actor, action, row.username)

    def set_role(self, username: str, role: str, *, actor: str) -> None:
        checked_role = self._check_role(role)
        with self._db.session() as s:
            row = self._user_row(s, username)
            if row.role == "admin" and checked_role != "admin":
                self._refuse_last_admin(s, row, "demote")
            row.role = checked_role
            self._audit.add(s, actor, "user.role", row.username, f"role={checked_role}")

    # Login sessions ---------------------------------------------------------------------------

    def login(
        self, username: str, password: str, *, ip: str = "", user_agent: str = ""
    ) -> NewSession:
        """Check credentials and open a session, or raise LoginFailed with the page's message.

        ``ip`` is the client's address: failures are counted per account, per address and per
        both (see _begin_attempt). The attempt is counted before the password is checked, in one
        atomic statement, so parallel guesses cannot slip past the lockout.
        """
        name = normalize_username(username)
        if not USERNAME_RE.fullmatch(name):  # can never be an account: no database work
            self._verify(None, password)
            raise LoginFailed(INVALID_LOGIN)
        attempt = self._begin_attempt(name, ip, password)
        with self._db.session() as s:
            row = s.scalar(select(UserRow).where(UserRow.username == name))
            password_hash = row.password_hash if row else None
        if not self._verify(password_hash, password) or row is None:
            self._fail_attempt(attempt)
        if not row.active:
            self._audit.record(name, "login.disabled", detail=f"ip={ip}")
            raise LoginFailed("This account is disabled. Ask an administrator.")
        now = self._clock()
        with self._db.session() as s:
            self._forget_attempt(s, attempt)
            user_row = s.get(UserRow, row.id)
            if user_row is not None and passwords.needs_rehash(user_row.password_hash):
                user_row.password_hash = passwords.hash_password(password)
            token = secrets.token_urlsafe(32)
            session_row = LoginSessionRow(
                token_hash=hash_token(token),
                user_id=row.id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + self.policy.session_lifetime,
                ip=ip[:64],
                user_agent=user_agent[:255],
            )
            s.add(session_row)
            self._audit.add(s, name, "login", detail=f"ip={ip}")
            s.flush()
            return NewSession(token, session_row.id, _to_user(row))

    def authenticate(self, token: str | None) -> AuthSession | None:
        """The session behind a cookie token, or None if it is unknown, ended or expired."""
        if not token or len(token) > 256:
            return None
        now = self._clock()
        with self._db.session() as s:
            found = s.execute(
                select(LoginSessionRow, UserRow)
                .join(UserRow, UserRow.id == LoginSessionRow.user_id)
                .where(LoginSessionRow.token_hash == hash_token(token))
            ).first()
            if found is None:
                return None
            session_row, user_row = found
            if (
                session_row.revoked_at is not None
                or not user_row.active
                or now >= session_row.expires_at
                or now >= session_row.last_seen_at + self._idle_allowance
            ):
                return None
            if now - session_row.last_seen_at >= self._touch_interval:
                session_row.last_seen_at = now
            return AuthSession(session_row.id, _to_user(user_row))

    def logout(self, token: str | None) -> None:
        if not token:
            return
        with self._db.session() as s:
            row = s.scalar(
                select(LoginSessionRow).where(LoginSessionRow.token_hash == hash_token(token))
            )
            if row is not None and row.revoked_at is None:
                row.revoked_at = self._clock()
                user = s.get(UserRow, row.user_id)
                self._audit.add(s, user.username if user else "?", "logout")

    def list_sessions(self, username: str | None = None) -> list[SessionInfo]:
        """Sessions that are still valid, newest first; all users' when ``username`` is None."""
        now = self._clock()
        query = (
            select(LoginSessionRow, UserRow.username)
            .join(UserRow, UserRow.id == LoginSessionRow.user_id)
            .where(
                LoginSessionRow.revoked_at.is_(None),
                LoginSessionRow.expires_at > now,
                LoginSessionRow.last_seen_at > now - self._idle_allowance,
            )
            .order_by(LoginSessionRow.id.desc())
        )
        if username is not None:
            query = query.where(UserRow.username == normalize_username(username))
        with self._db.session() as s:
            return [
                SessionInfo(
                    r.id,
                    name,
                    r.created_at,
                    r.last_seen_at,
                    min(r.expires_at, r.last_seen_at + self._idle_allowance),
                    r.ip,
                    r.user_agent,
                )
                for r, name in s.execute(query)
            ]

    def revoke_session(self, session_id: int, *, actor: str, owner: str | None = None) -> None:
        """End a session; with ``owner``, only if it belongs to that user."""
        with self._db.session() as s:
            row = s.get(LoginSessionRow, session_id)
            user = s.get(UserRow, row.user_id) if row else None
            if row is None or (owner is not None and (user is None or user.username != owner)):
                raise NotFound(f"No session {session_id}.")
            if row.revoked_at is None:
                row.revoked_at = self._clock()
            self._audit.add(s, actor, "session.revoke", str(session_id))

    def count_active_sessions(self) -> int:
        now = self._clock()
        with self._db.session() as s:
            return int(
                s.scalar(
                    select(func.count(LoginSessionRow.id)).where(
                        LoginSessionRow.revoked_at.is_(None),
                        LoginSessionRow.expires_at > now,
                        LoginSessionRow.last_seen_at > now - self._idle_allowance,
                    )
                )
                or 0
            )

    # Lockouts ---------------------------------------------------------------------------------

    def list_lockouts(self) -> list[Lockout]:
        """What is locked now: accounts (address '*'), client addresses (username '*'), and
        addresses locked out of one account; soonest to end first."""
        now = self._clock()
        query = (
            select(LoginThrottleRow)
            .where(LoginThrottleRow.locked_until > now)
            .order_by(LoginThrottleRow.locked_until, LoginThrottleRow.username)
        )
        with self._db.session() as s:
            return [
                Lockout(r.username, r.address, r.failures, r.locked_until)
                for r in s.scalars(query)
                if r.locked_until is not None
            ]

    def unlock(self, target: str, *, actor: str) -> int:
        """Clear the failed logins and locks of an account (a user name) or of a client address
        (an IP address; for IPv6, its /64), on every account. For admins: ``crispml user
        unlock``. Returns how many records were removed; 0 means nothing was counted."""
        text = target.strip()
        if not text or text == ANY:
            raise InvalidInput("Give a user name or a client IP address to unlock.")
        try:
            address = ipaddress.ip_network(text, strict=False).network_address
            column, key = LoginThrottleRow.address, client_key(str(address))
        except ValueError:
            column, key = LoginThrottleRow.username, normalize_username(text)
        with self._db.session() as s:
            removed = int(
                s.scalar(select(func.count()).select_from(LoginThrottleRow).where(column == key))
                or 0
            )
            s.execute(delete(LoginThrottleRow).where(column == key))
            self._audit.add(s, actor, "login.unlock", key, f"records={removed}")
        return removed

    # Internals --------------------------------------------------------------------------------

    def _user_row(self, s: Session, username: str) -> UserRow:
        row = s.scalar(select(UserRow).where(UserRow.username == normalize_username(username)))
        if row is None:
            raise NotFound(f"No user named '{normalize_username(username)}'.")
        return row

    @staticmethod
    def _check_role(role: str) -> Role:
        for known in ROLES:
            if role == known:
                return known
        raise InvalidInput(f"Unknown role '{role}'; use one of: {', '.join(ROLES)}.")

    @staticmethod
    def _refuse_last_admin(s: Session, row: UserRow, verb: str) -> None:
        others = s.scalar(
            select(func.count(UserRow.id)).where(
                UserRow.role == "admin", UserRow.active.is_(True), UserRow.id != row.id
            )
        )
        if not others:
            raise Conflict(f"Cannot {verb} '{row.username}': it is the last active admin.")

    def _revoke_user_sessions(self, s: Session, user_id: int, except_id: int = 0) -> None:
        s.execute(
            update(LoginSessionRow)
            .where(
                LoginSessionRow.user_id == user_id,
                LoginSessionRow.revoked_at.is_(None),
                LoginSessionRow.id != except_id,
            )
            .values(revoked_at=self._clock())
        )

    def _verify(self, password_hash: str | None, password: str) -> bool:
        """Argon2id verification, at most a few at once: each costs 64 MiB and a core."""
        with self._verify_slots:
            return passwords.verify_password(password_hash, password)

    def _begin_attempt(self, name: str, ip: str, password: str) -> _Attempt:
        """Count an attempt on ``name`` from ``ip`` atomically, before the password is checked.

        Refuses (LoginFailed) when this client may not try now:
        - its address is locked (lockout_address_threshold failures from it, any accounts);
        - its address is locked for this account (lockout_threshold failures from it on it);
        - the account is locked (lockout_threshold failures from anywhere) and this client has
          tried it before in the window. A client that has not may still try once, so an
          attacker cannot lock the owner out.
        Attempts in flight count as failures until they succeed, so parallel guesses cannot slip
        past a threshold; a refused attempt is not counted.
        """
        address = client_key(ip)
        now = self._clock()
        table = LoginThrottleRow.__table__
        keys = [(name, ANY), (name, address)]
        if address:  # an unknown address is no one's in particular: never locked as a whole
            keys.append((ANY, address))
        # A row starts over when its lock has ended, or when unlocked and its window has passed.
        reset = or_(
            and_(
                table.c.locked_until.is_(None),
                table.c.window_start <= now - self.policy.lockout_window,
            ),
            and_(table.c.locked_until.is_not(None), table.c.locked_until <= now),
        )
        refusals: list[tuple[datetime, bool]] = []
        with self._db.session() as s:
            returned = upsert(
                s,
                table,
                [
                    {
                        "username": u,
                        "address": a,
                        "failures": 1,
                        "window_start": now,
                        "locked_until": None,
                    }
                    for u, a in keys
                ],
                keys=["username", "address"],
                update={
                    "failures": case((reset, 1), else_=table.c.failures + 1),
                    "window_start": case(
                        (reset, literal(now, UTCDateTime())), else_=table.c.window_start
                    ),
                    "locked_until": case((reset, None), else_=table.c.locked_until),
                },
                returning=["username", "address", "failures", "locked_until"],
            )
            counts = {(u, a): (int(f), _utc(until)) for u, a, f, until in returned}
            account, pair = counts[(name, ANY)], counts[(name, address)]
            from_address = counts.get((ANY, address), (0, None))
            # Each row, its counts, and how many attempts in flight it allows (None: no limit).
            limits: list[tuple[tuple[str, str], tuple[int, datetime | None], int | None]] = [
                ((name, address), pair, self.policy.lockout_threshold)
            ]
            if address:
                # Only a lock refuses here, not attempts in flight: many people behind one
                # address logging in at once are not an attack. Guesses at many accounts at
                # once overshoot the threshold by at most the server's concurrency.
                limits.append(((ANY, address), from_address, None))
            if pair[0] > 1:  # this client has tried this account before: the account's lock
                limits.append(((name, ANY), account, self.policy.lockout_threshold))
            for (u, a), (failures, until), limit in limits:
                if until is None and limit is not None and failures > limit:
                    until = now + self.policy.lockout_duration
                    s.execute(
                        update(LoginThrottleRow)
                        .where(
                            LoginThrottleRow.username == u,
                            LoginThrottleRow.address == a,
                            LoginThrottleRow.locked_until.is_(None),
                        )
                        .values(locked_until=until)
                    )
                if until is not None:
                    refusals.append((until, u == ANY))
            if refusals:  # refused unchecked: not a failure (the address's count stays fair)
                s.execute(
                    update(LoginThrottleRow)
                    .where(
                        or_(
                            *(
                                and_(LoginThrottleRow.username == u, LoginThrottleRow.address == a)
                                for u, a in keys
                            )
                        ),
                        LoginThrottleRow.failures > 0,
                    )
                    .values(failures=LoginThrottleRow.failures - 1)
                )
        if refusals:
            self._verify(None, password)  # the same work as a real attempt
            until, by_address = max(refusals)
            raise LoginFailed(self._locked_message(until, by_address), until)
        return _Attempt(name, address, account[0], pair[0], from_address[0])

    def _fail_attempt(self, attempt: _Attempt) -> NoReturn:
        """The attempt counted by _begin_attempt failed: lock what reached its threshold."""
        now = self._clock()
        name, address = attempt.name, attempt.address
        limits = [
            ((name, address), attempt.pair, self.policy.lockout_threshold),
            # This client has now failed on the account, so the account's lock is its too.
            ((name, ANY), attempt.account, self.policy.lockout_threshold),
        ]
        if address:
            limits.append(
                ((ANY, address), attempt.from_address, self.policy.lockout_address_threshold)
            )
        locks: list[tuple[datetime, bool]] = []
        with self._db.session() as s:
            for (u, a), failures, limit in limits:
                if failures < limit:
                    continue
                where = (LoginThrottleRow.username == u, LoginThrottleRow.address == a)
                s.execute(
                    update(LoginThrottleRow)
                    .where(*where, LoginThrottleRow.locked_until.is_(None))
                    .values(locked_until=now + self.policy.lockout_duration)
                )
                until = s.scalar(select(LoginThrottleRow.locked_until).where(*where))
                if until is not None:
                    locks.append((until, u == ANY))
            # Forget rows whose window has passed, so made-up names cannot fill the table.
            s.execute(
                delete(LoginThrottleRow).where(
                    LoginThrottleRow.window_start < now - self.policy.lockout_window,
                    or_(
                        LoginThrottleRow.locked_until.is_(None),
                        LoginThrottleRow.locked_until < now,
                    ),
                )
            )
            self._audit.add(s, name, "login.failed", detail=f"ip={address}")
        if locks:
            until, by_address = max(locks)
            raise LoginFailed(self._locked_message(until, by_address), until)
        raise LoginFailed(INVALID_LOGIN)

    def _forget_attempt(self, s: Session, attempt: _Attempt) -> None:
        """The attempt succeeded: the account and this client start afresh on it; the address
        keeps its other failures (a login to one's own account does not excuse guessing)."""
        s.execute(
            delete(LoginThrottleRow).where(
                LoginThrottleRow.username == attempt.name,
                LoginThrottleRow.address.in_([ANY, attempt.address]),
            )
        )
        if attempt.address:
            s.execute(
                update(LoginThrottleRow)
                .where(
                    LoginThrottleRow.username == ANY,
                    LoginThrottleRow.address == attempt.address,
                    LoginThrottleRow.failures > 0,
                )
                .values(failures=LoginThrottleRow.failures - 1)
            )

    def _locked_message(self, until: datetime, by_address: bool = False) -> str:
        minutes = max(1, round((until - self._clock()).total_seconds() / 60))
        source = " from your network address" if by_address else ""
        return (
            f"Too many failed attempts{source}. Try again after "
            f"{until:%H:%M} UTC (in about {minutes} minute{'s' if minutes != 1 else ''})."
        )


def _utc(value: datetime | None) -> datetime | None:
    """RETURNING bypasses the UTC column type: naive values are UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def client_key(ip: str) -> str:
    """The address failed logins are counted under: an IPv4 address, or an IPv6 client's /64
    network (one subscriber's usual allocation, so a client cannot dodge the count by changing
    addresses within it). Anything else is kept as given; '' is unknown."""
    text = ip.strip()
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        return text[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        if not parsed.is_loopback:
            return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


SESSION_COOKIE = "crispml_session"
