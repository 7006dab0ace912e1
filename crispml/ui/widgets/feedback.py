"""One way to report results: ``done("Saved")`` then rerun shows a toast; errors show inline."""

from __future__ import annotations

import streamlit as st

from crispml.core.errors import CrispmlError

_FLASH_KEY = "_crispml.flash"


def done(message: str) -> None:
    """Queue a success message for the next run, then rerun the page."""
    st.session_state[_FLASH_KEY] = message
    st.rerun()


def show_pending() -> None:
    """Show a queued success message (call once, near the top of every page)."""
    message = st.session_state.pop(_FLASH_KEY, None)
    if message:
        st.toast(message, icon=":material/check_circle:")
        st.success(message, icon=":material/check_circle:")


def error(exc: CrispmlError | str) -> None:
    st.error(str(exc), icon=":material/error:")
