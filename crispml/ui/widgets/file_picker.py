"""A compact file explorer that other pages use to choose a file or a folder.

Example, on a page::

    from crispml.ui import workspace as ws
    from crispml.ui.widgets.file_picker import file_picker, picked_path

    choice = file_picker("Dataset file", key=ws.key("data.source"), extensions=(".csv", ".parquet"))
    if choice:
        path = picked_path(choice)   # a pathlib.Path inside a root this user may read

The value (``"<root>:<path>"``, e.g. ``"~alice:datasets/iris.csv"``) lives in session state under
``key``; bind it with ``ws.key`` and the choice is kept in the workspace like any other.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from crispml.core.errors import CrispmlError
from crispml.core.files.space import FileSpace
from crispml.ui import context
from crispml.ui.widgets import feedback
from crispml.ui.workspace import set_value


def _space(root_id: str) -> FileSpace:
    user = context.current_user()
    return context.services().files.space(user.username, user.role, root_id)


def split(value: str) -> tuple[str, str]:
    root_id, _, path = value.partition(":")
    return root_id, path


def picked_path(value: str) -> Path:
    """The real path of a picker value, checked again against the current user's access."""
    root_id, path = split(value)
    return _space(root_id).resolve(path)


def file_picker(
    label: str, *, key: str, extensions: tuple[str, ...] = (), folders: bool = False
) -> str | None:
    """Browse the user's roots and choose a file (or, with ``folders=True``, a folder)."""
    user = context.current_user()
    roots = context.services().files.roots_for(user.username, user.role)
    nav_key = f"_crispml.picker.{key}.at"
    value = st.session_state.get(key)
    if value is not None and not isinstance(value, str):
        st.session_state[key] = value = None
    if value:
        try:
            picked_path(value)  # restored values are checked again: access, existence, bounds
        except CrispmlError as exc:
            st.warning(
                f"The earlier choice is not available any more: {exc}", icon=":material/warning:"
            )
            st.session_state[key] = value = None
    if st.session_state.get(nav_key):
        at = st.session_state[nav_key]
    elif value and not folders:  # open the chosen file's folder
        parent = str(Path(split(value)[1]).parent)
        at = f"{split(value)[0]}:{'' if parent == '.' else parent}"
    else:
        at = value or f"{roots[0].id}:"
    root_id, folder = split(at)
    if root_id not in {r.id for r in roots}:
        root_id, folder = roots[0].id, ""
    with st.container(border=True):
        st.markdown(f"**{label}**")
        if len(roots) > 1:
            labels = {r.id: r.label for r in roots}
            new_root = st.selectbox(
                "Root",
                list(labels),
                index=list(labels).index(root_id),
                format_func=labels.__getitem__,
                key=f"{nav_key}.root",
            )
            if new_root != root_id:
                st.session_state[nav_key] = f"{new_root}:"
                st.rerun()
        try:
            space = _space(root_id)
            listing = space.listing(folder, extensions=extensions, page_size=500)
        except CrispmlError as exc:
            feedback.error(exc)
            st.session_state[nav_key] = f"{root_id}:"
            return None
        crumbs = [("/", "")] + [
            (part, "/".join(folder.split("/")[: i + 1]))
            for i, part in enumerate(folder.split("/") if folder else [])
        ]
        cols = st.columns(len(crumbs) + 1)
        for i, (name, path) in enumerate(crumbs):
            if cols[i].button(name, key=f"{nav_key}.crumb.{i}", type="tertiary"):
                st.session_state[nav_key] = f"{root_id}:{path}"
                st.rerun()
        options = {e.path: ("📁 " if e.is_dir else "") + e.name for e in listing.entries}
        chosen = st.selectbox(
            "Open a folder" if folders else "Choose a file (or open a folder)",
            list(options),
            index=None,
            format_func=options.__getitem__,
            placeholder="Empty folder" if not options else "Choose…",
            key=f"{nav_key}.item",
        )
        if chosen is not None:
            entry = next(e for e in listing.entries if e.path == chosen)
            st.session_state.pop(f"{nav_key}.item", None)
            if entry.is_dir:
                st.session_state[nav_key] = f"{root_id}:{entry.path}"
            else:
                set_value(key, f"{root_id}:{entry.path}")
            st.rerun()
        if folders and st.button("Choose this folder", key=f"{nav_key}.here"):
            set_value(key, f"{root_id}:{folder}")
            st.rerun()
        current = st.session_state.get(key)
        st.caption(f"Chosen: `{split(current)[1] or '/'}`" if current else "Nothing chosen yet.")
    return current if isinstance(current, str) else None
