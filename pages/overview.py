"""Overview: catalogue counts per platform, label coverage, images, mapping coverage, and the taxonomy tree."""

import streamlit as st

from app import cache
from app.text import label, md, short
from app.widgets import tree_markdown

MAPPING_COLUMNS = {
    "confirmed": "confirmed",
    "suggested": "suggested",
    "rejected": "rejected",
    "no_equivalent": "no equivalent",
    "unmapped": "not suggested",
}

st.title("Overview")
stats, rows = cache.stats(), cache.taxonomy()
if not stats:
    st.info("The catalogue is empty. Ingest one with `make run` or `python -m core ingest --catalog PATH`.")
    st.stop()

products = sum(s["products"] for s in stats)
labelled = sum(s["labelled"] for s in stats)
photos = sum(s.get("images_ok", 0) for s in stats)
broken = sum(s.get("images_missing", 0) + s.get("images_unreadable", 0) for s in stats)
cols = st.columns(5)
cols[0].metric("Products", f"{products:,}")
cols[1].metric("Platforms", len(stats))
cols[2].metric("Labelled", f"{labelled / products:.1%}", help=f"{labelled:,} products have a category")
cols[3].metric("With photo", f"{photos:,}", help=f"{broken:,} image files missing or unreadable")
cols[4].metric("Categories", f"{len(rows):,}", help="active taxonomy nodes")

st.subheader("Platforms")
st.dataframe(
    [
        {
            "platform": s["platform"],
            "products": s["products"],
            "labelled": s["labelled"],
            "coverage": s["labelled"] / s["products"],
            "photos": s.get("images_ok", 0),
            "missing": s.get("images_missing", 0),
            "unreadable": s.get("images_unreadable", 0),
        }
        for s in stats
    ],
    hide_index=True,
    column_config={"coverage": st.column_config.ProgressColumn(min_value=0, max_value=1, format="percent")},
)

coverage = cache.mapping_coverage()
if any(not c["seeds_master"] for c in coverage):  # only once a second platform's categories need mapping
    st.subheader("Mapping coverage")
    st.caption("How much of each platform reaches the master taxonomy: products in a category with a confirmed mapping.")
    st.dataframe(
        [
            {
                "platform": c["platform"],
                "role": "seeds the master taxonomy" if c["seeds_master"] else "mapped",
                "products": c["products"],
                "mapped products": c["mapped_products"],
                "mapped": c["mapped_products"] / c["products"] if c["products"] else 0.0,
                "categories": c["categories"],
                **{label: c.get(status, 0) for status, label in MAPPING_COLUMNS.items()},
            }
            for c in coverage
        ],
        hide_index=True,
        column_config={"mapped": st.column_config.ProgressColumn(min_value=0, max_value=1, format="percent")},
    )

st.subheader("Taxonomy")
# the tabs track which is open, so a hidden tab's content is not built: the treemap (Plotly) only when asked for
tree_tab, chart_tab = st.tabs(["Tree", "Treemap"], key="overview_tab", on_change="rerun")
if tree_tab.open:
    with tree_tab:
        for root in (r for r in rows if r["parent_id"] is None):
            with st.expander(
                f"{md(short(root['name'], 120))} · {root['products']:,} product{'' if root['products'] == 1 else 's'}"
            ):
                st.markdown(tree_markdown(rows, root["id"]))
if chart_tab.open:
    import plotly.express as px  # only for the treemap

    with chart_tab:
        fig = px.treemap(
            names=[label(short(r["name"], 60)) for r in rows],  # Plotly renders HTML in labels
            ids=[str(r["id"]) for r in rows],
            parents=[str(r["parent_id"]) if r["parent_id"] else "" for r in rows],
            values=[r["products"] for r in rows],
            branchvalues="total",
            maxdepth=3,
        )
        fig.update_layout(margin=dict(t=10, l=0, r=0, b=0), height=520)
        st.plotly_chart(fig, width="stretch", key="overview_treemap")
