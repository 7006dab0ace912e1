"""Accounts, sessions and lockout, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from crispml.core.audit import AuditLog
from crispml.core.auth import INVALID_LOGIN, AuthPolicy, AuthService, LoginFailed
from crispml.core.errors import Conflict, InvalidInput, NotFound
from crispml.store.db import Database

PASSWORD = "lilac-harbor-93"


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def auth(db: Database, clock: FakeClock) -> AuthService:
    policy = AuthPolicy(
        session_idle_timeout=timedelta(hours=1), session_lifetime=timedelta(hours=5)
    )
    service = AuthService(db, AuditLog(db, clock), policy, clock)
    service.create_user("admin", PASSWORD, "admin", actor="test")
    service.create_user("alice", PASSWORD, "user", actor="test")
    return service


def test_login_gives_a_fresh_token_each_time_and_stores_only_its_hash(
    auth: AuthService, db: Database
) -> None:
    first = auth.login("alice", PASSWORD)
    second = auth.login("Alice ", PASSWORD)  # names are case-insensitive and trimmed
    assert first.token != second.token
    assert len(first.token) >= 32  # 256 random bits, url-safe base64
    with db.engine.connect() as conn:
        stored = [r[0] for r in conn.execute(text("SELECT token_hash FROM login_sessions"))]
    assert first.token not in stored and second.token not in stored
    assert auth.authenticate(first.token).user.username == "alice"


def test_wrong_password_and_unknown_user_get_the_same_message(auth: AuthService) -> None:
    with pytest.raises(LoginFailed) as wrong:
        auth.login("alice", "not-the-password")
    with pytest.raises(LoginFailed) as unknown:
        auth.login("nobody", "not-the-password")
    assert str(wrong.value) == str(unknown.value) == INVALID_LOGIN


def test_lockout_after_five_failures_survives_a_restart_and_expires(
    auth: AuthService, db: Database, clock: FakeClock
) -> None:
    for _ in range(4):
        with pytest.raises(LoginFailed, match="Invalid"):
            auth.login("alice", "wrong-password")
    with pytest.raises(LoginFailed, match="Too many failed attempts") as fifth:
        auth.login("alice", "wrong-password")
    assert fifth.value.retry_at == clock.now + timedelta(minutes=15)
    # A new service on the same database (a restart) still refuses, even the right password.
    restarted = AuthService(db, AuditLog(db, clock), auth.policy, clock)
    with pytest.raises(LoginFailed, match="Try again after 12:15 UTC"):
        restarted.login("alice", PASSWORD)
    clock.advance(minutes=15, seconds=1)
    assert restarted.login("alice", PASSWORD).user.username == "alice"


def test_unknown_user_names_lock_out_the_same_way(auth: AuthService) -> None:
    for _ in range(4):
        with pytest.raises(LoginFailed, match="Invalid"):
            auth.login("ghost", "wrong-password")
    with pytest.raises(LoginFailed, match="Too many failed attempts"):
        auth.login("ghost", "wrong-password")


def test_failures_outside_the_window_do_not_add_up(auth: AuthService, clock: FakeClock) -> None:
    for _ in range(4):
        with pytest.raises(LoginFailed):
            auth.login("alice", "wrong-password")
    clock.advance(minutes=16)
    with pytest.raises(LoginFailed, match="Invalid"):
        auth.login("alice", "wrong-password")
    assert auth.login("alice", PASSWORD)


def test_success_resets_the_failure_count(auth: AuthService) -> None:
    for _ in range(4):
        with pytest.raises(LoginFailed):
            auth.login("alice", "wrong-password")
    auth.login("alice", PASSWORD)
    for _ in range(4):
        with pytest.raises(LoginFailed, match="Invalid"):
            auth.login("alice", "wrong-password")


def test_idle_timeout_and_absolute_lifetime(auth: AuthService, clock: FakeClock) -> None:
    token = auth.login("alice", PASSWORD).token
    for _ in range(4):  # active every 50 minutes: idle never reached
        clock.advance(minutes=50)
        assert auth.authenticate(token) is not None
    clock.advance(minutes=61)  # 4h20 since login, idle for 61 minutes
    assert auth.authenticate(token) is None
    token = auth.login("alice", PASSWORD).token
    for _ in range(6):
        clock.advance(minutes=50)
        auth.authenticate(token)
    assert auth.authenticate(token) is None  # 5 hours: absolute lifetime


def test_logout_revokes_server_side(auth: AuthService) -> None:
    token = auth.login("alice", PASSWORD).token
    other = auth.login("alice", PASSWORD).token
    auth.logout(token)
    assert auth.authenticate(token) is None
    assert auth.authenticate(other) is not None


@pytest.mark.parametrize("token", [None, "", "forged-token", "x" * 5000])
def test_forged_tokens_are_refused(auth: AuthService, token: str | None) -> None:
    assert auth.authenticate(token) is None


def test_disable_and_password_reset_end_sessions(auth: AuthService) -> None:
    token = auth.login("alice", PASSWORD).token
    auth.set_active("alice", False, actor="admin")
    assert auth.authenticate(token) is None
    with pytest.raises(LoginFailed, match="disabled"):
        auth.login("alice", PASSWORD)
    auth.set_active("alice", True, actor="admin")
    token = auth.login("alice", PASSWORD).token
    auth.set_password("alice", "new-orchid-771", actor="admin")
    assert auth.authenticate(token) is None
    assert auth.login("alice", "new-orchid-771")


def test_admin_sees_and_revokes_sessions(auth: AuthService) -> None:
    a = auth.login("alice", PASSWORD, ip="10.0.0.7", user_agent="Firefox")
    auth.login("admin", PASSWORD)
    listed = auth.list_sessions()
    assert {s.username for s in listed} == {"alice", "admin"}
    mine = auth.list_sessions("alice")
    assert [(s.ip, s.user_agent) for s in mine] == [("10.0.0.7", "Firefox")]
    auth.revoke_session(a.session_id, actor="admin")
    assert auth.authenticate(a.token) is None
    assert [s.username for s in auth.list_sessions()] == ["admin"]
    with pytest.raises(NotFound):
        auth.revoke_session(99999, actor="admin")


def test_user_management_rules(auth: AuthService) -> None:
    with pytest.raises(Conflict, match="taken"):
        auth.create_user("ALICE", "other-pass-123", actor="t")
    with pytest.raises(InvalidInput, match="user name"):
        auth.create_user("../etc", "other-pass-123", actor="t")
    with pytest.raises(InvalidInput, match="role"):
        auth.create_user("bob", "other-pass-123", "root", actor="t")
    with pytest.raises(InvalidInput, match="common"):
        auth.create_user("bob", "password1", actor="t")
    with pytest.raises(Conflict, match="last active admin"):
        auth.set_active("admin", False, actor="t")
    with pytest.raises(Conflict, match="last active admin"):
        auth.set_role("admin", "user", actor="t")
    auth.set_role("alice", "admin", actor="t")
    auth.set_role("admin", "user", actor="t")
    assert auth.first_admin().username == "alice"
    assert [(u.username, u.role) for u in auth.list_users()] == [
        ("admin", "user"),
        ("alice", "admin"),
    ]


def test_ensure_first_admin_generates_a_password_once(db: Database) -> None:
    service = AuthService(db, AuditLog(db))
    generated = service.ensure_first_admin("root", None)
    assert generated and len(generated) >= 16
    assert service.login("root", generated).user.is_admin
    assert service.ensure_first_admin("root", None) is None


def test_change_own_password_keeps_this_session_only(auth: AuthService) -> None:
    here = auth.login("alice", PASSWORD)
    elsewhere = auth.login("alice", PASSWORD)
    with pytest.raises(InvalidInput, match="current password is not right"):
        auth.change_own_password(
            "alice", "wrong", "new-orchid-771", keep_session_id=here.session_id
        )
    with pytest.raises(InvalidInput, match="common"):
        auth.change_own_password("alice", PASSWORD, "password1", keep_session_id=here.session_id)
    auth.change_own_password("alice", PASSWORD, "new-orchid-771", keep_session_id=here.session_id)
    assert auth.authenticate(here.token) is not None
    assert auth.authenticate(elsewhere.token) is None
    assert auth.login("alice", "new-orchid-771")


def test_users_revoke_only_their_own_sessions(auth: AuthService) -> None:
    admin = auth.login("admin", PASSWORD)
    with pytest.raises(NotFound):
        auth.revoke_session(admin.session_id, actor="alice", owner="alice")
    assert auth.authenticate(admin.token) is not None


def test_parallel_guesses_cannot_slip_past_the_lockout(auth: AuthService) -> None:
    """Twelve wrong guesses at once (the reviewer's attack): the account ends up locked and
    even the right password is refused; none of the attempts errors."""
    from concurrent.futures import ThreadPoolExecutor

    def guess(_: int) -> str:
        try:
            auth.login("alice", "wrong-password")
        except LoginFailed as exc:
            return str(exc)
        return "logged in"

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(guess, range(12)))
    assert all(a == INVALID_LOGIN or a.startswith("Too many failed attempts") for a in answers)
    assert sum(a == INVALID_LOGIN for a in answers) <= 4
    with pytest.raises(LoginFailed, match="Too many failed attempts"):
        auth.login("alice", PASSWORD)


@pytest.mark.parametrize("name", ["admin\x00", "ad min", "a" * 300, "ädmin", ""])
def test_names_that_cannot_exist_get_the_usual_message(auth: AuthService, name: str) -> None:
    with pytest.raises(LoginFailed) as refused:
        auth.login(name, PASSWORD)
    assert str(refused.value) == INVALID_LOGIN


def test_guessing_the_current_password_locks_out_too(auth: AuthService) -> None:
    here = auth.login("alice", PASSWORD)
    for _ in range(4):
        with pytest.raises(InvalidInput, match="current password is not right"):
            auth.change_own_password(
                "alice", "guess", "new-orchid-771", keep_session_id=here.session_id
            )
    with pytest.raises(InvalidInput, match="Too many failed attempts"):
        auth.change_own_password(
            "alice", "guess", "new-orchid-771", keep_session_id=here.session_id
        )
    with pytest.raises(InvalidInput, match="Too many failed attempts"):
        auth.change_own_password(
            "alice", PASSWORD, "new-orchid-771", keep_session_id=here.session_id
        )


def test_expired_failure_records_are_forgotten(
    auth: AuthService, db: Database, clock: FakeClock
) -> None:
    for n in range(3):
        with pytest.raises(LoginFailed):
            auth.login(f"made-up-{n}", "wrong-password")
    clock.advance(minutes=16)
    with pytest.raises(LoginFailed):
        auth.login("another-one", "wrong-password")
    with db.engine.connect() as conn:
        names = [r[0] for r in conn.execute(text("SELECT username FROM login_throttle"))]
    assert names == ["another-one"]
