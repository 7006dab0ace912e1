"""Admin: users (create, disable/enable, reset password, change role), sessions, audit log."""

from __future__ import annotations

import streamlit as st

from crispml.core.auth import ROLES, User, generate_password
from crispml.core.errors import CrispmlError
from crispml.ui import context
from crispml.ui.widgets import feedback, pager
from crispml.ui.widgets.confirm import confirm_button

USERS_PAGE = "admin.users.page"
USERS_PAGE_SIZE = 50
AUDIT_PAGE = "admin.audit.page"
AUDIT_PAGE_SIZE = 100


def _create_user_form(actor: str) -> None:
    auth = context.services().auth
    with st.form("create-user", clear_on_submit=True):
        st.markdown("**Create a user**")
        name = st.text_input("User name", max_chars=64)
        role = st.selectbox("Role", ROLES, index=1)
        password = st.text_input(
            "Password", type="password", help="Leave empty to generate one; it is shown once."
        )
        if st.form_submit_button("Create user", type="primary"):
            secret = password or generate_password()
            try:
                user = auth.create_user(name, secret, role, actor=actor)
            except CrispmlError as exc:
                feedback.error(exc)
                return
            if password:
                feedback.done(f"Created {user.role} '{user.username}'.")
            st.success(f"Created {user.role} '{user.username}'. Their password, shown only now:")
            st.code(secret, language=None)


def _manage_user(actor: str, users: list[User]) -> None:
    auth = context.services().auth
    if not users:
        st.caption("No user matches the search.")
        return
    names = [u.username for u in users]
    name = st.selectbox("User (of the page above)", names, key="admin.manage_user")
    if name is None:
        return
    user = next(u for u in users if u.username == name)
    st.caption(
        f"Role **{user.role}** · {'active' if user.active else 'disabled'} · "
        f"created {user.created_at:%Y-%m-%d}"
    )
    left, right = st.columns(2)
    with left:
        new_role = st.selectbox("Role", ROLES, index=ROLES.index(user.role), key=f"role-{name}")
        if st.button("Change role", disabled=new_role == user.role, key=f"set-role-{name}"):
            try:
                auth.set_role(name, new_role, actor=actor)
            except CrispmlError as exc:
                feedback.error(exc)
            else:
                feedback.done(f"'{name}' is now {new_role}.")
        if user.active:
            if confirm_button(
                "Disable account",
                key=f"disable-{name}",
                message=f"Disable '{name}'? Their sessions end at once.",
            ):
                try:
                    auth.set_active(name, False, actor=actor)
                except CrispmlError as exc:
                    feedback.error(exc)
                else:
                    feedback.done(f"Disabled '{name}'.")
        elif st.button("Enable account", key=f"enable-{name}"):
            auth.set_active(name, True, actor=actor)
            feedback.done(f"Enabled '{name}'.")
        if user.role != "admin":
            allowed = st.toggle(
                "May run code",
                value=user.code,
                key=f"code-{name}",
                help="Commands on the Jobs page, crispml jobs submit and JupyterLab. Their code "
                "runs sandboxed, as the user's own OS account. Admins always may.",
            )
            if allowed != user.code:
                auth.set_code(name, allowed, actor=actor)
                feedback.done(f"'{name}' {'may' if allowed else 'may no longer'} run code.")
            network = st.toggle(
                "Code may reach the network",
                value=user.network,
                key=f"network-{name}",
                help="Off: the user's jobs and notebooks have only a loopback of their own (no "
                "internet, no services of this machine).",
            )
            if network != user.network:
                auth.set_network(name, network, actor=actor)
                feedback.done(
                    f"'{name}''s code {'may' if network else 'may no longer'} reach the network."
                )
    with right, st.form(f"reset-{name}", clear_on_submit=True):
        password = st.text_input("New password", type="password")
        if st.form_submit_button("Reset password"):
            try:
                auth.set_password(name, password, actor=actor)
            except CrispmlError as exc:
                feedback.error(exc)
            else:
                feedback.done(f"Password of '{name}' reset; their sessions have ended.")


def _sessions(actor: str) -> None:
    auth = context.services().auth
    sessions = auth.list_sessions()
    current = context.current_session()
    rows = [
        {
            "Id": s.id,
            "User": s.username,
            "Since (UTC)": f"{s.created_at:%Y-%m-%d %H:%M}",
            "Last seen (UTC)": f"{s.last_seen_at:%Y-%m-%d %H:%M}",
            "Ends (UTC)": f"{s.expires_at:%Y-%m-%d %H:%M}",
            "IP": s.ip,
            "Browser": s.user_agent[:60],
            "This session": bool(current and current.session_id == s.id),
        }
        for s in sessions
    ]
    st.dataframe(rows, hide_index=True, width="stretch")
    ids = [s.id for s in sessions]
    labels = {s.id: f"{s.id} · {s.username} · {s.ip or 'unknown IP'}" for s in sessions}
    chosen = st.selectbox("Session", ids, format_func=labels.__getitem__, key="admin.session")
    if chosen is not None and confirm_button(
        "Revoke session",
        key=f"revoke-{chosen}",
        message=f"End session {labels[chosen]}? That browser must log in again.",
    ):
        auth.revoke_session(chosen, actor=actor)
        feedback.done(f"Revoked session {chosen}.")


def render_users() -> None:
    admin = context.require_admin()
    st.title("Users and sessions")
    st.caption(
        "Create accounts, disable or enable them, reset passwords, change roles, "
        "and end login sessions."
    )
    feedback.show_pending()
    sandbox = context.services().jobs.runtime.capability()
    if sandbox.available:
        st.caption(f":material/shield: {sandbox.message}")
    else:
        st.warning(sandbox.message, icon=":material/gpp_maybe:")
    search = pager.search("admin.users.search", "Find users by name", USERS_PAGE)
    page = context.services().auth.users_page(
        search=search, number=pager.number(USERS_PAGE), size=USERS_PAGE_SIZE
    )
    users = page.items
    st.dataframe(
        [
            {
                "User": u.username,
                "Role": u.role,
                "State": "active" if u.active else "disabled",
                "Runs code": "yes" if u.may_run_code else "no",
                "Network": "yes" if u.network else "no",
                "Created (UTC)": f"{u.created_at:%Y-%m-%d %H:%M}",
            }
            for u in users
        ],
        hide_index=True,
        width="stretch",
    )
    pager.pager(USERS_PAGE, page, "users")
    manage, create, sessions = st.tabs(["Manage a user", "Create a user", "Sessions"])
    with manage:
        _manage_user(admin.username, users)
    with create:
        _create_user_form(admin.username)
    with sessions:
        _sessions(admin.username)


def render_audit() -> None:
    context.require_admin()
    st.title("Audit log")
    st.caption("Who did what, and when: logins, account changes, project changes.")
    actor = pager.search("admin.audit.actor", "Only the events of (a user name)", AUDIT_PAGE)
    page = context.services().audit.page(
        actor=actor, number=pager.number(AUDIT_PAGE), size=AUDIT_PAGE_SIZE
    )
    if not page.items:
        st.info(f"Nothing recorded for '{actor}'." if actor else "Nothing recorded yet.")
        return
    st.dataframe(
        [
            {
                "When (UTC)": f"{e.at:%Y-%m-%d %H:%M:%S}",
                "Who": e.actor,
                "Action": e.action,
                "Target": e.target,
                "Detail": e.detail,
            }
            for e in page.items
        ],
        hide_index=True,
        width="stretch",
    )
    pager.pager(AUDIT_PAGE, page, "events")
