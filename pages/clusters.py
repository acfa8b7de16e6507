"""Clusters: review discovered subcategory proposals on the UMAP view, one level of the run's tree at a time; accept
(with sub-groups), rename, merge, reject."""

import plotly.graph_objects as go
import streamlit as st

from app import cache
from app import clusters_view as view
from app.auth import may
from app.scatter import LEGEND_CHARS, density_note, selected_ids, unassigned_note
from app.text import label, md, short
from app.widgets import audit_table, confirmation, fill_status, filling, flash, perform, product_grid, request
from db.proposals import PROPOSAL_ACTIONS

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
tree = cache.node_tree(slug) if parent is not None else None  # the discovery run's named tree, when it kept one
proposals = cache.proposals(parent) if parent is not None else []
colours = (["level"] if tree else []) + ["cluster" if parent is None else "proposal", "label", "prediction"]
colour = v2.radio("Colour by", colours, horizontal=True, key=f"clu_colour_{slug}")
depth = 2 if parent is None else views[slug].count(" > ") + 2  # top categories / the node's children
k = shown_k = None
if tree:
    choices, shown_k = view.level_choices(tree), view.proposals_level(proposals)
    level_key = f"clu_level_{slug}"
    if level_key not in st.session_state:  # starts at the open proposals' level, else the tree's default
        st.session_state[level_key] = next((c for c in (shown_k, tree["default_k"]) if c in choices), choices[0])
    k = st.select_slider(
        "Number of proposals",
        options=choices,
        key=level_key,
        on_change=view.set_name,  # a new level re-colours the map by its groups at once
        args=(f"clu_colour_{slug}", "level"),
        help="How finely the run's tree of clusters is cut: the number of tree groups; near-duplicates show as one.",
    )
    st.caption(md(view.level_caption(tree, k, shown_k)))
open_ones = [p for p in proposals if p["status"] == "open"]
if tree and k != shown_k:
    groups = view.level_groups(tree, k)
    offer, go_button = st.columns([4, 1], vertical_alignment="center")
    names = ", ".join(short(g["name"], 40) for g in groups[:12])
    offer.info(md(f"The map shows level {k}: {len(groups)} groups ({names}). The open proposals are not these."))
    go_button.button(  # asks through the session state: a run cut short while the level is built is run again
        f"Show these {len(groups)} proposals",
        key="clu_use_level",
        type="primary",
        disabled=not may("choose_level"),
        on_click=view.set_name,
        args=("clu_level_asked", k),
    )
    if st.session_state.get("clu_level_asked") == k:
        level = cache.level_proposals(parent, k)
        mine = [p for p in open_ones if view.from_discovery(p)]
        kw = {"parent_node_id": parent, "k": k, "run_key": level["run_key"], "clusters": level["clusters"]}
        kw["expected"] = {p["id"]: p["version"] for p in mine}
        edited = cache.edited_proposals([p["id"] for p in mine])
        if edited:
            request(view.level_question(views[slug], k, len(level["clusters"]), len(mine), edited), "choose_level", **kw)
        elif perform("choose_level", **kw):
            st.session_state["flash"] = ("ok", f"Showing the {len(level['clusters'])} proposals of level {k} (Undo below).")
        st.session_state.pop("clu_level_asked")
        st.rerun()
else:
    st.session_state.pop("clu_level_asked", None)
if (st.session_state.get("pending") or {}).get("action") == "choose_level":
    confirmation()  # next to the control it came from
data = cache.level_scatter(slug, k) if colour == "level" else cache.scatter(slug, colour, depth)

fig = None
if data is None:
    fig = go.Figure()  # proposals from a discovery run that kept no map: members only
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
# first a picture of the map drawn on the server; the interactive one (plotly.js: seconds to load) when asked for
interactive = data is None or st.toggle(
    "Select on the map", key="clu_select_map", help=md("Hover, click, box or lasso products on an interactive map.")
)
event = None
if interactive:
    fig = fig if data is None else cache.figure(data)
    event = st.plotly_chart(fig, key=f"clu_scatter_{slug}", on_select="rerun", selection_mode=("points", "box", "lasso"))
else:
    st.image(cache.map_png(data), width="stretch", output_format="PNG")  # sharp dots and text: no JPEG
density = data is not None and data["density"] is not None  # a large map: a selection counts every product inside it
selected = selected_ids(event.selection if event else None, cache.map_points(slug) if density else None)
if data is not None:
    how = "lasso or box to select" if interactive else "turn on Select on the map to hover, click or lasso products"
    st.caption(
        f"{data['n']:,} products · {unassigned_note(data['meta'])}{density_note(data)}{how} · "
        + ", ".join(f"{k} {v}s" for k, v in data["meta"].get("timings", {}).items())
    )

if parent is None:
    st.subheader(f"{len(selected):,} selected products" if selected else "Select products on the map to see them")
    if not interactive:
        st.caption("Turn on Select on the map above, then click, box or lasso products.")
    if selected:
        product_grid(cache.cards(selected[:24]), columns=6)
    st.stop()

st.caption(f"{len(open_ones)} open of {len(proposals)} proposals · discovered with SimCLR + UMAP + cascade clustering")
grid = lambda ids, columns: product_grid(cache.cards(ids), columns=columns)  # noqa: E731

if (st.session_state.get("pending") or {}).get("action") != "choose_level":
    confirmation()  # an accept's: above the proposal it is about
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
    terms = md(", ".join(short(t, 60) for t in proposal["scores"].get("top_terms", [])[:8]))
    st.caption(f"coherence {proposal['scores'].get('coherence', 0):.2f} · top terms: {terms}")
    placed, repeats = view.placement_note(proposal, cache.child_shares(proposal, parent))
    if placed:
        st.caption(md(placed))
    if repeats:
        st.warning(md(repeats))
    name = st.text_input("Name", value=proposal["name"], key=f"clu_name_{pid}")
    view.name_ideas(proposal, name_key=f"clu_name_{pid}")
    subs = proposal["scores"].get("subgroups", [])
    with_subs = bool(subs) and st.checkbox(f"Also create its {len(subs)} sub-groups as child categories", key=f"clu_subs_{pid}")
    a, r, j = st.columns(3)
    if a.button("Accept…", key="clu_accept", disabled=not may("accept_proposal"), type="primary"):
        named = view.subgroup_names(proposal) if with_subs else None
        request(
            view.accept_question(f"{views[slug]} > {name}", proposal, named),
            "accept_proposal",
            proposal_id=pid,
            name=name,
            expected_version=proposal["version"],
            **({"subgroups": named} if named else {}),
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
view.subgroups(proposal, grid)
view.explanation(proposal, grid)
with st.expander("Recent changes to proposals (Undo)"):
    audit_table(cache.audit_events(kinds=PROPOSAL_ACTIONS, limit=8))

st.subheader("Find similar products")
q1, q2 = st.columns(2)
query = q1.text_input("Search by text", key="clu_query", placeholder="e.g. white leather sneakers")
cards = {c["id"]: c for c in cache.cards(shown[:16])}
anchor = q2.selectbox(
    "Neighbours of",
    [None, *cards],
    key="clu_anchor",
    format_func=lambda i: "(choose a product)" if i is None else short(cards[i]["title"], 100),
)
# the node's FAISS indexes are built on the first search, not on the first visit (most of a cold render)
if query:
    product_grid(cache.cards(cache.node_search(views[slug]).search(query, k=12)), columns=6)
if anchor:
    product_grid(cache.cards(cache.node_search(views[slug]).neighbours(anchor, k=12)), columns=6)
