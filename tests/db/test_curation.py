"""Every curation action and its undo, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from db import actions, curation, repo
from db.models import AuditEvent, Label, Platform, Product, TaxonomyNode
from db.repo import CurationError
from db.session import transaction


def run(factory, fn, **kwargs):
    with transaction(factory) as s:
        result = fn(s, actor="tester", **kwargs)
        return result.id if hasattr(result, "id") else result


def paths(factory, status="active"):
    with factory() as s:
        return sorted(s.scalars(select(TaxonomyNode.path).where(TaxonomyNode.status == status)))


def label_paths(factory):
    """{external_id: effective label path}."""
    with factory() as s:
        eff = repo.effective_labels_subquery()
        rows = s.execute(
            select(Product.external_id, TaxonomyNode.path)
            .join(eff, eff.c.product_id == Product.id)
            .join(TaxonomyNode, TaxonomyNode.id == eff.c.node_id)
        )
        return dict(rows.all())


def last_event(factory) -> int:
    with factory() as s:
        return s.scalar(select(func.max(AuditEvent.id)))


def undo_last(factory):
    return run(factory, actions.undo, event_id=last_event(factory))


def snapshot(factory):
    return paths(factory), paths(factory, "retired"), label_paths(factory)


def test_counts_roll_up_the_tree(factory, tree):
    with factory() as s:
        counts = repo.node_counts(s)
    assert counts[tree["casual"]] == (2, 2)
    assert counts[tree["Footwear > Shoes"]] == (0, 3)
    assert counts[tree["Footwear"]] == (0, 4)
    assert counts[tree["Apparel"]] == (0, 2)


def test_rename_updates_descendant_paths_and_undoes(factory, tree):
    before = snapshot(factory)
    run(factory, curation.rename_node, node_id=tree["Footwear > Shoes"], new_name="Sneakers & Shoes")
    assert "Footwear > Sneakers & Shoes > Casual Shoes" in paths(factory)
    assert label_paths(factory)["p1"] == "Footwear > Sneakers & Shoes > Casual Shoes"
    undo_last(factory)
    assert snapshot(factory) == before


def test_rename_to_existing_path_is_refused(factory, tree):
    with pytest.raises(CurationError, match="already exists"):
        run(factory, curation.rename_node, node_id=tree["casual"], new_name="Sports Shoes")
    assert "Footwear > Shoes > Casual Shoes" in paths(factory)


@pytest.mark.parametrize("bad", ["", "   ", "Shoes > Boots"])
def test_invalid_names_are_refused(factory, tree, bad):
    with pytest.raises(CurationError):
        run(factory, curation.add_node, parent_id=tree["Footwear"], name=bad)


def test_move_and_undo(factory, tree):
    before = snapshot(factory)
    run(factory, curation.move_node, node_id=tree["flips"], new_parent_id=tree["Footwear > Shoes"])
    assert label_paths(factory)["p4"] == "Footwear > Shoes > Flip Flops"
    with factory() as s:
        assert s.get(TaxonomyNode, tree["flips"]).depth == 3
    undo_last(factory)
    assert snapshot(factory) == before


def test_move_under_own_descendant_is_refused(factory, tree):
    with pytest.raises(CurationError, match="own descendant"):
        run(factory, curation.move_node, node_id=tree["Footwear"], new_parent_id=tree["casual"])


def test_add_node_and_undo(factory, tree):
    node_id = run(factory, curation.add_node, parent_id=tree["Footwear > Shoes"], name="Boots")
    assert "Footwear > Shoes > Boots" in paths(factory)
    run(factory, curation.relabel_product, product_id=tree["p1"], node_id=node_id)
    add_event = last_event(factory) - 1
    with pytest.raises(CurationError, match="product labels"):
        run(factory, actions.undo, event_id=add_event)
    undo_last(factory)  # the relabel
    run(factory, actions.undo, event_id=add_event)
    assert "Footwear > Shoes > Boots" not in paths(factory)


def test_merge_moves_products_and_children_and_undoes(factory, tree):
    before = snapshot(factory)
    run(factory, curation.merge_node, source_id=tree["tshirts"], target_id=tree["tops"])
    labels = label_paths(factory)
    assert labels["p5"] == labels["p6"] == "Apparel > Topwear > Tops"
    assert "Apparel > Topwear > Tshirts" in paths(factory, "retired")
    undo_last(factory)
    assert snapshot(factory) == before


def test_merge_moves_subcategories(factory, tree):
    run(factory, curation.merge_node, source_id=tree["Footwear > Shoes"], target_id=tree["Apparel"])
    assert label_paths(factory)["p3"] == "Apparel > Sports Shoes"
    undo_last(factory)
    assert label_paths(factory)["p3"] == "Footwear > Shoes > Sports Shoes"


def test_merge_into_own_subtree_is_refused(factory, tree):
    with pytest.raises(CurationError, match="itself or its own sub-category"):
        run(factory, curation.merge_node, source_id=tree["Footwear"], target_id=tree["casual"])


def test_retire_moves_every_product_so_none_is_orphaned(factory, tree):
    before = snapshot(factory)
    run(factory, curation.retire_node, node_id=tree["Footwear > Shoes"], target_id=tree["flips"])
    labels = label_paths(factory)
    assert {labels[p] for p in ("p1", "p2", "p3", "p4")} == {"Footwear > Flip Flops"}
    assert set(paths(factory, "retired")) == {
        "Footwear > Shoes",
        "Footwear > Shoes > Casual Shoes",
        "Footwear > Shoes > Sports Shoes",
    }
    with factory() as s:  # no label anywhere points at a retired node
        orphans = s.scalar(select(func.count()).select_from(Label).join(TaxonomyNode).where(TaxonomyNode.status == "retired"))
    assert orphans == 0
    undo_last(factory)
    assert snapshot(factory) == before


def test_retire_without_target_is_refused_when_products_would_be_orphaned(factory, tree):
    with pytest.raises(CurationError, match="choose where they go"):
        run(factory, curation.retire_node, node_id=tree["Footwear > Shoes"], target_id=None)
    assert "Footwear > Shoes" in paths(factory)


def test_retire_empty_node_without_target(factory, tree):
    node_id = run(factory, curation.add_node, parent_id=tree["Apparel"], name="Empty")
    run(factory, curation.retire_node, node_id=node_id, target_id=None)
    assert "Apparel > Empty" in paths(factory, "retired")


def test_relabel_wins_over_platform_label_and_undoes(factory, tree):
    run(factory, curation.relabel_product, product_id=tree["p5"], node_id=tree["tops"])
    assert label_paths(factory)["p5"] == "Apparel > Topwear > Tops"
    with factory() as s:
        assert (
            s.scalar(select(Label.node_id).where(Label.product_id == tree["p5"], Label.source == "platform")) == tree["tshirts"]
        )
    undo_last(factory)
    assert label_paths(factory)["p5"] == "Apparel > Topwear > Tshirts"
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Label).where(Label.source == "human")) == 0


def test_relabel_to_unknown_or_retired_category_is_refused(factory, tree):
    with pytest.raises(CurationError, match="Unknown category id 99999"):
        run(factory, curation.relabel_product, product_id=tree["p1"], node_id=99999)
    run(factory, curation.merge_node, source_id=tree["tshirts"], target_id=tree["tops"])
    with pytest.raises(CurationError, match="retired"):
        run(factory, curation.relabel_product, product_id=tree["p1"], node_id=tree["tshirts"])
    with pytest.raises(CurationError, match="Unknown product id"):
        run(factory, curation.relabel_product, product_id=99999, node_id=tree["tops"])


def test_undo_refuses_when_later_changes_depend_on_it(factory, tree):
    run(factory, curation.rename_node, node_id=tree["casual"], new_name="Everyday Shoes")
    first = last_event(factory)
    run(factory, curation.rename_node, node_id=tree["casual"], new_name="Daily Shoes")
    with pytest.raises(CurationError, match="changed again later"):
        run(factory, actions.undo, event_id=first)
    undo_last(factory)
    run(factory, actions.undo, event_id=first)
    assert "Footwear > Shoes > Casual Shoes" in paths(factory)


def test_undo_twice_and_undo_of_unknown_events_are_refused(factory, tree):
    run(factory, curation.rename_node, node_id=tree["casual"], new_name="Everyday Shoes")
    event = last_event(factory)
    run(factory, actions.undo, event_id=event)
    with pytest.raises(CurationError, match="already undone"):
        run(factory, actions.undo, event_id=event)
    with pytest.raises(CurationError, match="cannot be undone"):
        run(factory, actions.undo, event_id=last_event(factory))
    with pytest.raises(CurationError, match="Unknown audit event"):
        run(factory, actions.undo, event_id=12345)


def test_every_action_is_audited_and_versions_the_taxonomy(factory, tree):
    with factory() as s:
        v0 = repo.taxonomy_version(s)
    run(factory, curation.rename_node, node_id=tree["casual"], new_name="Everyday Shoes")
    run(factory, curation.relabel_product, product_id=tree["p1"], node_id=tree["sports"])
    undo_last(factory)
    with factory() as s:
        events = [(e.action, e.actor) for e in repo.audit_history(s, limit=3)]
        assert repo.taxonomy_version(s) == v0 + 1  # relabel and its undo do not change the taxonomy
    assert events == [("undo", "tester"), ("relabel_product", "tester"), ("rename_node", "tester")]


def test_a_failing_action_leaves_the_database_unchanged(factory, tree):
    before = snapshot(factory)
    with pytest.raises(CurationError):
        with transaction(factory) as s:
            curation.rename_node(s, node_id=tree["casual"], new_name="Everyday", actor="t")
            curation.rename_node(s, node_id=tree["sports"], new_name="Everyday", actor="t")  # clash
    assert snapshot(factory) == before
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_platform_registry(factory):
    with transaction(factory) as s:
        a = repo.get_or_create_platform(s, name="shop", root="/a")
        b = repo.get_or_create_platform(s, name="shop", root="/b")
        assert a.id == b.id
    with factory() as s:
        assert s.scalar(select(Platform.root)) == "/b"
