"""The multipage shell: sections, pages and the sidebar."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from crispml.core.auth import AuthSession
from crispml.core.tokens import logout_token
from crispml.ui import context, workspace
from crispml.ui.views import (
    about,
    account,
    admin,
    business,
    data_preparation,
    data_understanding,
    deployment,
    environments,
    evaluation,
    files,
    jobs,
    modeling,
    notebook,
    saved_work,
)
from crispml.ui.widgets import process_table


@dataclass(frozen=True)
class PageSpec:
    section: str
    title: str
    url_path: str
    icon: str
    render: Callable[[], None]
    admin_only: bool = False
    default: bool = False


PAGES: tuple[PageSpec, ...] = (
    PageSpec(
        "CRISP-DM",
        "Business understanding",
        "business-understanding",
        ":material/lightbulb:",
        business.render,
        default=True,
    ),
    PageSpec(
        "CRISP-DM",
        "Data understanding",
        "data-understanding",
        ":material/query_stats:",
        data_understanding.render,
    ),
    PageSpec(
        "CRISP-DM",
        "Data preparation",
        "data-preparation",
        ":material/tune:",
        data_preparation.render,
    ),
    PageSpec("CRISP-DM", "Modeling", "modeling", ":material/model_training:", modeling.render),
    PageSpec("CRISP-DM", "Evaluation", "evaluation", ":material/leaderboard:", evaluation.render),
    PageSpec("CRISP-DM", "Deployment", "deployment", ":material/rocket_launch:", deployment.render),
    PageSpec("Workspace", "Files", "files", ":material/folder:", files.render),
    PageSpec("Workspace", "Jobs", "jobs", ":material/memory:", jobs.render),
    PageSpec(
        "Workspace", "Environments", "environments", ":material/deployed_code:", environments.render
    ),
    PageSpec("Workspace", "Saved work", "saved-work", ":material/bookmark:", saved_work.render),
    PageSpec("Workspace", "Notebook", "notebook", ":material/code:", notebook.render),
    PageSpec("Account", "My account", "account", ":material/manage_accounts:", account.render),
    PageSpec("Account", "About", "about", ":material/info:", about.render),
    PageSpec(
        "Admin",
        "Users and sessions",
        "admin-users",
        ":material/group:",
        admin.render_users,
        admin_only=True,
    ),
    PageSpec(
        "Admin",
        "Audit log",
        "admin-audit",
        ":material/history:",
        admin.render_audit,
        admin_only=True,
    ),
)


def pages_for(auth: AuthSession) -> dict[str, list[st.Page]]:
    sections: dict[str, list[st.Page]] = {}
    for spec in PAGES:
        if spec.admin_only and not auth.user.is_admin:
            continue
        page = st.Page(
            spec.render,
            title=spec.title,
            icon=spec.icon,
            url_path=spec.url_path,
            default=spec.default,
        )
        sections.setdefault(spec.section, []).append(page)
    return sections


def return_to_last_page(pages: dict[str, list[st.Page]], current: st.Page) -> None:
    """On a new browser session opened at the app's root, go back to the page last used."""
    from urllib.parse import urlsplit

    last = st.session_state.get(workspace.PAGE_KEY)
    url = st.context.url or ""
    if not last or last == current.url_path or urlsplit(url).path.strip("/"):
        return
    for section in pages.values():
        for page in section:
            if page.url_path == last:
                st.switch_page(page)


def sidebar(auth: AuthSession) -> None:
    token = context.session_token() or ""
    link = logout_token(context.services().secret_key, token)
    with st.sidebar:
        st.markdown(
            f":material/account_circle: Signed in as **{auth.user.username}** ({auth.user.role})"
        )
        st.html(f'<a class="crispml-logout" href="/logout?t={link}" target="_self">Log out</a>')
        workspace.changed_elsewhere_notice(auth.user.id)


def sidebar_jobs() -> None:
    """The sidebar's job list, drawn after the page: a job the page just started is in it."""
    with st.sidebar:
        process_table.compact()
