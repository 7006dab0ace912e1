"""What every page needs: the services, and who is logged in.

The auth gate already refused the WebSocket of anyone without a session, but a session can end
while a tab stays open (logout in another tab, expiry, an admin revoking it). So every script run
checks the session again, and a page stops with a message once it has ended.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

import streamlit as st

from crispml import services as services_module
from crispml.core.auth import SESSION_COOKIE, AuthSession, User
from crispml.services import Services

_AUTH_KEY = "_crispml.auth"


def services() -> Services:
    return services_module.current()


def browser_token() -> str | None:
    """The session cookie, as the browser sent it when this tab's WebSocket opened."""
    return st.context.cookies.get(SESSION_COOKIE)


_token_source: Callable[[], str | None] = browser_token


def use_token_source(source: Callable[[], str | None]) -> None:
    """Replace where the token comes from. For AppTest, which cannot send cookies."""
    global _token_source
    _token_source = source


def session_token() -> str | None:
    return _token_source()


def require_login() -> AuthSession:
    """Check the session for this run; stop the page with a way back to login if it ended."""
    auth = services().auth.authenticate(session_token())
    if auth is None:
        st.session_state.pop(_AUTH_KEY, None)
        st.error(
            "Your session has ended: you logged out, it expired, or an admin ended it.",
            icon=":material/error:",
        )
        st.html('<a href="/login" target="_self">Log in again</a>')
        st.stop()
    st.session_state[_AUTH_KEY] = auth
    return auth


def current_session() -> AuthSession | None:
    """This run's login session, as checked by ``require_login`` (None before that)."""
    auth = st.session_state.get(_AUTH_KEY)
    return auth if isinstance(auth, AuthSession) else None


def current_user() -> User:
    """The user of this run (checked once per run by the shell, or here for a lone page)."""
    auth = st.session_state.get(_AUTH_KEY)
    if not isinstance(auth, AuthSession):
        auth = require_login()
    return auth.user


def require_admin() -> User:
    user = current_user()
    if not user.is_admin:
        st.error("This page is for admins.", icon=":material/lock:")
        st.stop()
    return user


_heap_frozen = False


def freeze_startup_heap() -> None:
    """Once per server, after the first page run: collect, then move every object alive (the
    modules, the services, their caches) to the permanent generation, so later collections
    walk only what the sessions create."""
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()
