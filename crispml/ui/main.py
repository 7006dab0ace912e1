"""The Streamlit entry script: login check, workspace restore, navigation, page, autosave."""

import logging

import streamlit as st

from crispml.ui import context, navigation, workspace

st.set_page_config(page_title="crispml", page_icon=":material/insights:", layout="wide")
auth = context.require_login()
first_run = workspace.restore(auth.user.id)  # before the first widget renders
pages = navigation.pages_for(auth)
current = st.navigation(pages, expanded=True)
if first_run:
    navigation.return_to_last_page(pages, current)
st.session_state[workspace.PAGE_KEY] = current.url_path
navigation.sidebar(auth)
try:
    current.run()
finally:  # also after st.rerun() and st.stop() in a page
    try:
        workspace.autosave(auth.user.id)
    except Exception:
        logging.getLogger("crispml").exception("workspace autosave failed")
        st.toast("Your last change could not be saved. It is kept in this tab; try again.")
