"""Platform taxonomies and category mappings: a second platform never adds master nodes; a confirmed mapping labels
its products (and re-ingest keeps those labels in step); every decision is one audited, undoable action."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from core.data.ingest import ColumnMap
from core.steps.ingest import ingest
from core.steps.train import load_products
from db import actions, mappings, repo
from db.models import AuditEvent, CategoryMapping, Label, Platform, PlatformCategory, Product, TaxonomyNode
from db.repo import CurationError
from db.session import transaction
from db.users import operator

MAP = ColumnMap.parse(["id=sku", "title=name", "path=category", "description=none", "brand=none", "image=none"])
MASTER = (
    "sku,name,category\n"
    "M1,Red tee,Apparel > Topwear > Tshirts\nM2,Blue tee,Apparel > Topwear > Tshirts\n"
    "M3,White shirt,Apparel > Topwear > Shirts\nM4,Runner,Footwear > Shoes > Sports Shoes\n"
    "M5,Loafer,Footwear > Shoes > Casual Shoes\n"
)
OTHER = (
    "sku,name,category\n"
    "H1,Basic tee,Garment Upper body > T-shirt\nH2,Slim tee,Garment Upper body > T-shirt\n"
    "H3,Trainer,Shoes > Sneakers\nH4,Lamp,Furniture > Lamp\n"
)


def write(tmp_path, text, name):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def two_platforms(db_url, factory, tmp_path):
    """`shop` (the first ingested: it seeds the master taxonomy) and `hm` (its own tree, nothing mapped yet)."""
    ingest(write(tmp_path, MASTER, "shop.csv"), platform="shop", db_url=db_url, mapping=MAP)
    report = ingest(write(tmp_path, OTHER, "hm.csv"), platform="hm", db_url=db_url, mapping=MAP)
    with factory() as s:
        cats = {c.path: c.id for c in s.scalars(select(PlatformCategory).join(Platform).where(Platform.name == "hm"))}
        nodes = {n.path: n.id for n in s.scalars(select(TaxonomyNode))}
        pids = dict(s.execute(select(Product.external_id, Product.id)).all())
    return {"report": report, "cats": cats, "nodes": nodes, "pids": pids}


def labels_of(factory, source="mapping") -> dict[str, str]:
    with factory() as s:
        rows = s.execute(
            select(Product.external_id, TaxonomyNode.path)
            .join(Label, Label.product_id == Product.id)
            .join(TaxonomyNode, TaxonomyNode.id == Label.node_id)
            .where(Label.source == source)
        )
        return dict(rows.all())


def test_a_second_platform_keeps_its_own_tree_and_adds_no_master_node(factory, two_platforms):
    report, nodes = two_platforms["report"], two_platforms["nodes"]
    assert report.nodes_created == 0 and report.labels_added == 0
    assert "3 of 3 categories of 'hm' have no confirmed master mapping" in " ".join(report.notes)
    # the master tree is the first platform's only: 2 roots, 2 + 2 inner nodes... no H&M name anywhere
    assert sorted(p for p in nodes if " > " not in p) == ["Apparel", "Footwear"]
    assert not any("Garment" in p or "Furniture" in p for p in nodes)
    # H&M's tree as ingested, with its parents, and each product pointing at its category
    assert sorted(two_platforms["cats"]) == [
        "Furniture",
        "Furniture > Lamp",
        "Garment Upper body",
        "Garment Upper body > T-shirt",
        "Shoes",
        "Shoes > Sneakers",
    ]
    with factory() as s:
        tee = s.get(PlatformCategory, two_platforms["cats"]["Garment Upper body > T-shirt"])
        assert s.get(PlatformCategory, tee.parent_id).path == "Garment Upper body" and tee.depth == 2
        assert s.get(Product, two_platforms["pids"]["H3"]).platform_category_id == two_platforms["cats"]["Shoes > Sneakers"]
        # the seeding platform's categories are confirmed identity mappings
        seeded = s.scalars(select(CategoryMapping).where(CategoryMapping.origin == "seed")).all()
        assert {(m.status, m.master_node_id) for m in seeded} == {
            ("confirmed", nodes[p])
            for p in ("Apparel > Topwear > Tshirts", "Apparel > Topwear > Shirts", "Footwear > Shoes > Sports Shoes")
        } | {("confirmed", nodes["Footwear > Shoes > Casual Shoes"])}
    assert labels_of(factory) == {}


def test_confirming_a_mapping_labels_its_products_and_undo_removes_them(factory, two_platforms):
    cats, nodes = two_platforms["cats"], two_platforms["nodes"]
    before_counts = _counts(factory)
    with transaction(factory) as s:
        actions.perform(
            s,
            "confirm_mapping",
            user=operator("ana"),
            category_id=cats["Garment Upper body > T-shirt"],
            node_id=nodes["Apparel > Topwear > Tshirts"],
        )
    assert labels_of(factory) == {"H1": "Apparel > Topwear > Tshirts", "H2": "Apparel > Topwear > Tshirts"}
    # the master node now counts the two H&M products beside the shop's two
    tshirts = nodes["Apparel > Topwear > Tshirts"]
    assert _counts(factory)[tshirts] == (4, 4) and before_counts[tshirts] == (2, 2)
    with factory() as s:
        event = s.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
        assert event.action == "confirm_mapping" and event.actor == "ana" and "2 products labelled" in event.summary
        assert mappings.node_sources(s) == {tshirts: ["hm: Garment Upper body > T-shirt"]}
    with transaction(factory) as s:
        actions.undo(s, event_id=event.id, actor="ana")
    assert labels_of(factory) == {} and _counts(factory) == before_counts
    with factory() as s:
        assert (
            s.scalar(
                select(CategoryMapping).where(CategoryMapping.platform_category_id == cats["Garment Upper body > T-shirt"])
            ).status
            == "suggested"
        )


def _counts(factory):
    with factory() as s:
        return repo.node_counts(s)


def test_reingest_keeps_mapping_labels_in_step_with_the_file(db_url, factory, tmp_path, two_platforms):
    cats, nodes = two_platforms["cats"], two_platforms["nodes"]
    with transaction(factory) as s:
        mappings.confirm_mapping(
            s, category_id=cats["Garment Upper body > T-shirt"], node_id=nodes["Apparel > Topwear > Tshirts"], actor="ana"
        )
    # next month: H5 is a new tee, H2 moved to Sneakers (unmapped), H1 unchanged
    changed = (
        OTHER.replace("H2,Slim tee,Garment Upper body > T-shirt", "H2,Slim tee,Shoes > Sneakers")
        + "H5,New tee,Garment Upper body > T-shirt\n"
    )
    report = ingest(write(tmp_path, changed, "hm2.csv"), platform="hm", db_url=db_url, mapping=MAP)
    assert labels_of(factory) == {"H1": "Apparel > Topwear > Tshirts", "H5": "Apparel > Topwear > Tshirts"}
    assert (report.inserted, report.labels_added, report.labels_changed, report.nodes_created) == (1, 1, 1, 0)


def test_a_mapping_onto_a_common_ancestor_labels_there_and_training_leaves_those_products_out(factory, two_platforms):
    cats, nodes = two_platforms["cats"], two_platforms["nodes"]
    with transaction(factory) as s:
        mappings.confirm_mapping(s, category_id=cats["Shoes > Sneakers"], node_id=nodes["Footwear > Shoes"], actor="ana")
    assert labels_of(factory) == {"H3": "Footwear > Shoes"}
    cat = load_products(factory, labelled_only=False)
    inner = {cat.external_ids[i] for i in np.flatnonzero(cat.at_inner_node)}
    assert inner == {"H3"}
    trained_on = set(load_products(factory, labelled_only=True).external_ids)
    assert trained_on == {"M1", "M2", "M3", "M4", "M5"}


def test_a_persons_label_wins_over_a_mapping_label(factory, two_platforms):
    cats, nodes, pids = two_platforms["cats"], two_platforms["nodes"], two_platforms["pids"]
    with transaction(factory) as s:
        mappings.confirm_mapping(
            s, category_id=cats["Garment Upper body > T-shirt"], node_id=nodes["Apparel > Topwear > Tshirts"], actor="ana"
        )
        actions.perform(
            s, "relabel_product", user=operator("bo"), product_id=pids["H1"], node_id=nodes["Apparel > Topwear > Shirts"]
        )
    with factory() as s:
        assert repo.product_label(s, pids["H1"]) == (s.get(TaxonomyNode, nodes["Apparel > Topwear > Shirts"]), "human")
        assert repo.product_label(s, pids["H2"])[1] == "mapping"


def test_bulk_confirm_takes_only_suggestions_above_the_threshold_and_undoes_as_one(factory, two_platforms):
    cats, nodes = two_platforms["cats"], two_platforms["nodes"]
    suggestions = [
        _suggestion(cats["Garment Upper body > T-shirt"], nodes["Apparel > Topwear > Tshirts"], 0.95),
        _suggestion(cats["Shoes > Sneakers"], nodes["Footwear > Shoes > Sports Shoes"], 0.80),
        _suggestion(cats["Furniture > Lamp"], nodes["Apparel"], 0.20),
    ]
    with transaction(factory) as s:
        assert mappings.store_suggestions(s, platform="hm", suggestions=suggestions, actor="suggest") == {
            "new": 3,
            "updated": 0,
            "kept": 0,
        }
    with transaction(factory) as s:
        assert actions.perform(s, "bulk_confirm_mappings", user=operator("ana"), platform="hm", min_confidence=0.75) == 2
    assert labels_of(factory) == {
        "H1": "Apparel > Topwear > Tshirts",
        "H2": "Apparel > Topwear > Tshirts",
        "H3": "Footwear > Shoes > Sports Shoes",
    }
    with factory() as s:
        event = s.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
        assert event.action == "bulk_confirm_mappings" and len(event.before["mappings"]) == 2
    with transaction(factory) as s:  # a new suggestion run keeps the decisions
        counts = mappings.store_suggestions(s, platform="hm", suggestions=suggestions, actor="suggest")
        assert counts == {"new": 0, "updated": 1, "kept": 2}
    with transaction(factory) as s:
        actions.undo(s, event_id=event.id, actor="ana")
    assert labels_of(factory) == {}
    with factory() as s:
        statuses = (
            s.execute(select(CategoryMapping.status).join(PlatformCategory).join(Platform).where(Platform.name == "hm"))
            .scalars()
            .all()
        )
        assert sorted(statuses) == ["suggested"] * 3


def _suggestion(category_id, node_id, confidence):
    return {"category_id": category_id, "node_id": node_id, "confidence": confidence, "ambiguous": False, "candidates": []}


def test_no_equivalent_removes_the_labels_and_wrong_decisions_are_refused(factory, two_platforms):
    cats, nodes = two_platforms["cats"], two_platforms["nodes"]
    lamp = cats["Furniture > Lamp"]
    with transaction(factory) as s:
        mappings.confirm_mapping(s, category_id=lamp, node_id=nodes["Apparel"], actor="ana")
    assert labels_of(factory) == {"H4": "Apparel"}
    with transaction(factory) as s:
        mapping = mappings.reject_mapping(s, category_id=lamp, no_equivalent=True, actor="ana")
        assert (mapping.status, mapping.master_node_id) == ("no_equivalent", None)
    assert labels_of(factory) == {}
    with pytest.raises(CurationError, match="already marked no equivalent"), transaction(factory) as s:
        mappings.reject_mapping(s, category_id=lamp, no_equivalent=True, actor="ana")
    with pytest.raises(CurationError, match="has no suggestion yet"), transaction(factory) as s:
        mappings.confirm_mapping(s, category_id=lamp, actor="ana")
    with transaction(factory) as s:
        actions.perform(
            s,
            "retire_node",
            user=operator("ana"),
            node_id=nodes["Footwear > Shoes > Casual Shoes"],
            target_id=nodes["Footwear > Shoes > Sports Shoes"],
        )
    with pytest.raises(CurationError, match="is retired"), transaction(factory) as s:
        mappings.confirm_mapping(s, category_id=lamp, node_id=nodes["Footwear > Shoes > Casual Shoes"], actor="ana")
    with pytest.raises(CurationError, match="Unknown platform 'zara'"), factory() as s:
        mappings.category_table(s, platform="zara")


def test_the_category_table_and_coverage_count_from_the_data(factory, two_platforms):
    cats, nodes = two_platforms["cats"], two_platforms["nodes"]
    with transaction(factory) as s:
        mappings.confirm_mapping(
            s, category_id=cats["Garment Upper body > T-shirt"], node_id=nodes["Apparel > Topwear > Tshirts"], actor="ana"
        )
    with factory() as s:
        table = {r["path"]: r for r in mappings.category_table(s, platform="hm")}
        cover = {r["platform"]: r for r in mappings.coverage(s)}
    # only categories holding products; the counts are the file's (2 tees, 1 trainer, 1 lamp)
    assert {p: (r["products"], r["status"]) for p, r in table.items()} == {
        "Garment Upper body > T-shirt": (2, "confirmed"),
        "Shoes > Sneakers": (1, "unmapped"),
        "Furniture > Lamp": (1, "unmapped"),
    }
    assert (cover["hm"]["products"], cover["hm"]["mapped_products"], cover["hm"]["categories"]) == (4, 2, 3)
    assert (cover["shop"]["products"], cover["shop"]["mapped_products"], cover["shop"]["seeds_master"]) == (5, 5, True)


def test_seed_master_makes_a_later_platform_add_master_nodes(db_url, factory, tmp_path):
    ingest(write(tmp_path, MASTER, "shop.csv"), platform="shop", db_url=db_url, mapping=MAP)
    report = ingest(write(tmp_path, OTHER, "hm.csv"), platform="hm", db_url=db_url, mapping=MAP, seed_master=True)
    assert report.nodes_created == 6 and report.labels_added == 4
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(TaxonomyNode).where(TaxonomyNode.parent_id.is_(None))) == 5


def test_undo_after_a_later_ingest_also_unlabels_the_products_that_ingest_added(db_url, factory, tmp_path, two_platforms):
    cats, nodes = two_platforms["cats"], two_platforms["nodes"]
    with transaction(factory) as s:
        mappings.confirm_mapping(
            s, category_id=cats["Garment Upper body > T-shirt"], node_id=nodes["Apparel > Topwear > Tshirts"], actor="ana"
        )
        event_id = s.scalar(select(func.max(AuditEvent.id)))
    more = OTHER + "H5,New tee,Garment Upper body > T-shirt\n"
    ingest(write(tmp_path, more, "hm2.csv"), platform="hm", db_url=db_url, mapping=MAP)
    assert set(labels_of(factory)) == {"H1", "H2", "H5"}
    with transaction(factory) as s:
        actions.undo(s, event_id=event_id, actor="ana")
    assert labels_of(factory) == {}  # H5 came after the decision, and goes with it


def test_a_product_that_loses_its_category_on_reingest_loses_its_master_label(db_url, factory, tmp_path, two_platforms):
    cats, nodes = two_platforms["cats"], two_platforms["nodes"]
    with transaction(factory) as s:
        mappings.confirm_mapping(
            s, category_id=cats["Garment Upper body > T-shirt"], node_id=nodes["Apparel > Topwear > Tshirts"], actor="ana"
        )
    report = ingest(
        write(tmp_path, OTHER.replace("H2,Slim tee,Garment Upper body > T-shirt", "H2,Slim tee,"), "hm2.csv"),
        platform="hm",
        db_url=db_url,
        mapping=MAP,
    )
    assert labels_of(factory) == {"H1": "Apparel > Topwear > Tshirts"}
    assert report.labels_changed == 1
