"""The domain. Plain typed Python: imports no Streamlit, Starlette or FastAPI."""
