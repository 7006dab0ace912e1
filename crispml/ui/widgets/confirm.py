"""One way to confirm destructive actions: a button, then a warning with Confirm / Cancel."""

from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator


def confirm_button(
    label: str,
    *,
    key: str,
    message: str,
    disabled: bool = False,
    icon: str | None = None,
    place: DeltaGenerator | None = None,
) -> bool:
    """True on the run where the user confirmed. ``message`` says what will be lost.

    ``place``: a container for the button alone (a horizontal row of buttons, say); the warning
    and its Confirm / Cancel then follow in the current container, under the row.
    """
    pending = f"_crispml.confirm.{key}"
    if (place or st).button(label, key=f"{key}.ask", disabled=disabled, icon=icon):
        st.session_state[pending] = True
    if not st.session_state.get(pending):
        return False
    st.warning(message, icon=":material/warning:")
    yes, no = st.columns(2)
    if yes.button("Confirm", key=f"{key}.yes", type="primary"):
        st.session_state.pop(pending, None)
        return True
    if no.button("Cancel", key=f"{key}.no"):
        st.session_state.pop(pending, None)
        st.rerun()
    return False
