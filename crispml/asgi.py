"""The one module-level ASGI ``app``, for ``uvicorn crispml.asgi:app`` or ``streamlit run``.

Settings come from crispml.toml and CRISPML_* variables. ``crispml run`` does not import this
module; it builds the same app through ``crispml.app.create_app``.
"""

import streamlit as st

from crispml.app import build_parts

_parts = build_parts()
app = st.App(_parts.script_path, **_parts.app_kwargs())
