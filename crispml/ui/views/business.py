"""Business understanding: the user's projects (name, goal, success criteria, notes)."""

from __future__ import annotations

import streamlit as st

from crispml.core.errors import CrispmlError
from crispml.core.projects import Project, ProjectFields
from crispml.ui import context
from crispml.ui.widgets import feedback
from crispml.ui.widgets.confirm import confirm_button

CURRENT_KEY = "crispml.current_project_id"
DESCRIPTION = (
    "What does the business need? Define the project: its goal, how success is measured, "
    "and what you know so far."
)


def current_project(projects: list[Project]) -> Project | None:
    """The project chosen in this session, else the most recently updated one."""
    chosen = st.session_state.get(CURRENT_KEY)
    for project in projects:
        if project.id == chosen:
            return project
    return projects[0] if projects else None


def _fields_form(key: str, project: Project | None, submit_label: str) -> ProjectFields | None:
    with st.form(key, clear_on_submit=project is None):
        name = st.text_input("Name", value=project.name if project else "", max_chars=120)
        goal = st.text_area(
            "Goal",
            value=project.goal if project else "",
            placeholder="What should the model make possible?",
        )
        criteria = st.text_area(
            "Success criteria",
            value=project.success_criteria if project else "",
            placeholder="e.g. accuracy of at least 0.9 on held-out data",
        )
        notes = st.text_area("Notes", value=project.notes if project else "", height=120)
        if st.form_submit_button(submit_label, type="primary"):
            return ProjectFields(name, goal, criteria, notes)
    return None


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
        ids = [p.id for p in projects]
        names = {p.id: p.name for p in projects}
        chosen = st.selectbox(
            "Current project", ids, index=ids.index(current.id), format_func=names.__getitem__
        )
        if chosen != current.id:
            st.session_state[CURRENT_KEY] = chosen
            st.rerun()
        st.session_state[CURRENT_KEY] = current.id

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
            fields = _fields_form(f"edit-project-{current.id}", current, "Save changes")
            if fields is not None:
                try:
                    projects_service.update(user.id, current.id, fields, actor=user.username)
                except CrispmlError as exc:
                    feedback.error(exc)
                else:
                    feedback.done(f"Saved project '{fields.name.strip()}'.")
            if confirm_button(
                "Delete project",
                key=f"delete-project-{current.id}",
                message=f"Delete the project '{current.name}'? This cannot be undone.",
            ):
                projects_service.delete(user.id, current.id, actor=user.username)
                st.session_state.pop(CURRENT_KEY, None)
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
            use_container_width=True,
        )

    with st.expander("New project", expanded=current is None, icon=":material/add:"):
        fields = _fields_form("new-project", None, "Create project")
        if fields is not None:
            try:
                created = projects_service.create(user.id, fields, actor=user.username)
            except CrispmlError as exc:
                feedback.error(exc)
            else:
                st.session_state[CURRENT_KEY] = created.id
                feedback.done(f"Created project '{created.name}'.")
