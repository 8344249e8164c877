"""The dashboard's pages: Streamlit runs each file as a script (see ``evalkit.dashboard.app``,
which says why the directory is not named ``pages``)."""
