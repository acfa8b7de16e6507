"""Mapping: where each category of another shop platform goes in the master taxonomy. Per platform, its categories
with product counts and their mapping; for the selected one, sample products, the suggestion with its confidence and
runners-up, and Confirm / Change / Reject / "No master equivalent"; bulk confirm above a confidence; the "Suggest
mappings" background job; recent decisions with Undo. Every decision is one audited, undoable action."""

import streamlit as st

from app import cache, mapping_view

st.title("Mapping")
mapping_view.flash()
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
