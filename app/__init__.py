"""Streamlit app: entry point, shared widgets and the one module of st.cache_* wrappers."""
