"""Password policy and hashing (Argon2id via argon2-cffi).

Policy: at least ``min_length`` characters (8 or more), up to 1024 accepted (so passphrases work),
not one of the 30,000 most common passwords (zxcvbn's list), and not the user name.
"""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from crispml.core.errors import InvalidInput

MAX_PASSWORD_LENGTH = 1024

_hasher = PasswordHasher()  # argon2-cffi's default type is Argon2id (RFC 9106 profile)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A real hash to verify against when the user does not exist, so both cases cost the same
    (made on first use: importing crispml.core computes no hash)."""
    return _hasher.hash("crispml-no-such-user-password")


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def check_policy(password: str, *, username: str = "", min_length: int = 8) -> None:
    """Raise InvalidInput with a readable reason when ``password`` is not acceptable."""
    if len(password) < min_length:
        raise InvalidInput(f"The password must have at least {min_length} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"The password must have at most {MAX_PASSWORD_LENGTH} characters.")
    if password.lower() in _common_passwords():
        raise InvalidInput("That password is one of the most common ones; choose another.")
    if username and password.lower() == username.lower():
        raise InvalidInput("The password must not be the user name.")


def hash_password(password: str) -> str:
    return str(_hasher.hash(password))


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-work check: with ``password_hash=None`` a dummy hash is verified instead."""
    try:
        return bool(_hasher.verify(password_hash or _dummy_hash(), password)) and (
            password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return bool(_hasher.check_needs_rehash(password_hash))
