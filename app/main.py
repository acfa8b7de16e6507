"""Streamlit entry point: `streamlit run app/main.py`. Builds the navigation over pages/."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app.widgets import sidebar  # noqa: E402

st.set_page_config(page_title="Taxonomy Curator", page_icon=":material/account_tree:", layout="wide")
PAGES = [
    st.Page(ROOT / "pages" / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page(ROOT / "pages" / "taxonomy.py", title="Taxonomy", icon=":material/account_tree:"),
    st.Page(ROOT / "pages" / "predictions.py", title="Predictions", icon=":material/insights:"),
    st.Page(ROOT / "pages" / "clusters.py", title="Clusters", icon=":material/scatter_plot:"),
    st.Page(ROOT / "pages" / "review.py", title="Review", icon=":material/fact_check:"),
    st.Page(ROOT / "pages" / "models.py", title="Models", icon=":material/model_training:"),
]
navigation = st.navigation(PAGES)
sidebar()
navigation.run()
