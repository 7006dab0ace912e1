"""Keyed tokens that protect forms and links against cross-site requests.

Each token is an HMAC of a purpose and a value the attacker cannot read (a cookie), under the
server's secret key. A cross-site page can make the browser send the cookie but cannot compute the
token, so it cannot forge the form field or the link.
"""

from __future__ import annotations

import hashlib
import hmac


def sign(secret: bytes, purpose: str, value: str) -> str:
    mac = hmac.new(secret, f"{purpose}\x00{value}".encode(), hashlib.sha256)
    return mac.hexdigest()[:40]


def verify(secret: bytes, purpose: str, value: str, token: str) -> bool:
    if not value or not token:
        return False
    return hmac.compare_digest(sign(secret, purpose, value), token)


def logout_token(secret: bytes, session_token: str) -> str:
    """The token the app's logout link carries (over the session token's hash, as stored); a
    cross-site page cannot compute it."""
    return sign(secret, "logout", hashlib.sha256(session_token.encode()).hexdigest())


def logout_token_valid(secret: bytes, session_token: str, given: str) -> bool:
    return verify(secret, "logout", hashlib.sha256(session_token.encode()).hexdigest(), given)
