"""Paging for a list: read the page number the user chose, fetch that page, then draw the
control with what the page turned out to be (a list that shrank shows its last page)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from crispml.core.paging import Page


def number(key: str) -> int:
    """The page the user chose (1 until they choose another)."""
    value = st.session_state.get(key, 1)
    return value if isinstance(value, int) and value > 0 else 1


def search(key: str, label: str, page_key: str) -> str:
    """A search box whose change starts the list again at its first page."""
    return str(st.text_input(label, key=key, on_change=first_page, args=(page_key,))).strip()


def first_page(page_key: str) -> None:
    """A callback: the list starts again at its first page (its filter changed)."""
    st.session_state.pop(page_key, None)


def pager(key: str, page: Page[Any], noun: str = "rows") -> None:
    """Draw "Rows 51 to 100 of 100,000" and, when there is more than one page, the page chooser."""
    if page.total == 0:
        return
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    of = f"more than {page.total:,}" if page.more else f"{page.total:,}"
    left.caption(f"{noun.capitalize()} {page.first:,} to {page.last:,} of {of}")
    if page.pages > 1:
        st.session_state[key] = page.number
        right.number_input(
            f"Page (of {page.pages:,})", min_value=1, max_value=page.pages, step=1, key=key
        )
