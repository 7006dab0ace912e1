"""Business understanding: the user's projects (name, goal, success criteria, notes).

The current project and every draft (a new project's fields, unsaved edits) live in the
workspace, so they survive a refresh, a restart and a change of browser.
"""

from __future__ import annotations

import streamlit as st

from crispml.core.errors import CrispmlError
from crispml.core.projects import Project, ProjectFields
from crispml.ui import context
from crispml.ui import workspace as ws
from crispml.ui.widgets import feedback
from crispml.ui.widgets.confirm import confirm_button

DESCRIPTION = (
    "What does the business need? Define the project: its goal, how success is measured, "
    "and what you know so far."
)
FIELDS = ("name", "goal", "success_criteria", "notes")
NEW = {f: ws.user_key(f"business.new.{f}") for f in FIELDS}
EDIT = {f: ws.key(f"business.edit.{f}") for f in FIELDS}


def current_project(projects: list[Project]) -> Project | None:
    """The workspace's current project; a stale or missing choice falls back to the newest."""
    chosen = st.session_state.get(ws.PROJECT_KEY)
    for project in projects:
        if project.id == chosen:
            return project
    if projects:
        st.session_state[ws.PROJECT_KEY] = projects[0].id
        return projects[0]
    return None


def _fields(keys: dict[str, str]) -> ProjectFields:
    return ProjectFields(*(str(st.session_state.get(keys[f], "")) for f in FIELDS))


def _inputs(keys: dict[str, str]) -> None:
    for key in keys.values():
        ws.ensure(key, str, "")
    st.text_input("Name", key=keys["name"], max_chars=120)
    st.text_area("Goal", key=keys["goal"], placeholder="What should the model make possible?")
    st.text_area(
        "Success criteria",
        key=keys["success_criteria"],
        placeholder="e.g. accuracy of at least 0.9 on held-out data",
    )
    st.text_area("Notes", key=keys["notes"], height=120)


def _reset_edits(project: Project) -> None:
    for field in FIELDS:
        st.session_state[EDIT[field]] = getattr(project, field)


NEW_ERROR = "business.new_project_error"


def _create() -> None:
    user = context.current_user()
    try:
        created = context.services().projects.create(user.id, _fields(NEW), actor=user.username)
    except CrispmlError as exc:  # shown in the panel, which stays open with what was typed
        st.session_state[NEW_ERROR] = str(exc)
        return
    for key in NEW.values():
        st.session_state[key] = ""
    st.session_state[ws.PROJECT_KEY] = created.id
    feedback.queue(f"Created project '{created.name}'.")


def _save(project: Project) -> None:
    user = context.current_user()
    try:
        updated = context.services().projects.update(
            user.id, project.id, _fields(EDIT), actor=user.username
        )
    except CrispmlError as exc:
        feedback.queue_error(exc)
        return
    _reset_edits(updated)
    feedback.queue(f"Saved project '{updated.name}'.")


def render() -> None:
    user = context.current_user()
    projects_service = context.services().projects
    st.title("Business understanding")
    st.caption(DESCRIPTION)
    feedback.show_pending()

    projects = projects_service.list(user.id)
    current = current_project(projects)
    if current is None:
        st.info("You have no projects yet. Create your first one below.", icon=":material/info:")
    else:
        names = {p.id: p.name for p in projects}
        st.selectbox(
            "Current project", list(names), format_func=names.__getitem__, key=ws.PROJECT_KEY
        )
        overview, edit = st.tabs(["Overview", "Edit"])
        with overview:
            st.subheader(current.name)
            st.markdown(f"**Goal**  \n{current.goal or '_not set_'}")
            st.markdown(f"**Success criteria**  \n{current.success_criteria or '_not set_'}")
            if current.notes:
                st.markdown(f"**Notes**  \n{current.notes}")
            st.caption(
                f"Created {current.created_at:%Y-%m-%d %H:%M} UTC · "
                f"updated {current.updated_at:%Y-%m-%d %H:%M} UTC"
            )
        with edit:
            for field in FIELDS:
                ws.default(EDIT[field], getattr(current, field))
            _inputs(EDIT)
            edited = _fields(EDIT) != ProjectFields(
                current.name, current.goal, current.success_criteria, current.notes
            )
            if edited:
                st.caption(":material/edit_note: Unsaved edits (kept in your workspace).")
            save, discard = st.columns(2)
            save.button(
                "Save changes", type="primary", on_click=_save, args=(current,), disabled=not edited
            )
            discard.button(
                "Discard edits", on_click=_reset_edits, args=(current,), disabled=not edited
            )
            if confirm_button(
                "Delete project",
                key=f"delete-project-{current.id}",
                message=f"Delete the project '{current.name}'? This cannot be undone.",
            ):
                projects_service.delete(user.id, current.id, actor=user.username)
                feedback.done(f"Deleted project '{current.name}'.")

        st.subheader("All projects")
        st.dataframe(
            [
                {
                    "Name": p.name,
                    "Goal": p.goal,
                    "Updated (UTC)": p.updated_at.strftime("%Y-%m-%d %H:%M"),
                }
                for p in projects
            ],
            hide_index=True,
            width="stretch",
        )

    problem = st.session_state.pop(NEW_ERROR, None)
    with st.expander(
        "New project", expanded=current is None or problem is not None, icon=":material/add:"
    ):
        if problem:
            feedback.error(problem)
        _inputs(NEW)
        st.button("Create project", type="primary", on_click=_create)
