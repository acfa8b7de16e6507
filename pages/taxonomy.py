"""Taxonomy: browse and search categories, see their products, rename / move / merge / retire / add
with a confirmation, and the audit history with Undo."""

import streamlit as st

from app import cache
from app.auth import may
from app.widgets import audit_table, confirmation, flash, product_grid, request
from db import repo

PAGE_SIZE = 18

st.title("Taxonomy")
flash()
rows = cache.taxonomy()
if not rows:
    st.info("No categories yet: ingest a catalogue first (`make run`).")
    st.stop()
by_id = {r["id"]: r for r in rows}

left, right = st.columns([2, 3], gap="large")
with left:
    query = st.text_input("Search categories", key="tax_search", placeholder="e.g. shoes").strip().lower()
    matches = [r["id"] for r in rows if query in r["path"].lower()] or [r["id"] for r in rows]
    node_id = st.selectbox(
        "Category", matches, key="tax_node", format_func=lambda i: f"{by_id[i]['path']} ({by_id[i]['products']:,})"
    )
    node = by_id[node_id]
    others = [r["id"] for r in rows if r["id"] != node_id and not r["path"].startswith(node["path"] + " > ")]
    label = lambda i: by_id[i]["path"]  # noqa: E731

    c1, c2, c3 = st.columns(3)
    c1.metric("Products", f"{node['products']:,}", help=f"{node['direct']:,} directly in this category")
    c2.metric("Sub-categories", node["children"])
    c3.metric("Level", node["depth"])
    sources = cache.node_sources().get(node_id, [])
    if sources:  # other platforms' categories confirmed onto this node: their products are counted above
        st.caption(f"Mapped into this category ({len(sources)}):")
        st.text("\n".join(sources))
    confirmation()

    rename, move, merge, retire, add = st.tabs(["Rename", "Move", "Merge", "Retire", "Add sub-category"])
    with rename:
        new_name = st.text_input("New name", value=node["name"], key=f"rename_name_{node_id}")
        if st.button("Rename…", key="rename_btn", disabled=not may("rename_node")):
            request(
                f"Rename '{node['path']}' to '{new_name}'?",
                "rename_node",
                node_id=node_id,
                new_name=new_name,
                expected_version=node["version"],
            )
            st.rerun()
    with move:
        parent = st.selectbox(
            "New parent", [None, *others], key="move_parent", format_func=lambda i: "(top level)" if i is None else label(i)
        )
        if st.button("Move…", key="move_btn", disabled=not may("move_node")):
            where = "the top level" if parent is None else f"'{label(parent)}'"
            request(
                f"Move '{node['path']}' with its {node['products']:,} products under {where}?",
                "move_node",
                node_id=node_id,
                new_parent_id=parent,
                expected_version=node["version"],
            )
            st.rerun()
    with merge:
        target = st.selectbox("Merge into", others, key="merge_target", format_func=label)
        if st.button("Merge…", key="merge_btn", disabled=not may("merge_node")):
            request(
                f"Merge '{node['path']}' ({node['products']:,} products) into '{label(target)}'?",
                "merge_node",
                source_id=node_id,
                target_id=target,
                expected={node_id: node["version"], target: by_id[target]["version"]},
            )
            st.rerun()
    with retire:
        target = st.selectbox(
            "Move its products to",
            [None, *others],
            key="retire_target",
            format_func=lambda i: "(nowhere: it is empty)" if i is None else label(i),
        )
        if st.button("Retire…", key="retire_btn", disabled=not may("retire_node")):
            request(
                f"Retire '{node['path']}' and its sub-categories?",
                "retire_node",
                node_id=node_id,
                target_id=target,
                expected_version=node["version"],
            )
            st.rerun()
    with add:
        child = st.text_input("Name of the new sub-category", key="add_name")
        if st.button("Add…", key="add_btn", disabled=not may("add_node")):
            request(
                f"Add '{child}' under '{node['path']}'?",
                "add_node",
                parent_id=node_id,
                name=child,
                expected_version=node["version"],
            )
            st.rerun()

    st.subheader("History")
    with cache.factory()() as s:
        events = repo.audit_history(s, limit=15)
    audit_table(events)

with right:
    st.subheader("Products")
    pages = max(1, -(-node["products"] // PAGE_SIZE))
    page = st.number_input(f"Page (of {pages})", 1, pages, 1, key="tax_page") if pages > 1 else 1
    product_grid(cache.node_products(node_id, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE), columns=4)
