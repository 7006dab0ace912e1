"""My account: change my password, see and end my other sessions."""

from __future__ import annotations

import streamlit as st

from crispml.core.errors import CrispmlError
from crispml.ui import context
from crispml.ui.widgets import feedback


def render() -> None:
    user = context.current_user()
    auth = context.services().auth
    current = context.current_session()
    current_id = current.session_id if current else 0
    st.title("My account")
    st.caption(f"Signed in as {user.username} ({user.role}).")
    feedback.show_pending()

    with st.form("change-password", clear_on_submit=True):
        st.markdown("**Change password**")
        old = st.text_input("Current password", type="password")
        new = st.text_input(
            "New password",
            type="password",
            help="At least 8 characters; common passwords are refused.",
        )
        again = st.text_input("New password again", type="password")
        if st.form_submit_button("Change password", type="primary"):
            if new != again:
                feedback.error("The two new passwords differ.")
            else:
                try:
                    auth.change_own_password(user.username, old, new, keep_session_id=current_id)
                except CrispmlError as exc:
                    feedback.error(exc)
                else:
                    feedback.done("Password changed. Your other sessions have ended.")

    st.subheader("My sessions")
    sessions = auth.list_sessions(user.username)
    st.dataframe(
        [
            {
                "Since (UTC)": f"{s.created_at:%Y-%m-%d %H:%M}",
                "Last seen (UTC)": f"{s.last_seen_at:%Y-%m-%d %H:%M}",
                "IP": s.ip,
                "Browser": s.user_agent[:60],
                "This session": s.id == current_id,
            }
            for s in sessions
        ],
        hide_index=True,
        width="stretch",
    )
    others = [s for s in sessions if s.id != current_id]
    if others and st.button(f"Log out my {len(others)} other session(s)"):
        for s in others:
            auth.revoke_session(s.id, actor=user.username, owner=user.username)
        feedback.done("Your other sessions have ended.")
