"""Bind widgets to the autosaved workspace: one key helper, no save code per widget.

In a page::

    from crispml.ui import workspace as ws

    ws.default(ws.key("modeling.trees"), 100)          # a default, given once
    st.slider("Trees", 10, 500, key=ws.key("modeling.trees"))
    st.selectbox("Algorithm", ALGORITHMS, key=ws.key("modeling.algorithm"))

Every session-state key made by ``ws.key`` (kept per project) or ``ws.user_key`` (kept per user,
across projects) is restored before the first widget renders, and saved at the end of every run in
which it changed: at most one write per run, none when nothing changed. Give defaults with
``ws.default`` rather than the widget's ``value=`` (Streamlit warns when both are set). Buttons,
file uploaders and forms' submit buttons cannot be bound. A page must accept a restored value
that no longer fits (an option that is gone): check it before creating the widget.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from datetime import timedelta
from typing import Any

import streamlit as st

from crispml.core.saved_work import ArtifactRef, LoadResult, Snapshot
from crispml.core.workspace import (
    KEY_PATTERN,
    USER_SCOPE,
    Unencodable,
    decode,
    encode,
    project_scope,
)
from crispml.ui import context

PROJECT_PREFIX = "ws."
USER_PREFIX = "wsu."
PAGE_KEY = USER_PREFIX + "page"
PROJECT_KEY = USER_PREFIX + "project"
ORIGIN_KEY = USER_PREFIX + "saved_origin"  # the saved work last loaded or saved, and its digest
POLL = timedelta(seconds=5)

_TAB = "_crispml.ws.tab"
_REVISION = "_crispml.ws.revision"
_BASELINE = "_crispml.ws.baseline"
_SCOPE = "_crispml.ws.scope"
_STALE = "_crispml.ws.stale"
_RELOAD = "_crispml.ws.reload"
_DIRTY = "_crispml.ws.dirty"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,150}$")


def key(name: str) -> str:
    """A session-state key whose value is kept in the current project's workspace."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"workspace key names use letters, digits, '.', '_', '-': {name!r}")
    return PROJECT_PREFIX + name


def user_key(name: str) -> str:
    """A session-state key whose value is kept for the user, whatever the project."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"workspace key names use letters, digits, '.', '_', '-': {name!r}")
    return USER_PREFIX + name


def default(state_key: str, value: Any) -> None:
    """Give a bound key its default, unless the workspace already has a value.

    A default is not a change: it is not saved until the user changes it.
    """
    state = st.session_state
    if state_key not in state:
        state[state_key] = value
        baseline = state.get(_BASELINE)
        if isinstance(baseline, dict) and state_key not in baseline:
            with contextlib.suppress(Unencodable):
                baseline[state_key] = encode(value)


def ensure(state_key: str, kind: type, fallback: Any) -> None:
    """Replace a restored value of the wrong type (an old or damaged workspace) with
    ``fallback`` before the widget is created, so one bad value cannot break a page."""
    if state_key in st.session_state and not isinstance(st.session_state[state_key], kind):
        st.session_state[state_key] = fallback


def set_value(state_key: str, value: Any) -> None:
    """Change a bound value from page code during a run (callbacks may simply assign).

    Keys first seen at the end of a run count as widget defaults; a value set here is a change
    and is saved even if the page reruns or stops right after.
    """
    st.session_state[state_key] = value
    st.session_state.setdefault(_DIRTY, set()).add(state_key)


def _bound(k: object) -> bool:
    return isinstance(k, str) and k.startswith((PROJECT_PREFIX, USER_PREFIX))


def _scope_of(k: str) -> str:
    return USER_SCOPE if k.startswith(USER_PREFIX) else st.session_state[_SCOPE]


def _apply(values: dict[str, str]) -> None:
    """Put stored values into session state: only well-formed workspace keys, ever."""
    for k, text in list(values.items()):
        if KEY_PATTERN.fullmatch(k):
            st.session_state[k] = decode(text)
        else:
            del values[k]


def _valid_project(user_id: int, chosen: object) -> int | None:
    """The chosen project if the user still has it, else their most recently updated one.

    Settled here, before any page runs, so that values bound during a run always belong to the
    project whose scope was loaded for it.
    """
    projects = context.services().projects.list(user_id)
    if any(p.id == chosen for p in projects):
        return chosen if isinstance(chosen, int) else None
    return projects[0].id if projects else None


def resend(state_key: str) -> None:
    """Set a bound value again before its widget is drawn, so that this run sends the widget
    its value. For fields a run may draw for the first time after the previous run was cut short.

    Streamlit sends a widget's value to the browser only in a run that set it through session
    state; otherwise the browser keeps what it has or, for a field it draws for the first time,
    the widget's own default (an empty text box, a select box's first option). Choosing a new
    algorithm draws its fields; a change made before that run drew them all (typing into the
    first) cut it short, the next run drew the rest fresh, empty in the browser, and the empty
    value came back with the next change. Set again, the browser gets the server's value, which
    for a field it already had is its own latest one.
    """
    if state_key in st.session_state:
        st.session_state[state_key] = st.session_state[state_key]


def restore(user_id: int) -> bool:
    """Put the workspace into session state; True on the first run of a browser session."""
    state = st.session_state
    service = context.services().workspace
    state.setdefault(_TAB, secrets.token_hex(8))
    first = _REVISION not in state
    if first or state.pop(_RELOAD, False):
        for k in [k for k in state if _bound(k)]:
            del state[k]
        user = service.load(user_id, (USER_SCOPE,))
        stored = decode(user.values[PROJECT_KEY]) if PROJECT_KEY in user.values else None
        project = _valid_project(user_id, stored)
        scope = project_scope(project)
        values = {**user.values, **service.load(user_id, (scope,)).values}
        _apply(values)
        state[PROJECT_KEY] = project
        values[PROJECT_KEY] = encode(project)  # settled, not changed by the user
        state[_BASELINE], state[_REVISION], state[_SCOPE] = values, user.revision, scope
        state[_STALE] = False
        return first
    baseline: dict[str, str] = state[_BASELINE]
    wanted = project_scope(state.get(PROJECT_KEY))
    if wanted != state[_SCOPE]:
        project = _valid_project(user_id, state.get(PROJECT_KEY))
        state[PROJECT_KEY] = project
        wanted = project_scope(project)
    if wanted != state[_SCOPE]:
        # The project changed: its predecessor's values were saved at the end of the last run.
        for k in [k for k in state if isinstance(k, str) and k.startswith(PROJECT_PREFIX)]:
            del state[k]
        for k in [k for k in baseline if k.startswith(PROJECT_PREFIX)]:
            del baseline[k]
        loaded = service.load(user_id, (wanted,)).values
        baseline.update(loaded)
        _apply(loaded)
        state[_SCOPE] = wanted
        return False
    # Streamlit drops a widget's key when the widget is not rendered (another page): put it back.
    for k, text in baseline.items():
        if k not in state:
            state[k] = decode(text)
    return False


def current_values(prefix: str | tuple[str, ...] = PROJECT_PREFIX) -> dict[str, str]:
    """Encoded values of this session's bound keys (those that can be kept)."""
    values = {}
    for k, value in st.session_state.to_dict().items():  # one pass over the session state
        if isinstance(k, str) and k.startswith(prefix):
            try:
                values[k] = encode(value)
            except Unencodable:
                continue
    return values


_BOUND = (USER_PREFIX, PROJECT_PREFIX)


def _absorb_defaults(values: dict[str, str]) -> None:
    """Bound keys first seen at the end of a run hold defaults (a widget's initial value), not
    changes: remember them, so only a later change by the user is saved. Values set with
    ``set_value`` are changes, never defaults."""
    baseline = st.session_state.get(_BASELINE)
    dirty = st.session_state.get(_DIRTY, set())
    if isinstance(baseline, dict):
        for k, text in values.items():
            if k not in dirty:
                baseline.setdefault(k, text)


def note_defaults() -> None:
    """End of a run that already wrote."""
    _absorb_defaults(current_values(_BOUND))


def autosave(user_id: int, *, end_of_run: bool = False) -> bool:
    """Save what changed, in one write; nothing when nothing changed. True if it wrote.

    With ``end_of_run``, keys first seen in this run count as defaults (see _absorb_defaults).
    """
    state = st.session_state
    if _REVISION not in state:
        return False
    baseline: dict[str, str] = state[_BASELINE]
    dirty: set[str] = state.get(_DIRTY, set())
    values = current_values(_BOUND)  # one pass over session state serves both steps
    if end_of_run:
        _absorb_defaults(values)
    changes: dict[str, dict[str, str]] = {}
    for k, text in values.items():
        if baseline.get(k) != text:
            changes.setdefault(_scope_of(k), {})[k] = text
    if not changes:
        return False
    saved = context.services().workspace.save(
        user_id, changes, writer=state[_TAB], known_revision=state[_REVISION]
    )
    for values in changes.values():
        baseline.update(values)
    dirty.clear()
    state[_REVISION] = saved.revision
    if saved.others_wrote:
        state[_STALE] = True
    return True


def request_reload() -> None:
    st.session_state[_RELOAD] = True


def start_fresh(user_id: int) -> None:
    """Clear the whole workspace (every project's values, current page and project)."""
    context.services().workspace.clear(user_id, writer=st.session_state.get(_TAB, ""))
    request_reload()


@st.fragment(run_every=POLL)
def changed_elsewhere_notice(user_id: int) -> None:
    """A notice, polled without rerunning the page, when another tab or browser saved."""
    state = st.session_state
    revision, writer = context.services().workspace.revision(user_id)
    known = state.get(_REVISION, revision)
    if state.get(_STALE) or (revision > known and writer != state.get(_TAB)):
        st.warning("Your workspace changed in another tab or browser.", icon=":material/sync:")
        if st.button("Reload workspace", key="_crispml.ws.reload_button"):
            request_reload()
            st.rerun(scope="app")


# Saved work ----------------------------------------------------------------------------------


def project_values() -> dict[str, str]:
    """Every value of the current project's workspace: what was saved or restored, overlaid
    with this session's live values. (Streamlit drops the keys of widgets on other pages, and
    callbacks run before ``restore`` puts them back, so session state alone is not enough.)"""
    baseline = st.session_state.get(_BASELINE) or {}
    known = {k: v for k, v in baseline.items() if k.startswith(PROJECT_PREFIX)}
    return {**known, **current_values(PROJECT_PREFIX)}


def digest(values: dict[str, str]) -> str:
    return hashlib.sha256(repr(sorted(values.items())).encode()).hexdigest()[:16]


def snapshot(project_id: int | None, project_name: str) -> Snapshot:
    refs = (ArtifactRef("project", str(project_id), project_name),) if project_id else ()
    return Snapshot(
        page=str(st.session_state.get(PAGE_KEY, "")),
        values=project_values(),
        refs=refs,
        project_id=project_id,
        project_name=project_name,
    )


def has_unsaved_changes() -> bool:
    """True when the project's values differ from the saved work last loaded or saved here."""
    values = project_values()
    origin = st.session_state.get(ORIGIN_KEY)
    if not isinstance(origin, dict):
        return bool(values)
    return origin.get("digest") != digest(values)


def mark_origin(work_id: int, values: dict[str, str]) -> None:
    st.session_state[ORIGIN_KEY] = {"id": work_id, "digest": digest(values)}


def load_saved(user_id: int, work_id: int, result: LoadResult, fallback_project: int | None) -> str:
    """Replace the workspace of the saved work's project (or the current one, if it is gone).

    Returns the page to show. One write: the project's values, the project and the page.
    """
    snap = result.snapshot
    exists = snap.project_id is not None and not any(
        m.startswith("project ") for m in result.missing
    )
    project = snap.project_id if exists else fallback_project
    scope = project_scope(project)
    state = st.session_state
    user_values = {
        PROJECT_KEY: encode(project),
        PAGE_KEY: encode(snap.page),
        ORIGIN_KEY: encode({"id": work_id, "digest": digest(snap.values)}),
    }
    saved = context.services().workspace.save(
        user_id,
        {scope: snap.values, USER_SCOPE: user_values},
        writer=state[_TAB],
        known_revision=state[_REVISION],
        replace=(scope,),
    )
    state[_REVISION] = saved.revision
    request_reload()
    return snap.page
