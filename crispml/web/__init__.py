"""Starlette routes and middleware around the Streamlit app."""
