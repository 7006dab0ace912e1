"""A plain Streamlit page of about the content of crispml's landing page: the baseline of
bench/idle_sessions.py (run by it with ``streamlit run``, Streamlit's own settings)."""

import streamlit as st

st.set_page_config(page_title="plain", layout="wide")
with st.sidebar:
    st.markdown("**CRISP-DM**")
    for name in ("Business", "Data", "Preparation", "Modeling", "Evaluation", "Deployment"):
        st.caption(name)
    st.markdown("Signed in as **admin** (admin)")
st.title("Business understanding")
st.caption("What the project is for, what success means, and what the data must answer.")
st.selectbox("Project", ["Demo"])
st.text_area("Business objective", "Tell the three iris species apart from four measurements.")
st.text_input("Success criterion", "validation accuracy at least 0.9")
st.dataframe({"Question": ["Which species?"], "Answer": ["from the measurements"]})
