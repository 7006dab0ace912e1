"""A plain Streamlit page with the content of crispml's landing page (Business understanding with
its demo project: the same elements, widgets and blocks): the baseline of bench/idle_sessions.py
and bench/ui_reruns.py, run by them with ``streamlit run``."""

import streamlit as st

GOAL = "Tell the three iris species apart from four measurements."
SUCCESS = "Accuracy of at least 0.9 on held-out flowers."
NOTES = "A demo project created on first start, with the iris and shapes samples."

st.set_page_config(page_title="plain", layout="wide")
with st.sidebar:
    st.markdown("**CRISP-DM**")
    for name in ("Business", "Data", "Preparation", "Modeling", "Evaluation", "Deployment"):
        st.caption(name)
    st.markdown(":material/account_circle: Signed in as **admin** (admin)")
    st.html('<a class="logout" href="/logout" target="_self">Log out</a>')
st.title("Business understanding")
st.caption("What the project is for, what success means, and what the data must answer.")
st.selectbox("Current project", ["Iris species"], key="project")
overview, edit = st.tabs(["Overview", "Edit"])
with overview:
    st.subheader("Iris species")
    st.markdown(f"**Goal**  \n{GOAL}")
    st.markdown(f"**Success criteria**  \n{SUCCESS}")
    st.markdown(f"**Notes**  \n{NOTES}")
    st.caption("Created 2026-01-01 12:00 UTC · updated 2026-01-01 12:00 UTC")
with edit:
    st.text_input("Name", "Iris species", key="edit-name")
    st.text_area("Goal", GOAL, key="edit-goal")
    st.text_area("Success criteria", SUCCESS, key="edit-success")
    st.text_area("Notes", NOTES, key="edit-notes")
    save, discard = st.columns(2)
    save.button("Save changes", type="primary", disabled=True, key="save")
    discard.button("Discard edits", disabled=True, key="discard")
    st.button("Delete project", key="delete")
st.subheader("All projects")
projects = {"Name": ["Iris species"], "Goal": [GOAL], "Updated (UTC)": ["2026-01-01 12:00"]}
st.dataframe(projects, hide_index=True, width="stretch")
with st.expander("New project", icon=":material/add:"):
    st.text_input("Name", key="new-name")
    st.text_area("Goal", key="new-goal")
    st.text_area("Success criteria", key="new-success")
    st.text_area("Notes", key="new-notes")
    st.button("Create project", type="primary", key="create")
with st.sidebar:
    st.markdown(":material/memory: No jobs running.")
