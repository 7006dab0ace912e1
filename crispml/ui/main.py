"""The Streamlit entry script: check the login, build the navigation, run the current page."""

import streamlit as st

from crispml.ui import context, navigation

st.set_page_config(page_title="crispml", page_icon=":material/insights:", layout="wide")
auth = context.require_login()
current = st.navigation(navigation.pages_for(auth), expanded=True)
navigation.sidebar(auth)
current.run()
