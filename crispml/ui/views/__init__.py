"""One module per page (not `pages/`: Streamlit would treat that folder as v1 page scripts)."""
