"""Predictions: the active model's placements, filtered, compared with labels, exported."""

from functools import partial

import streamlit as st

from app import cache
from app.prediction_view import AGREEMENT, filter_predictions
from app.text import md
from app.widgets import fill_status, filling, prediction_cards

TABLE_ROWS = 1000

st.title("Predictions")
version, df = cache.predictions()
if version is None or df.empty:
    st.info("No predictions yet: train and predict with `make run` (or `python -m core train` then `python -m core predict`).")
    st.stop()
if version["text_first"]:
    fill_status()  # the photos and the model with them, behind the app
    st.info(
        "These are the first model's predictions, made from the titles alone. "
        + (
            "The model that reads the photos too is being trained behind the app: this page shows its predictions "
            "once it is ready."
            if filling()
            else "No model that reads the photos is active: `make run` trains one in the background, and the Models "
            "page activates one already trained."
        )
    )
st.caption(f"Model version #{version['id']} · {md(version['name'])} · hF1 {version['metrics'].get('hf1', float('nan')):.4f}")

levels = [c for c in df.columns if c.startswith("level_")]
f1, f2, f3, f4 = st.columns([3, 2, 2, 2])
node = f1.selectbox(
    "Category (label or prediction)",
    [None, *[r["path"] for r in cache.taxonomy()]],
    key="pred_node",
    format_func=lambda p: "All categories" if p is None else p,
)
conf_of = f2.selectbox(
    "Confidence of",
    ["confidence", *levels],
    key="pred_conf_of",
    format_func=lambda c: "whole path" if c == "confidence" else c.replace("_", " "),
)
low, high = f3.slider("Confidence range", 0.0, 1.0, (0.0, 1.0), step=0.01, key="pred_range")
agreement = f4.selectbox("Agreement", list(AGREEMENT), key="pred_agree")
p1, p2 = st.columns([3, 2])
platforms = p1.multiselect("Platforms", sorted(df["platform"].unique()), key="pred_platforms")
order = p2.radio("Sort", ["least confident first", "most confident first"], horizontal=True, key="pred_sort")

filters = dict(
    node_path=node,
    confidence_of=conf_of,
    confidence_range=(low, high),
    platforms=platforms,
    agreement=agreement,
    ascending=order.startswith("least"),
)
view = filter_predictions(df, **filters)
agree_share = view["agrees"].mean() if len(view) else float("nan")
m1, m2, m3 = st.columns(3)
m1.metric("Products", f"{len(view):,}", help=f"of {len(df):,} predicted")
m2.metric("Agree with label", f"{agree_share:.1%}")
m3.metric("Sent to stage 2", f"{(view['stage'] == 2).mean() if len(view) else 0:.1%}")
st.download_button(  # the CSV is built when clicked (a callable), not on every run of the page
    "Export CSV", partial(cache.prediction_csv, **filters), file_name="predictions.csv", mime="text/csv", key="pred_export"
)

prediction_cards(view.head(24).to_dict("records"), levels=levels)
with st.expander("Table"):  # the first rows only: the whole catalogue would be ~9 MB sent to the browser at every run
    if len(view) > TABLE_ROWS:
        st.caption(f"The first {TABLE_ROWS:,} of {len(view):,} products in this order: Export CSV has them all.")
    st.dataframe(view.head(TABLE_ROWS).drop(columns=["image"]), hide_index=True, width="stretch")
