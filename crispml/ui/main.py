"""The Streamlit entry script: login check, workspace restore, navigation, page, autosave."""

import logging

import streamlit as st

from crispml.core.errors import Unavailable
from crispml.ui import context, navigation, workspace
from crispml.ui.widgets import feedback

log = logging.getLogger("crispml")


def save_workspace(user_id: int, *, end_of_run: bool = False) -> bool:
    try:
        return workspace.autosave(user_id, end_of_run=end_of_run)
    except Exception:
        log.exception("workspace autosave failed")
        st.toast("Your last change could not be saved. It is kept in this tab; try again.")
        return True  # do not try a second time in this run


st.set_page_config(page_title="crispml", page_icon=":material/insights:", layout="wide")
try:
    auth = context.require_login()
    first_run = workspace.restore(auth.user.id)  # before the first widget renders
except Unavailable as exc:  # the database is down or its disk full: say so, change nothing
    feedback.error(str(exc))
    st.stop()
pages = navigation.pages_for(auth)
current = st.navigation(pages, expanded=True)
if first_run:
    navigation.return_to_last_page(pages, current)
st.session_state[workspace.PAGE_KEY] = current.url_path
navigation.sidebar(auth)
# The browser's edits are in session state before the run starts: save them (and the page) now,
# so a refresh during a slow page cannot lose them. Changes the page itself makes are saved at
# its end, unless this run already wrote: never more than one write per run.
wrote = save_workspace(auth.user.id)
try:
    current.run()
except Exception as exc:  # a bug: a message with a reference, never a traceback on the page
    feedback.unexpected(exc, "This page failed")
finally:  # also after st.rerun() and st.stop() in a page
    navigation.sidebar_jobs()
    if not wrote:
        save_workspace(auth.user.id, end_of_run=True)
    else:
        workspace.note_defaults()
    context.freeze_startup_heap()
