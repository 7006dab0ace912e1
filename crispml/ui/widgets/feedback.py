"""One way to report results: ``done("Saved")`` then rerun shows a toast; errors show inline."""

from __future__ import annotations

import streamlit as st

from crispml.core.errors import CrispmlError

_FLASH_KEY = "_crispml.flash"


def queue(message: str) -> None:
    """Queue a success message for the next run (from a widget callback, which reruns anyway)."""
    st.session_state[_FLASH_KEY] = message


def done(message: str) -> None:
    """Queue a success message for the next run, then rerun the page."""
    queue(message)
    st.rerun()


def show_pending() -> None:
    """Show a queued success or error message (call once, near the top of every page).

    The messages go in one slot that every run draws, shown or empty, so what the page draws
    after it keeps its place. Were the slot drawn only with a message, the next run would
    draw the page's elements one place up, and until that run ended the browser would show
    each one twice: the new one, and the old one, stale, one place down.
    """
    with st.empty().container():
        show_queued_error()
        message = st.session_state.pop(_FLASH_KEY, None)
        if message:
            st.toast(message, icon=":material/check_circle:")
            st.success(message, icon=":material/check_circle:")


_ERROR_KEY = "_crispml.error"


def queue_error(exc: CrispmlError | str) -> None:
    """Queue an error for this run's page (from a widget callback)."""
    st.session_state[_ERROR_KEY] = str(exc)


def error(exc: CrispmlError | str) -> None:
    st.error(str(exc), icon=":material/error:")


def unexpected(exc: BaseException, what: str = "Something went wrong") -> None:
    """An unexpected error (a bug, or a model's own failure): a short message with a reference;
    the traceback goes to the server log under that reference, never to the page."""
    import logging
    import secrets

    from crispml.core.errors import Unavailable

    if isinstance(exc, Unavailable):  # not a bug: the database or the disk, said in words
        error(str(exc))
        return
    reference = secrets.token_hex(4)
    logging.getLogger("crispml.ui").error("%s (reference %s)", what, reference, exc_info=exc)
    error(
        f"{what} ({type(exc).__name__}: {exc}). Nothing you entered is lost. If it happens "
        f"again, give your admin the reference {reference} (it is in the server log)."
    )


def show_queued_error() -> None:
    message = st.session_state.pop(_ERROR_KEY, None)
    if message:
        error(message)
