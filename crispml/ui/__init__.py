"""Streamlit UI: the navigation shell, one page per CRISP-DM phase, tools, and widgets."""
