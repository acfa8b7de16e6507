"""Clusters: review discovered subcategory proposals on the UMAP view; accept, rename, merge, reject."""

import plotly.graph_objects as go
import streamlit as st

from app import cache
from app.auth import may
from app.scatter import LEGEND_CHARS, unassigned_note
from app.text import label, md, short
from app.widgets import confirmation, fill_status, filling, flash, perform, product_grid, request

st.title("Clusters")
flash()
fill_status()  # while `make run` fills in discovery and the catalogue map behind the app
views = cache.maps_available()
if not views:
    if filling():
        st.info("Discovery is running in the background (above): the proposals and the map appear here when it is done.")
    else:
        st.info('No proposals yet: run `python -m core discover --node "Footwear > Shoes"` (or `make run`).')
    st.stop()

v1, v2 = st.columns([2, 3], vertical_alignment="bottom")
slug = v1.selectbox("View", list(views), key="clu_view", format_func=lambda k: views[k])
parent = None if slug == "all" else int(slug.split("-")[1])
colours = ["cluster" if parent is None else "proposal", "label", "prediction"]
colour = v2.radio("Colour by", colours, horizontal=True, key=f"clu_colour_{slug}")
depth = 2 if parent is None else views[slug].count(" > ") + 2  # top categories / the node's children
data = cache.scatter(slug, colour, depth)

fig = go.Figure()
if data is not None:
    for group in data["groups"]:
        fig.add_trace(
            go.Scattergl(
                x=group["x"],
                y=group["y"],
                mode="markers",
                name=group["name"],
                customdata=group["ids"],
                marker={
                    "size": 4 if data["n"] > 10_000 else 5,
                    "opacity": 0.35 if group["muted"] else 0.75,
                    **({"color": "lightgrey"} if group["muted"] else {}),
                },
                hovertemplate="%{fullData.name}<extra></extra>",
            )
        )
else:  # proposals from a discovery run that kept no map: members only
    for p in cache.proposals(parent):
        xs, ys = zip(*p["coords"]) if p["coords"] else ((), ())
        fig.add_trace(
            go.Scattergl(
                x=xs,
                y=ys,
                mode="markers",
                name=label(short(f"#{p['id']} {p['name']} ({p['status']})", LEGEND_CHARS)),
                customdata=p["members"],
                marker={"size": 5, "opacity": 0.75},
            )
        )
fig.update_layout(height=560, margin=dict(t=10, l=0, r=0, b=0), legend={"font": {"size": 10}}, dragmode="lasso")
event = st.plotly_chart(fig, key=f"clu_scatter_{slug}", on_select="rerun", selection_mode=("points", "box", "lasso"))
selected = [int(pt["customdata"]) for pt in (event.selection.points if event and event.selection else []) if "customdata" in pt]
if data is not None:
    st.caption(
        f"{data['n']:,} products · {unassigned_note(data['meta'])}lasso or box to select · "
        + ", ".join(f"{k} {v}s" for k, v in data["meta"].get("timings", {}).items())
    )

if parent is None:
    st.subheader(f"{len(selected):,} selected products" if selected else "Select products on the map to see them")
    if selected:
        product_grid(cache.cards(selected[:24]), columns=6)
    st.stop()

proposals = cache.proposals(parent)
open_ones = [p for p in proposals if p["status"] == "open"]
st.caption(f"{len(open_ones)} open of {len(proposals)} proposals · discovered with SimCLR + UMAP + cascade clustering")
parents = {parent: views[slug]}

confirmation()
left, right = st.columns([2, 3], gap="large")
with left:
    if not open_ones:
        st.success("Every proposal here has been decided.")
        st.stop()
    by_id = {p["id"]: p for p in open_ones}
    pid = st.selectbox(
        "Proposal",
        list(by_id),
        key="clu_proposal",
        format_func=lambda i: f"#{i} {short(by_id[i]['name'], 100)} · {len(by_id[i]['members'])} products",
    )
    proposal = by_id[pid]
    st.markdown(f"**Suggested names:** {md(', '.join(short(n, 100) for n in proposal['suggested_names'][:4]))}")
    terms = md(", ".join(short(t, 60) for t in proposal["scores"].get("top_terms", [])[:8]))
    st.caption(f"coherence {proposal['scores'].get('coherence', 0):.2f} · top terms: {terms}")
    name = st.text_input("Name", value=proposal["name"], key=f"clu_name_{pid}")
    a, r, j = st.columns(3)
    if a.button("Accept…", key="clu_accept", disabled=not may("accept_proposal"), type="primary"):
        request(
            f"Create '{parents[parent]} > {name}' with {len(proposal['members'])} products?",
            "accept_proposal",
            proposal_id=pid,
            name=name,
            expected_version=proposal["version"],
        )
        st.rerun()
    seen = proposal["version"]
    if r.button("Rename", key="clu_rename", disabled=not may("rename_proposal")) and perform(
        "rename_proposal", proposal_id=pid, name=name, expected_version=seen
    ):
        st.rerun()
    if j.button("Reject", key="clu_reject", disabled=not may("reject_proposal")) and perform(
        "reject_proposal", proposal_id=pid, expected_version=seen
    ):
        st.rerun()
    others = [i for i in by_id if i != pid]
    target = (
        st.selectbox("Merge into", others, key="clu_merge_target", format_func=lambda i: f"#{i} {short(by_id[i]['name'], 100)}")
        if others
        else None
    )
    both = {pid: seen, target: by_id[target]["version"]} if target else {}
    if (
        target
        and st.button("Merge", key="clu_merge", disabled=not may("merge_proposals"))
        and perform("merge_proposals", source_id=pid, target_id=target, expected=both)
    ):
        st.rerun()
    if selected and st.button(f"Move {len(selected)} selected out", key="clu_move_out", disabled=not may("move_out")):
        perform("move_out", proposal_id=pid, product_ids=selected, expected_version=seen)
        st.rerun()
with right:
    shown = selected or proposal["members"]
    st.subheader("Selected products" if selected else md(f"#{pid} {short(proposal['name'], 120)}"), anchor=False)
    product_grid(cache.cards(shown[:16]), columns=4)

st.subheader("Find similar products")
index = cache.node_search(parents[parent])
q1, q2 = st.columns(2)
query = q1.text_input("Search by text", key="clu_query", placeholder="e.g. white leather sneakers")
cards = {c["id"]: c for c in cache.cards(shown[:16])}
anchor = q2.selectbox(
    "Neighbours of",
    [None, *cards],
    key="clu_anchor",
    format_func=lambda i: "(choose a product)" if i is None else short(cards[i]["title"], 100),
)
if query:
    product_grid(cache.cards(index.search(query, k=12)), columns=6)
if anchor:
    product_grid(cache.cards(index.neighbours(anchor, k=12)), columns=6)
