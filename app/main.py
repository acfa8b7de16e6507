"""Streamlit entry point: `streamlit run app/main.py`. Builds the navigation over pages/.

The project is installed (`pip install -e .`, done by `make install`), so `app`, `core` and `db` import from
wherever Streamlit runs this script.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.widgets import sidebar

ROOT = Path(__file__).resolve().parent.parent

st.set_page_config(page_title="Taxonomy Curator", page_icon=":material/account_tree:", layout="wide")
PAGES = [
    st.Page(ROOT / "pages" / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page(ROOT / "pages" / "taxonomy.py", title="Taxonomy", icon=":material/account_tree:"),
    st.Page(ROOT / "pages" / "mapping.py", title="Mapping", icon=":material/compare_arrows:"),
    st.Page(ROOT / "pages" / "predictions.py", title="Predictions", icon=":material/insights:"),
    st.Page(ROOT / "pages" / "clusters.py", title="Clusters", icon=":material/scatter_plot:"),
    st.Page(ROOT / "pages" / "review.py", title="Review", icon=":material/fact_check:"),
    st.Page(ROOT / "pages" / "models.py", title="Models", icon=":material/model_training:"),
    st.Page(ROOT / "pages" / "import_page.py", title="Import", icon=":material/upload_file:", url_path="import"),
]
navigation = st.navigation(PAGES)
sidebar()
navigation.run()
