import pytest

from crispml.core import passwords
from crispml.core.errors import InvalidInput


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short7!", "at least 8"),
        ("password", "most common"),
        ("Qwerty123", "most common"),
        ("x" * 1025, "at most 1024"),
        ("alice.smith", "user name"),
    ],
)
def test_policy_refuses_with_reason(password: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        passwords.check_policy(password, username="alice.smith")


@pytest.mark.parametrize("password", ["lilac-harbor-93", "y" * 64, "a" * 1024])
def test_policy_accepts_long_and_unusual(password: str) -> None:
    passwords.check_policy(password, username="alice")


def test_min_length_is_configurable() -> None:
    with pytest.raises(InvalidInput, match="at least 12"):
        passwords.check_policy("lilac-harb9", min_length=12)


def test_hash_is_argon2id_and_verifies() -> None:
    hashed = passwords.hash_password("lilac-harbor-93")
    assert hashed.startswith("$argon2id$")
    assert passwords.verify_password(hashed, "lilac-harbor-93")
    assert not passwords.verify_password(hashed, "lilac-harbor-94")
    assert not passwords.verify_password("not a hash", "lilac-harbor-93")


def test_unknown_user_verification_does_the_same_work_and_fails() -> None:
    import time

    real = passwords.hash_password("lilac-harbor-93")
    t0 = time.perf_counter()
    assert not passwords.verify_password(real, "wrong-password-1")
    known = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert not passwords.verify_password(None, "wrong-password-1")
    unknown = time.perf_counter() - t0
    # Same Argon2id parameters: both take real hashing time (not a fast "no such user" path).
    assert unknown > known / 4
