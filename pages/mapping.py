"""Mapping: where each category of another shop platform goes in the master taxonomy. Per platform, its categories
with product counts and their mapping; for the selected one, sample products, the suggestion with its confidence and
runners-up, and Confirm / Change / Reject / "No master equivalent"; bulk confirm above a confidence; the "Suggest
mappings" background job; recent decisions with Undo. Every decision is one audited, undoable action.

Once the Google Product Taxonomy is imported, the other target: each master category's Google category, with the same
suggestion, decisions, bulk confirm and job ("Suggest Google categories"), and the shopping feed as a download."""

import streamlit as st

from app import cache, mapping_view
from app.mapping_view import GOOGLE

st.title("Mapping")
mapping_view.flash()
if mapping_view.target_choice(cache.standard_names()) == GOOGLE:
    feed, job = st.columns([1, 2], vertical_alignment="bottom")
    with feed:
        mapping_view.feed_download()
    with job:
        mapping_view.google_suggest_control()
    rows = cache.standard_table(GOOGLE)
    if not rows:
        st.info("The master taxonomy has no category yet: nothing to map.")
        st.stop()
    mapping_view.google_summary(rows)
    status, bulk = st.columns([1, 2], vertical_alignment="bottom")
    with status:
        shown = mapping_view.status_filter(rows, key="std_status")
    with bulk:
        mapping_view.google_bulk_confirm(rows)
    mapping_view.google_table(shown)
    if not shown:
        st.caption("No master category with this status.")
    else:
        by_id = {r["node_id"]: r for r in shown}
        node_id = st.selectbox(
            "Master category (type to search)", list(by_id), key="std_node", format_func=lambda i: by_id[i]["master_path"]
        )
        cats = cache.standard_categories(GOOGLE)
        mapping_view.google_suggestion(by_id[node_id], cats)
        mapping_view.google_decisions(by_id[node_id], cats)
    st.subheader("Recent decisions")
    mapping_view.history(mapping_view.STANDARD_DECISIONS)
    st.stop()

platforms = cache.mapping_platforms()
if not platforms:
    st.info(
        "No platform to map yet. The first catalogue ingested seeds the master taxonomy; ingest another shop's "
        "catalogue on the Import page (or `python -m core ingest --catalog FILE --platform NAME`) and its categories "
        "are listed here, to map onto the master taxonomy (`python -m core mapping suggest --platform NAME`)."
    )
    st.stop()

top, job = st.columns([1, 2], vertical_alignment="bottom")
platform = top.selectbox("Platform", platforms, key="map_platform")
with job:
    mapping_view.suggest_control(platform)
rows = cache.mapping_table(platform)
if not rows:
    st.info("This platform has no product in any category yet: nothing to map.")
    st.stop()
mapping_view.summary(rows)

status, bulk = st.columns([1, 2], vertical_alignment="bottom")
with status:
    shown = mapping_view.status_filter(rows)
with bulk:
    mapping_view.bulk_confirm(platform, rows)
mapping_view.category_table(shown)
if not shown:
    st.caption("No category with this status.")
else:
    by_id = {r["category_id"]: r for r in shown}
    category_id = st.selectbox(
        "Category (type to search)",
        list(by_id),
        key="map_category",
        format_func=lambda i: f"{by_id[i]['path']} ({by_id[i]['products']:,})",
    )
    row = by_id[category_id]
    products, decide = st.columns([2, 3], gap="large")
    with products:
        st.text(f"{row['path']} · {row['products']:,} product{'' if row['products'] == 1 else 's'}")
        mapping_view.samples(cache.category_samples(category_id))
    with decide:
        mapping_view.suggestion(row)
        masters = {r["id"]: r["path"] for r in cache.taxonomy() if r["status"] == "active"}
        mapping_view.decisions(row, masters)

st.subheader("Recent decisions")
mapping_view.history()
