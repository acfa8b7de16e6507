"""The Clusters page's parts: the levels of a node's discovery tree (the granularity control, the map coloured by a
level, a level's proposals built from the stored tree without re-running discovery) and a proposal's sub-groups,
parts, explanation and alternative names.

A node's map (`core.steps.maps`) holds each product's leaf cluster and, in its meta's "tree"
(`core.discover.levels.Hierarchy.as_dict`), the tree over those leaves with the named groups of every level: so the
map is re-coloured by a level from the file alone; only making a level the node's proposals needs the features,
names and explanations of `core.steps.discover.level_clusters` (`build_level`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import streamlit as st

from app.text import md, short
from core.steps.discover import HIERARCHY, LevelSource, level_clusters

DEFAULT_RULES = {  # how `Hierarchy` picks its default level without labels (core.discover.hierarchy.DEFAULT_K)
    "gap": "the largest relative jump between successive merge heights of the tree",
    "silhouette": "the highest silhouette of the products",
}
SOURCES = {"taxonomy": "master", "google": "Google", "suggested": "suggested"}  # where a name idea comes from
SAMPLES = 4  # sample products shown per sub-group (in SAMPLE_COLUMNS columns: small photos)
SAMPLE_COLUMNS = 6
MEMBERS_SHOWN = 4  # typical / doubtful members shown


def map_tree(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The named tree of a node map's discovery run (None for a map without one, e.g. from an older run)."""
    tree = meta.get("tree") or {}
    return tree if tree.get("levels") and "directions" in tree else None


def level_choices(tree: dict[str, Any]) -> list[int]:
    """The levels (numbers of tree groups) the control offers: those the map holds from `HIERARCHY["k_min"]` up
    (the default level always among them)."""
    held = sorted(int(k) for k in tree["levels"])
    low = min(HIERARCHY["k_min"], int(tree["default_k"]))
    return [k for k in held if k >= low] or held


def level_groups(tree: dict[str, Any], k: int) -> list[dict[str, Any]]:
    """The proposals of the level of `k` tree groups as the tree names them: [{"name", "size", "leaves", "parts"}]."""
    return tree["levels"][str(k)]


def level_names(tree: dict[str, Any], k: int, leaves: np.ndarray) -> list[str]:
    """Each product's group name at level `k`, from its leaf cluster (`leaves`, -1 unassigned): the map's colours."""
    lookup = {int(leaf): group["name"] for group in level_groups(tree, k) for leaf in group["leaves"]}
    return [lookup.get(int(c), "unassigned") for c in leaves]


def proposals_level(proposals: list[dict[str, Any]]) -> int | None:
    """The tree level the node's open proposals from discovery show (the most common one; None when none says)."""
    levels = Counter(p["scores"].get("level", {}).get("k") for p in proposals if p["status"] == "open" and from_discovery(p))
    levels.pop(None, None)
    return levels.most_common(1)[0][0] if levels else None


def from_discovery(proposal: dict[str, Any]) -> bool:
    """Whether a proposal came from a discovery run (not from a platform category: run_key "mapping:<id>")."""
    return not str(proposal.get("run_key") or "").startswith("mapping:")


def default_note(tree: dict[str, Any]) -> str:
    """The caption's words on the default level: which it is and that no label chose it."""
    rule = DEFAULT_RULES.get(tree.get("default_rule"), "a label-free rule")
    return f"default {tree['default_k']}, chosen without labels ({rule})"


def level_caption(tree: dict[str, Any], k: int, shown: int | None) -> str:
    """What the control's caption says of level `k`: its proposals, merged near-duplicates, the default, what is open."""
    groups = level_groups(tree, k)
    merged = sum(1 for g in groups if g.get("parts"))
    parts = f" ({merged} of them made of near-duplicate groups shown as one)" if merged else ""
    open_note = f" · the open proposals are level {shown}" if shown is not None else ""
    return f"Level {k} of {len(tree['leaf_ids'])} clusters: {len(groups)} proposals{parts} · {default_note(tree)}{open_note}"


def build_level(source: LevelSource, k: int) -> dict[str, Any]:
    """The proposals of the level of `k` groups (`core.steps.discover.level_clusters`): {"run_key", "k", "clusters"},
    what the "choose_level" action takes."""
    clusters = level_clusters(
        source.leaves, source.hier, source.node, k=k, alternatives=source.alternatives, text_dim=source.text_dim
    )
    return {"run_key": f"{source.run_key}:k{k}", "k": int(k), "clusters": clusters}


def stored_level(run_key: str, k: int, clusters: list[dict[str, Any]]) -> dict[str, Any]:
    """A level the discovery run precomputed (`core.steps.discover.stored_level`) in the form of `build_level`."""
    return {"run_key": f"{run_key}:k{k}", "k": int(k), "clusters": clusters}


KEPT = "kept_"  # + a sub-group name box's key: what was typed there, kept while its expander is closed (not drawn)


def keep_typed(key: str) -> None:
    """Keep a sub-group name box's text beyond its widget, which Streamlit forgets on a run that does not draw it."""
    st.session_state[KEPT + key] = st.session_state[key]


def subgroup_names(proposal: dict[str, Any]) -> list[str]:
    """The names the curator gave the proposal's sub-groups (the widgets of `subgroups`, or what they kept while
    their expander is closed), else the stored ones."""
    pid = proposal["id"]
    names = []
    for i, sub in enumerate(proposal["scores"].get("subgroups", [])):
        key = f"clu_sub_{pid}_{i}"
        names.append(st.session_state.get(key, st.session_state.get(KEPT + key, sub["name"])))
    return names


def accept_question(path: str, proposal: dict[str, Any], names: list[str] | None) -> str:
    """The confirmation's question of an accept (with its sub-groups when `names`)."""
    also = f" and its {len(names)} sub-groups as child categories ({', '.join(names)})" if names else ""
    return f"Create '{path}' with {len(proposal['members'])} products{also}?"


def level_question(path: str, k: int, n_new: int, open_ones: int, edited: dict[int, str]) -> str:
    """The confirmation's question of making level `k` the proposals when open ones were curated since the run."""
    verbs = {"rename_proposal": "renamed", "merge_proposals": "merged", "move_out": "had products moved out"}
    what = ", ".join(f"#{pid} {verbs.get(action, 'changed')}" for pid, action in sorted(edited.items()))
    return (
        f"Replace the {open_ones} open proposals under '{path}' by the {n_new} of level {k}? {len(edited)} of them were "
        f"changed since the run ({what}): they are set aside with their changes, and Undo brings them back."
    )


def placement_note(proposal: dict[str, Any], shares: list[tuple[str, int]]) -> tuple[str, str | None]:
    """(caption, warning or None) of where the proposal's products sit today among the node's existing children:
    the caption names the largest (up to 3, with shares of the proposal); the warning, when its best name repeats
    an existing child ("existing_child" of the run) that already holds most of its products, says that accepting
    would make a second category for what exists. Plain text: a caller escapes it for Markdown."""
    n = len(proposal["members"])
    if not n or not shares:
        return "", None
    placed = ", ".join(f"{name} {count:,} ({count / n:.0%})" for name, count in shares[:3])
    more = f" and {len(shares) - 3} more" if len(shares) > 3 else ""
    caption = f"Its {n:,} products today: {placed}{more}"
    child = proposal["scores"].get("existing_child")
    held = dict(shares).get(child, 0) if child else 0
    if not child or held * 2 <= n:
        return caption, None
    return caption, (
        f"Named like the existing category '{child}', which already holds {held / n:.0%} of its products: accepting "
        f"makes a second category beside it. Rename it to what sets it apart, or reject it if it is that category."
    )


def set_name(key: str, name: str) -> None:
    """on_click of a name idea: put it in the proposal's name box."""
    st.session_state[key] = name


def name_ideas(proposal: dict[str, Any], *, name_key: str) -> None:
    """The nearest existing names (master taxonomy, Google) and the other suggested names as one-click names."""
    ideas = [
        {"name": a["name"], "source": a["source"], "path": a.get("path", "")} for a in proposal["scores"].get("alternatives", [])
    ]
    known = {i["name"].casefold() for i in ideas} | {proposal["name"].casefold()}
    ideas += [
        {"name": n, "source": "suggested", "path": ""} for n in proposal["suggested_names"][1:4] if n.casefold() not in known
    ]
    if not ideas:
        return
    st.caption("Name ideas, click to use one: the nearest existing names of the master taxonomy and of Google's")
    with st.container(horizontal=True, wrap=True, gap="small"):
        for i, idea in enumerate(ideas[:9]):
            st.button(
                md(f"{short(idea['name'], 40)} · {SOURCES.get(idea['source'], idea['source'])}"),
                key=f"clu_idea_{proposal['id']}_{i}",
                help=md(idea["path"]) if idea["path"] else None,
                on_click=set_name,
                args=(name_key, idea["name"]),
                width="content",
            )


def subgroups(proposal: dict[str, Any], grid) -> None:
    """The proposal's sub-groups (a name box each, size, sample products) and, for merged near-duplicates, its parts.

    Args:
        grid: (product ids, columns) -> None, showing their cards (`app.widgets.product_grid` of `app.cache.cards`).
    """
    scores, pid = proposal["scores"], proposal["id"]
    if scores.get("parts"):
        parts = ", ".join(f"{p['name']} ({p['size']:,})" for p in scores["parts"])
        st.caption(md(f"Shown as one proposal: near-duplicate groups {parts}"))
    subs = scores.get("subgroups", [])
    if not subs:
        return
    box = st.expander(f"Sub-groups ({len(subs)}): names, sizes, sample products", key=f"clu_subs_open_{pid}", on_change="rerun")
    if not box.open:  # drawn only when opened: its cards are most of the page (a first render 1.7 -> 1.0 s)
        return
    with box:
        for i, sub in enumerate(subs):
            name_col, grid_col = st.columns([1, 3], vertical_alignment="top")
            key = f"clu_sub_{pid}_{i}"
            typed = name_col.text_input(
                f"Sub-group {i + 1} ({sub['size']:,} products)",
                value=st.session_state.get(KEPT + key, sub["name"]),
                key=key,
                on_change=keep_typed,
                args=(key,),
            )
            if typed.strip().casefold() == proposal["name"].strip().casefold():
                name_col.caption("The proposal's own name: a child of that name would repeat its parent.")
            with grid_col:
                grid(sub["members"][:SAMPLES], SAMPLE_COLUMNS)


def terms_text(entries: list[Any], *, sibling: bool = False) -> str:
    """Separating terms as "heel (80% here, 4% there)" (`core.discover.explain.separating_terms` entries, whose
    "share_here" is of the group they are more common in: the sibling's when `sibling`)."""
    out = []
    for t in entries:
        if not isinstance(t, dict):
            out.append(str(t))
            continue
        here, there = (
            (t.get("share_there", 0), t.get("share_here", 0)) if sibling else (t.get("share_here", 0), t.get("share_there", 0))
        )
        out.append(f"{t['term']} ({here:.0%} here, {there:.0%} there)")
    return ", ".join(out)


def explanation(proposal: dict[str, Any], grid) -> None:
    """Why the group is what it is: top terms, its most typical and most doubtful members, what separates it from its
    nearest sibling (`grid` as in `subgroups`)."""
    expl = proposal["scores"].get("explanation")
    if not expl:
        return
    box = st.expander(
        "Why this group: top terms, typical and doubtful members, nearest sibling",
        key=f"clu_why_open_{proposal['id']}",
        on_change="rerun",
    )
    if not box.open:  # drawn only when opened, as the sub-groups
        return
    with box:
        terms = ", ".join(short(t, 40) for t in proposal["scores"].get("top_terms", [])[:10])
        st.markdown(f"**Top terms:** {md(terms) or '—'}")
        sibling = expl.get("nearest_sibling")
        if sibling:
            here, there = terms_text(expl.get("more_here", [])), terms_text(expl.get("more_there", []), sibling=True)
            st.markdown(f"**Why not its nearest sibling, {md(short(sibling, 80))}:** more often here: {md(here) or '—'}")
            st.caption(f"more often in {md(short(sibling, 80))}: {md(there) or '—'}")
        for title, key in (("Most typical (closest to the centre)", "typical"), ("Most doubtful (farthest)", "doubtful")):
            ids = [m["id"] for m in expl.get(key, [])[:MEMBERS_SHOWN]]
            if ids:
                st.markdown(f"**{title}**")
                grid(ids, SAMPLE_COLUMNS)
