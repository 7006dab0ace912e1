"""API keys: the one a request presents, verified against the store and remembered briefly."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from crispml.core.apikeys import ApiKey


def unauthorized(why: str = "") -> HTTPException:
    """The 401 for a caller without a valid key, saying how to send one."""
    return HTTPException(
        401,
        f"{why}A valid API key is required: send 'Authorization: Bearer <key>' (keys are "
        "created on the Deployment page or with 'crispml apikey create').",
        headers={"WWW-Authenticate": "Bearer"},
    )


def presented(request: Request) -> str:
    """The key a request presents (``Authorization: Bearer`` wins over ``X-API-Key``); ""
    for none."""
    found = request.headers.get("x-api-key") or ""
    authorization = request.headers.get("authorization") or ""
    if authorization.lower().startswith("bearer "):
        found = authorization[7:].strip()
    return found


class KeyCache:
    """Keys verified in the last ``ttl_s`` seconds: a request does not wait for the database;
    a revoked key stops working within that time."""

    MAX_KEYS = 10_000  # then the cache starts over (a flood of random keys cannot grow it)

    def __init__(self, verify: Callable[[str], ApiKey | None], ttl_s: float) -> None:
        self.verify = verify  # the store's check, run in a thread
        self.ttl_s = ttl_s
        self._keys: dict[str, tuple[ApiKey, float]] = {}

    async def check(self, request: Request, *, anonymous: bool) -> ApiKey | None:
        """The caller's key; None for a caller without one when ``anonymous`` callers may use
        some models (a 401 otherwise, and for a key that is not valid)."""
        token = presented(request)
        if not token:
            if not anonymous:
                raise unauthorized()
            return None
        cached = self._keys.get(token)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        found = await run_in_threadpool(self.verify, token)
        if found is None:
            self._keys.pop(token, None)
            raise unauthorized("This API key is not valid (mistyped, or revoked). ")
        if len(self._keys) >= self.MAX_KEYS:
            self._keys.clear()
        self._keys[token] = (found, now + self.ttl_s)
        return found
