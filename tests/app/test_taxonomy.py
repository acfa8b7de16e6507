"""The Taxonomy page: confirmed curation actions, refusals, the product grid, what other platforms map into a node,
and Undo in the history."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select

from db import mappings, repo
from db.models import AuditEvent, TaxonomyNode
from db.session import get_sessionmaker, transaction
from tests.app.helpers import external_ids, label_path, node_id, run_page, slice_paths
from tests.app.mapping_data import SHOP, hm_products, make_world
from tests.app.shown import shown


def test_rename_with_confirmation_then_undo(app_env, tree):
    leaf = tree.leaves()[0]
    leaf_id = node_id(app_env, leaf)
    at = run_page("taxonomy")
    at.selectbox(key="tax_node").set_value(leaf_id).run()
    at.text_input(key=f"rename_name_{leaf_id}").input("Renamed Leaf").run()
    at.button(key="rename_btn").click().run()
    assert "Rename" in at.warning[0].value and node_id(app_env, leaf) == leaf_id  # not yet renamed
    at.button(key="confirm_action").click().run()
    assert not at.exception, at.exception
    new_path = leaf.rsplit(" > ", 1)[0] + " > Renamed Leaf"
    assert node_id(app_env, new_path) == leaf_id
    assert "Done" in at.success[0].value
    with get_sessionmaker(app_env)() as s:
        event = s.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()))
    assert event.action == "rename_node"
    assert any(f"`#{event.id}`" in m.value and "_Category renamed_" in m.value for m in at.markdown)  # its registry label
    at.button(key=f"undo_{event.id}").click().run()
    assert node_id(app_env, leaf) == leaf_id
    assert "Undid" in at.success[0].value


def test_cancel_leaves_everything_as_it_was(app_env, tree):
    leaf = tree.leaves()[0]
    at = run_page("taxonomy")
    at.selectbox(key="tax_node").set_value(node_id(app_env, leaf)).run()
    at.text_input(key="add_name").input("New child").run()
    at.button(key="add_btn").click().run()
    at.button(key="cancel_action").click().run()
    assert not at.warning
    with get_sessionmaker(app_env)() as s:
        assert repo.node_by_path(s, leaf + " > New child") is None


def test_refused_action_shows_the_reason_and_changes_nothing(app_env, tree):
    leaf_id = node_id(app_env, tree.leaves()[0])
    at = run_page("taxonomy")
    at.selectbox(key="tax_node").set_value(leaf_id).run()
    at.button(key="retire_btn").click().run()  # no target while it holds products
    at.button(key="confirm_action").click().run()
    assert "choose where they go" in at.error[0].value
    with get_sessionmaker(app_env)() as s:
        assert s.get(TaxonomyNode, leaf_id).status == "active"


def test_merge_moves_every_product_of_the_source_to_the_target(app_env, app_slice, tree):
    source, target = tree.leaves()[:2]
    source_id, target_id = node_id(app_env, source), node_id(app_env, target)
    at = run_page("taxonomy")
    at.selectbox(key="tax_node").set_value(source_id).run()
    at.selectbox(key="merge_target").set_value(target_id).run()
    at.button(key="merge_btn").click().run()
    at.button(key="confirm_action").click().run()
    assert not at.exception, at.exception
    paths = slice_paths(pd.read_parquet(app_slice))  # every product's category before the merge, from the file
    now = {ext: label_path(app_env, pid)[0] for pid, ext in external_ids(app_env).items()}
    moved = sorted(e for e, p in paths.items() if p in (source, target))
    assert len(moved) == tree.products(source) + tree.products(target)
    assert sorted(e for e, p in now.items() if p == target) == moved
    assert [e for e, p in now.items() if p == source] == []
    assert {e: p for e, p in now.items() if e not in moved} == {e: p for e, p in paths.items() if e not in moved}


def test_product_grid_shows_the_node_products(app_env, tree):
    leaf = tree.leaves()[0]
    at = run_page("taxonomy")
    at.selectbox(key="tax_node").set_value(node_id(app_env, leaf)).run()
    captions = [shown(c.value) for c in at.caption]
    assert sum(leaf in c for c in captions) == min(tree.products(leaf), 18)


def test_a_master_node_lists_what_maps_into_it_and_counts_those_products(tmp_path, monkeypatch):
    world = make_world(tmp_path)
    tee, tshirts = "Garment Upper body > T-shirt", "Apparel > Topwear > Tshirts"
    with transaction(get_sessionmaker(world.url)) as s:
        mappings.confirm_mapping(s, category_id=world.cats[tee], node_id=world.nodes[tshirts], actor="ana")
    monkeypatch.setenv("DATABASE_URL", world.url)
    at = run_page("taxonomy")
    at.selectbox(key="tax_node").set_value(world.nodes[tshirts]).run()
    own = sum(1 for _, _, path in SHOP if path == tshirts)
    assert {m.label: m.value for m in at.metric}["Products"] == str(own + len(hm_products(tee)))
    assert f"hm: {tee}" in [t.value for t in at.text]
    at.selectbox(key="tax_node").set_value(world.nodes["Apparel > Topwear > Shirts"]).run()  # nothing maps into it
    assert not [t.value for t in at.text if t.value.startswith("hm: ")]
    roots = sorted(o.rsplit(" (", 1)[0] for o in at.selectbox(key="tax_node").options if " > " not in o)
    assert roots == sorted({p.split(" > ")[0] for _, _, p in SHOP})  # the master tree gained no root of hm's
