"""crispml: a self-hosted, multi-user ML workbench on Streamlit."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crispml")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
