"""About: crispml's version, its license and the third-party packages it runs on."""

from __future__ import annotations

import streamlit as st

from crispml.core.about import third_party, version


def render() -> None:
    st.title("About crispml")
    st.markdown(
        f"**crispml {version()}**: a self-hosted, multi-user ML workbench on Streamlit, "
        "one page per CRISP-DM phase."
    )
    left, right, _ = st.columns([1, 1.6, 2])
    left.link_button("License", "/files/about/LICENSE", icon=":material/gavel:")
    right.link_button(
        "Third-party notices", "/files/about/THIRD-PARTY-NOTICES.txt", icon=":material/list:"
    )
    st.caption("Both open in a new browser tab.")
    packages = third_party()
    st.subheader("Third-party packages")
    st.dataframe(
        [{"Package": p.name, "Version": p.version, "License": p.license} for p in packages],
        hide_index=True,
        width="stretch",
    )
    st.caption(f"{len(packages)} packages installed alongside crispml.")
