"""Saved work: save the workspace under a name; list, load, rename, duplicate, delete, export,
import; and start fresh."""

from __future__ import annotations

import streamlit as st

from crispml.core.errors import CrispmlError
from crispml.core.saved_work import SavedWorkInfo
from crispml.ui import context
from crispml.ui import workspace as ws
from crispml.ui.widgets import feedback, pager
from crispml.ui.widgets.confirm import confirm_button

NAME = ws.user_key("saved.name")
DESCRIPTION = ws.user_key("saved.description")
MISSING_KEY = "_crispml.saved.missing"
PAGE_KEY = "saved.page"
PAGE_SIZE = 50


def _current_project() -> tuple[int | None, str]:
    user = context.current_user()
    chosen = st.session_state.get(ws.PROJECT_KEY)
    for project in context.services().projects.list(user.id):
        if project.id == chosen:
            return project.id, project.name
    return None, ""


def _save() -> None:
    user = context.current_user()
    project_id, project_name = _current_project()
    snap = ws.snapshot(project_id, project_name)
    try:
        info = context.services().saved_work.save(
            user.id,
            str(st.session_state.get(NAME, "")),
            str(st.session_state.get(DESCRIPTION, "")),
            snap,
            actor=user.username,
        )
    except CrispmlError as exc:
        feedback.queue_error(exc)
        return
    ws.mark_origin(info.id, snap.values)
    st.session_state[NAME] = ""
    st.session_state[DESCRIPTION] = ""
    feedback.queue(f"Saved your workspace as '{info.name}'.")


def _table(items: list[SavedWorkInfo], everyone: bool) -> None:
    st.dataframe(
        [
            {
                **({"Owner": i.owner} if everyone else {}),
                "Name": i.name,
                "Project": i.project_name or "-",
                "Holds": i.holds,
                "Description": i.description,
                "Created (UTC)": f"{i.created_at:%Y-%m-%d %H:%M}",
                "Updated (UTC)": f"{i.updated_at:%Y-%m-%d %H:%M}",
                "Size": f"{i.size_bytes / 1024:.1f} KB",
            }
            for i in items
        ],
        hide_index=True,
        width="stretch",
    )


def _load(item: SavedWorkInfo) -> None:
    user = context.current_user()
    try:
        result = context.services().saved_work.load(user.id, item.id)
    except CrispmlError as exc:  # deleted in another tab meanwhile
        feedback.error(exc)
        return
    fallback, _ = _current_project()
    ws.load_saved(user.id, item.id, result, fallback)
    st.session_state[MISSING_KEY] = result.missing
    feedback.done(f"Loaded '{item.name}'.")


def _actions(item: SavedWorkInfo, own: bool) -> None:
    user = context.current_user()
    service = context.services().saved_work
    owner_id = user.id if own else None
    if own:
        load_col, rename_col, copy_col = st.columns(3)
        with load_col:
            st.markdown("**Load**")
            if ws.has_unsaved_changes():
                if confirm_button(
                    "Load",
                    key=f"load-{item.id}",
                    message="Your workspace has changes that are not in any saved work. "
                    "Loading replaces them.",
                ):
                    _load(item)
            elif st.button("Load", key=f"load-{item.id}.direct", type="primary"):
                _load(item)
        with rename_col:
            new_name = st.text_input("New name", value=item.name, key=f"rename-{item.id}")
            if st.button("Rename", key=f"rename-{item.id}.go"):
                try:
                    service.rename(user.id, item.id, new_name, actor=user.username)
                except CrispmlError as exc:
                    feedback.error(exc)
                else:
                    feedback.done(f"Renamed to '{new_name.strip()}'.")
        with copy_col:
            copy_name = st.text_input(
                "Name of the copy", value=f"{item.name} (copy)", key=f"copy-{item.id}"
            )
            if st.button("Duplicate", key=f"copy-{item.id}.go"):
                try:
                    copy = service.duplicate(user.id, item.id, copy_name, actor=user.username)
                except CrispmlError as exc:
                    feedback.error(exc)
                else:
                    feedback.done(f"Duplicated as '{copy.name}'.")
    export_col, delete_col = st.columns(2)
    with export_col:
        filename, data = service.export(owner_id, item.id)
        st.download_button(
            "Export as file",
            data,
            file_name=filename,
            mime="application/json",
            key=f"export-{item.id}",
        )
    with delete_col:
        if confirm_button(
            "Delete",
            key=f"delete-saved-{item.id}",
            message=f"Delete the saved work '{item.name}'? This cannot be undone.",
        ):
            try:
                service.delete(owner_id, item.id, actor=user.username)
            except CrispmlError as exc:
                feedback.error(exc)
            else:
                feedback.done(f"Deleted '{item.name}'.")


def _import() -> None:
    user = context.current_user()
    with st.form("import-saved-work", clear_on_submit=True):
        upload = st.file_uploader("A file exported from crispml", type=["json"])
        name = st.text_input("Name (optional; the file's name otherwise)", max_chars=100)
        if st.form_submit_button("Import"):
            if upload is None:
                feedback.error("Choose a file to import.")
                return
            project_id, project_name = _current_project()
            try:
                info = context.services().saved_work.import_(
                    user.id,
                    upload.getvalue(),
                    name=name or None,
                    project_id=project_id,
                    project_name=project_name,
                    actor=user.username,
                )
            except CrispmlError as exc:
                feedback.error(exc)
            else:
                feedback.done(f"Imported '{info.name}'.")


def render() -> None:
    user = context.current_user()
    st.title("Saved work")
    st.caption(
        "Your workspace is saved as you work. Here you keep named versions of it, "
        "load them later, and move them between servers."
    )
    feedback.show_pending()
    missing = st.session_state.pop(MISSING_KEY, None)
    if missing:
        st.warning(
            "Loaded what could be loaded. These no longer exist: " + ", ".join(missing),
            icon=":material/warning:",
        )

    with st.container(border=True):
        st.markdown("**Save the current workspace**")
        ws.ensure(NAME, str, "")
        ws.ensure(DESCRIPTION, str, "")
        st.text_input("Name", key=NAME, max_chars=100)
        st.text_area("Description (optional)", key=DESCRIPTION, height=80)
        st.button("Save", type="primary", on_click=_save)

    everyone = user.is_admin and st.toggle(
        "Show everyone's saved work", key="saved.everyone", on_change=pager.first_page,
        args=(PAGE_KEY,),
    )  # fmt: skip
    page = context.services().saved_work.page(
        None if everyone else user.id, number=pager.number(PAGE_KEY), size=PAGE_SIZE
    )
    items = page.items
    if not items:
        st.info(
            "Nothing saved yet. Name your workspace above and press Save.", icon=":material/info:"
        )
    else:
        _table(items, everyone)
        pager.pager(PAGE_KEY, page, "saved work")
        labels = {i.id: (f"{i.owner}: " if everyone else "") + i.name for i in items}
        chosen = st.selectbox(
            "Saved work", list(labels), format_func=labels.__getitem__, key="saved.chosen"
        )
        item = next((i for i in items if i.id == chosen), None)
        if item is not None:
            _actions(item, own=item.owner == user.username)

    with st.expander("Import saved work", icon=":material/upload:"):
        _import()
    with st.expander("Start fresh", icon=":material/restart_alt:"):
        st.caption(
            "Clear your workspace: every project's settings and drafts, the current "
            "project and page. Saved work, projects and files are kept."
        )
        if confirm_button(
            "Start fresh",
            key="start-fresh",
            message="Clear your whole workspace? Saved work is kept.",
        ):
            ws.start_fresh(user.id)
            feedback.done("Your workspace is fresh.")
