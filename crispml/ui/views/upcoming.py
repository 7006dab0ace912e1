"""Pages whose features are not built yet. They say so plainly and do nothing else."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st


def not_built_page(title: str, description: str) -> Callable[[], None]:
    def render() -> None:
        st.title(title)
        st.caption(description)
        st.info(
            "This part of the workbench is not built yet in this version of crispml.",
            icon=":material/construction:",
        )

    render.__name__ = "render_" + title.lower().replace(" ", "_")
    return render
