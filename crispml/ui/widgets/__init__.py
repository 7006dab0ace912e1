"""Reusable Streamlit widgets: feedback, confirmations (later: file explorer, process table)."""
