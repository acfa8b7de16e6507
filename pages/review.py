"""Review: products whose label the out-of-fold model contradicts, one at a time, most suspicious first.

Accept the suggested path (A), keep the label (K), choose another path (L), or skip to the next (N).
Every decision is one audited transaction that writes the product's human label; Undo is in the history.
"""

import streamlit as st

from app import cache
from app.auth import may, may_start
from app.text import md, short
from app.widgets import audit_table, card_text, fill_status, filling, flash, follow_job, perform, start_job
from db import repo
from db import review as db_review

st.title("Review")
flash()


@st.fragment(run_every=2.0)
def scoring_status() -> None:
    follow_job(cache.latest_job("review"))  # reruns the page when the new queue is ready


with cache.factory()() as s:
    counts = db_review.counts(s)
top = st.columns([1, 1, 1, 2], vertical_alignment="bottom")
top[0].metric("To review", f"{counts.get('open', 0):,}")
top[1].metric("Decided", f"{sum(v for k, v in counts.items() if k != 'open'):,}")
top[2].metric("Labels changed", f"{counts.get('accepted', 0) + counts.get('relabelled', 0):,}")
if top[3].button(
    "Rescore labels" if counts else "Score labels",
    key="review_rescore",
    disabled=not may_start("review"),
    help="Cross-validated scoring of every label in the background (a few minutes on the full catalogue); "
    "decided items stay decided.",
):
    start_job("review")
    st.rerun()
scoring_status()
fill_status()  # while `make run` fills in the label scores behind the app
if not counts:
    if filling():
        st.info("The labels are being scored in the background (above): the queue appears here when it is done.")
    else:
        st.info("No review queue yet: score the labels (button above, or `python -m core review`).")
    st.stop()

rows = cache.taxonomy()
by_id = {r["id"]: r for r in rows}
f1, f2, f3 = st.columns([3, 2, 2])
node = f1.selectbox(
    "Category (current label)",
    [None, *by_id],
    key="review_node",
    format_func=lambda i: "All categories" if i is None else by_id[i]["path"],
)
platforms = sorted(r["platform"] for r in cache.stats())
platform = f2.selectbox("Platform", [None, *platforms], key="review_platform", format_func=lambda p: p or "All platforms")
min_score = f3.slider(
    "Minimum issue score",
    0.0,
    1.0,
    0.0,
    step=0.05,
    key="review_min",
    help="1 - the out-of-fold probability of the current label path",
)

skipped = st.session_state.setdefault("review_skipped", [])
with cache.factory()() as s:
    items = db_review.queue(s, node_id=node, platform=platform, min_score=min_score, limit=200 + len(skipped))
pending = [i for i in items if i["id"] not in skipped]
if items and not pending:  # every item was skipped: start the round again
    skipped.clear()
    pending = items
if not pending:
    st.success("Nothing left to review with these filters.")
else:
    item = pending[0]
    with st.container(border=True):
        pic, info = st.columns([1, 3], gap="large")
        with pic:
            if item["image"]:
                st.image(item["image"], width="stretch")
            else:
                st.caption("no photo")
        with info:
            card_text(item["title"], chars=200, heading=True)
            st.caption(
                f"{md(item['platform'])} #{md(short(item['external_id'], 200))} · issue score {item['score']:.2f}"
                + (" · flagged by confident learning" if item["flagged"] else "")
            )
            if item["description"]:
                st.markdown(f"> {md(item['description'])}…")
            st.markdown(f"**Current label:** {md(item['label']) or '—'}")
            if item["label_changed"]:
                st.caption(":orange[relabelled since it was scored]")
            st.markdown(f"**Suggested:** {md(item['suggested'])} · confidence {item['suggested_confidence']:.2f}")
            if item["levels"]:
                st.caption(
                    " · ".join(
                        f"L{lv['level']}: P(label) {lv['self_confidence']:.2f}, margin {lv['margin']:+.2f}"
                        + (" ⚑" if lv["flag"] else "")
                        for lv in item["levels"]
                    )
                )
        b1, b2, b3 = st.columns(3)
        decided = None
        if b1.button(
            "Accept suggestion",
            key=f"review_accept_{item['id']}",
            disabled=not may("review_decision"),
            type="primary",
            shortcut="a",
            width="stretch",
        ):
            decided = ("accept", None)
        if b2.button(
            "Keep label", key=f"review_keep_{item['id']}", disabled=not may("review_decision"), shortcut="k", width="stretch"
        ):
            decided = ("keep", None)
        if b3.button("Next (skip)", key=f"review_skip_{item['id']}", shortcut="n", width="stretch"):
            skipped.append(item["id"])
            st.rerun()
        active = [r["id"] for r in rows]
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        choice = c1.selectbox(
            "Or choose another category (type to search)",
            active,
            index=None,
            key=f"review_choice_{item['id']}",
            format_func=lambda i: by_id[i]["path"],
            placeholder="Search the taxonomy…",
        )
        if c2.button(
            "Relabel",
            key=f"review_choose_{item['id']}",
            shortcut="l",
            disabled=choice is None or not may("review_decision"),
            width="stretch",
        ):
            decided = ("choose", choice)
        st.caption("Keys: **A** accept · **K** keep · **N** next · **L** relabel with the chosen category")
        if decided:
            decision, node_id = decided
            if perform("review_decision", item_id=item["id"], decision=decision, node_id=node_id):
                target = {"accept": item["suggested"], "keep": item["label"]}.get(decision) or by_id[node_id]["path"]
                st.session_state["flash"] = ("ok", f"{item['external_id']}: labelled {target!r} (Undo in the history below).")
            st.rerun()

st.subheader(f"Queue ({len(pending):,} shown of {counts.get('open', 0):,} open)")
st.dataframe(
    [
        {
            "score": round(i["score"], 3),
            "title": i["title"],
            "label": i["label"],
            "suggested": i["suggested"],
            "suggested conf.": round(i["suggested_confidence"], 3),
            "flag": i["flagged"],
            "platform": i["platform"],
        }
        for i in pending[:100]
    ],
    hide_index=True,
    width="stretch",
)
st.subheader("Recent decisions")
with cache.factory()() as s:
    events = repo.audit_history(s, limit=10, actions=("review_decision", "undo"))
audit_table(events)
