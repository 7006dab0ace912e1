"""Accounts, sessions and lockout, on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from crispml.core.audit import AuditLog
from crispml.core.auth import (
    INVALID_LOGIN,
    AuthPolicy,
    AuthService,
    LoginFailed,
    client_key,
    touch_interval,
)
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
        auth.login("another-one", "wrong-password", ip="192.0.2.1")
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT username, address FROM login_throttle")).all()
    expected = [("*", "192.0.2.1"), ("another-one", "*"), ("another-one", "192.0.2.1")]
    assert sorted(map(tuple, rows)) == expected


# Throttling per account and per client address ------------------------------------------------

ATTACKER = "203.0.113.9"
OWNER = "198.51.100.7"


def fail(auth: AuthService, name: str, ip: str, times: int = 1) -> list[str]:
    answers = []
    for _ in range(times):
        with pytest.raises(LoginFailed) as refused:
            auth.login(name, "wrong-password", ip=ip)
        answers.append(str(refused.value))
    return answers


def test_an_attacker_cannot_lock_the_owner_out(auth: AuthService, clock: FakeClock) -> None:
    """Six wrong passwords for admin from one address (the issue's attack), again every 15
    minutes: the attacker is stopped, the admin, from another address, always logs in."""
    for _ in range(3):
        answers = fail(auth, "admin", ATTACKER, 6)
        assert answers[:4] == [INVALID_LOGIN] * 4
        assert all(a.startswith("Too many failed attempts. Try again after") for a in answers[4:])
        with pytest.raises(LoginFailed, match="Too many failed attempts"):
            auth.login("admin", PASSWORD, ip=ATTACKER)  # stopped, even with the right password
        assert auth.login("admin", PASSWORD, ip=OWNER).user.username == "admin"
        with pytest.raises(LoginFailed, match="Too many failed attempts"):
            auth.login("admin", "wrong-password", ip=ATTACKER)  # the owner's login freed no one
        clock.advance(minutes=15, seconds=1)


def test_a_locked_account_refuses_clients_that_failed_on_it(auth: AuthService) -> None:
    """Failures from many addresses lock the account for each of them; an address that has
    not failed still gets its try, and once it fails it is refused too."""
    for n in range(5):
        fail(auth, "alice", f"192.0.2.{n}")
    with pytest.raises(LoginFailed, match="Too many failed attempts"):
        auth.login("alice", PASSWORD, ip="192.0.2.0")
    assert fail(auth, "alice", "192.0.2.50")[0].startswith("Too many failed attempts")
    with pytest.raises(LoginFailed, match="Too many failed attempts"):
        auth.login("alice", PASSWORD, ip="192.0.2.50")
    assert auth.login("alice", PASSWORD, ip="192.0.2.99")


def test_one_address_guessing_many_accounts_is_stopped(
    auth: AuthService, db: Database, clock: FakeClock
) -> None:
    policy = dataclasses.replace(auth.policy, lockout_address_threshold=6)
    strict = AuthService(db, AuditLog(db, clock), policy, clock)
    answers = [fail(strict, name, ATTACKER)[0] for name in ("admin", "alice", "bob", "x", "y")]
    assert answers == [INVALID_LOGIN] * 5
    sixth = fail(strict, "z", ATTACKER)[0]
    assert sixth.startswith("Too many failed attempts from your network address. Try again")
    with pytest.raises(LoginFailed, match="from your network address") as refused:
        strict.login("alice", PASSWORD, ip=ATTACKER)
    assert refused.value.retry_at == clock.now + timedelta(minutes=15)
    assert strict.login("alice", PASSWORD, ip=OWNER)  # other addresses are not affected
    clock.advance(minutes=15, seconds=1)
    assert strict.login("alice", PASSWORD, ip=ATTACKER)


def test_an_ipv6_client_is_counted_by_its_64_network() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::7")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.4") == "192.0.2.4"
    assert (client_key(" 192.0.2.4 "), client_key("::1"), client_key("")) == (
        "192.0.2.4",
        "::1",
        "",
    )


def test_an_admin_clears_locks(auth: AuthService, db: Database, clock: FakeClock) -> None:
    fail(auth, "alice", ATTACKER, 5)
    locked = {(lock.username, lock.address) for lock in auth.list_lockouts()}
    assert locked == {("alice", "*"), ("alice", ATTACKER)}
    # Clearing the address lets it try again; the account stays locked for those who failed.
    assert auth.unlock(ATTACKER, actor="admin") == 2
    assert fail(auth, "alice", "192.0.2.77")[0].startswith("Too many failed attempts")
    assert auth.login("alice", PASSWORD, ip=ATTACKER)
    # Clearing the account forgets every address's failures on it.
    fail(auth, "alice", ATTACKER, 5)
    assert auth.unlock("Alice", actor="admin") >= 2
    assert auth.list_lockouts() == []
    assert auth.login("alice", PASSWORD, ip=ATTACKER)
    assert auth.unlock("nobody", actor="admin") == 0
    with pytest.raises(InvalidInput):
        auth.unlock(" ", actor="admin")
    with db.engine.connect() as conn:
        actions = [r[0] for r in conn.execute(text("SELECT action FROM audit_events"))]
    assert actions.count("login.unlock") == 3


def test_a_refused_attempt_is_not_counted_as_a_failure(
    auth: AuthService, db: Database, clock: FakeClock
) -> None:
    fail(auth, "alice", ATTACKER, 5)
    for _ in range(10):
        with pytest.raises(LoginFailed, match="Too many"):
            auth.login("alice", "wrong-password", ip=ATTACKER)
    with db.engine.connect() as conn:
        count = conn.execute(
            text("SELECT failures FROM login_throttle WHERE username = '*' AND address = :a"),
            {"a": ATTACKER},
        ).scalar()
    assert count == 5


# "Last seen" and idle expiry --------------------------------------------------------------------


def test_touch_interval_is_a_tenth_of_the_idle_timeout_at_most_a_minute() -> None:
    assert touch_interval(timedelta(hours=8)) == timedelta(seconds=60)
    assert touch_interval(timedelta(seconds=90)) == timedelta(seconds=9)


def idle_auth(db: Database, clock: FakeClock, idle: timedelta) -> AuthService:
    policy = AuthPolicy(session_idle_timeout=idle, session_lifetime=timedelta(days=1))
    return AuthService(db, AuditLog(db, clock), policy, clock)


@pytest.mark.parametrize("gap", [59, 89])
def test_a_session_used_within_a_short_idle_timeout_never_ends(
    auth: AuthService, db: Database, clock: FakeClock, gap: int
) -> None:
    """Idle timeout 90 s, a request every ``gap`` seconds: always valid (a one-minute touch
    interval ended it at the second request)."""
    short = idle_auth(db, clock, timedelta(seconds=90))
    token = short.login("alice", PASSWORD).token
    for _ in range(30):
        clock.advance(seconds=gap)
        assert short.authenticate(token) is not None
    clock.advance(seconds=90 + 9)  # idle for the timeout plus the touch interval: ended
    assert short.authenticate(token) is None
    assert short.count_active_sessions() == 0


def test_a_session_left_alone_ends_within_a_touch_interval_of_the_timeout(
    auth: AuthService, db: Database, clock: FakeClock
) -> None:
    short = idle_auth(db, clock, timedelta(seconds=90))
    token = short.login("alice", PASSWORD).token
    clock.advance(seconds=5)
    assert short.authenticate(token) is not None  # not written back: 5 s < 9 s
    clock.advance(seconds=89)  # 89 s after the last request, 94 s after "last seen"
    assert short.authenticate(token) is not None  # written back now
    clock.advance(seconds=98)
    assert [s.expires_at for s in short.list_sessions("alice")] == [
        clock.now + timedelta(seconds=1)
    ]
    clock.advance(seconds=1)  # the timeout plus the touch interval (9 s) after the last request
    assert short.authenticate(token) is None


def test_last_seen_is_written_at_most_once_a_minute_for_long_timeouts(
    db: Database, clock: FakeClock
) -> None:
    long = idle_auth(db, clock, timedelta(hours=8))
    long.create_user("dora", PASSWORD, actor="test")
    token = long.login("dora", PASSWORD).token
    login_time = clock.now
    for _ in range(5):
        clock.advance(seconds=10)
        assert long.authenticate(token) is not None
    assert long.list_sessions("dora")[0].last_seen_at == login_time
    clock.advance(seconds=15)  # 65 s since login
    long.authenticate(token)
    assert long.list_sessions("dora")[0].last_seen_at == clock.now


def test_users_are_read_a_page_at_a_time_and_found_by_part_of_the_name(auth: AuthService) -> None:
    for name in ("ann_1", "ann-2", "bob", "annex"):
        auth.create_user(name, PASSWORD, actor="t")
    page = auth.users_page(size=2)
    assert page.total == 6 and page.pages == 3  # admin and alice too
    found = auth.users_page(search="ANN", size=10)
    assert sorted(u.username for u in found.items) == ["ann-2", "ann_1", "annex"]
    assert [u.username for u in auth.users_page(search="n_", size=10).items] == ["ann_1"]
    assert auth.users_page(search="%", size=10).total == 0  # wildcards are plain characters
