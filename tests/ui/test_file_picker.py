"""The reusable file picker, through AppTest, on a real home folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from crispml.services import Services

SCRIPT = """
from crispml.ui import context
from crispml.ui.widgets.file_picker import file_picker, picked_path
context.require_login()
value = file_picker("Dataset file", key="pick", extensions=(".csv",), folders={folders})
if value:
    import streamlit as st
    st.text(str(picked_path(value)))
"""


@pytest.fixture(autouse=True)
def files(svc: Services, tmp_path: Path) -> None:
    root = tmp_path / "home" / "users" / "admin" / "files"
    (root / "datasets").mkdir(parents=True)
    (root / "datasets" / "iris.csv").write_text("a\n1\n")
    (root / "datasets" / "notes.txt").write_text("not a csv")


def test_pick_a_file_through_folders_with_a_filter(svc: Services, tmp_path: Path) -> None:
    at = AppTest.from_string(SCRIPT.format(folders=False), default_timeout=30).run()
    assert not at.exception
    item = at.selectbox[0]
    assert item.options == ["📁 datasets"]
    item.select("datasets").run()
    item = at.selectbox[0]
    assert item.options == ["iris.csv"]  # notes.txt is filtered out
    item.select("datasets/iris.csv").run()
    assert at.session_state["pick"] == "~admin:datasets/iris.csv"
    assert at.text[0].value.endswith("users/admin/files/datasets/iris.csv")
    assert "Chosen: `datasets/iris.csv`" in at.caption[-1].value


def test_pick_a_folder(svc: Services) -> None:
    at = AppTest.from_string(SCRIPT.format(folders=True), default_timeout=30).run()
    at.selectbox[0].select("datasets").run()
    next(b for b in at.button if b.label == "Choose this folder").click().run()
    assert at.session_state["pick"] == "~admin:datasets"


def test_a_stale_or_foreign_value_is_refused(svc: Services) -> None:
    at = AppTest.from_string(SCRIPT.format(folders=False), default_timeout=30)
    at.session_state["pick"] = "~admin:../../secret_key"
    at.run()
    assert not at.exception
    assert "not available any more" in at.warning[0].value
    assert "'..' is not allowed" in at.warning[0].value
    assert at.session_state["pick"] is None
    at = AppTest.from_string(SCRIPT.format(folders=False), default_timeout=30)
    at.session_state["pick"] = "~someone-else:data.csv"
    at.run()
    assert not at.exception
    assert not at.text  # nothing resolved for a root this user may not read
    assert at.session_state["pick"] is None


def test_a_choice_set_by_the_picker_is_saved_in_the_workspace(svc: Services) -> None:
    """The picker sets its value in the run (not in a callback); it must still be saved."""
    script = (
        "from crispml.ui import context, workspace as ws\n"
        "from crispml.ui.widgets.file_picker import file_picker\n"
        "a = context.require_login()\nws.restore(a.user.id)\nwrote = ws.autosave(a.user.id)\n"
        "try:\n    file_picker('Data', key=ws.key('data.source'), extensions=('.csv',))\n"
        "finally:\n    (ws.note_defaults() if wrote else ws.autosave(a.user.id, end_of_run=True))\n"
    )
    at = AppTest.from_string(script, default_timeout=30).run()
    at.selectbox[0].select("datasets").run()
    at.selectbox[0].select("datasets/iris.csv").run()
    again = AppTest.from_string(script, default_timeout=30).run()  # a new session
    assert again.session_state["ws.data.source"] == "~admin:datasets/iris.csv"


def test_a_dotted_folder_is_reopened_whole(svc: Services, tmp_path: Path) -> None:
    root = tmp_path / "home" / "users" / "admin" / "files"
    (root / "data.v2").mkdir()
    (root / "data.v2" / "x.csv").write_text("a\n")
    at = AppTest.from_string(SCRIPT.format(folders=False), default_timeout=30)
    at.session_state["pick"] = "~admin:data.v2/x.csv"
    at.run()
    assert not at.warning
    assert at.selectbox[0].options == ["x.csv"]  # opened data.v2, not "datav2"
