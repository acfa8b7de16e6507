"""Two model versions compared: per-level scores and per-node F1 of path strings (core.classify.compare), and the
comparison of two stored versions' predictions on the newer one's held-out products (core.steps.compare).

Every expected number is worked out by hand in the comments beside it."""

from __future__ import annotations

import pytest

from core.classify.compare import changed_nodes, level_scores, node_f1
from core.data.ingest import ColumnMap
from core.steps.compare import compare_versions, current_labels, predicted_paths
from core.steps.ingest import ingest
from db import repo
from db.models import ModelVersion, Prediction, Product
from db.session import transaction


def test_node_f1_counts_true_and_predicted_paths():
    pairs = [("A", "A"), ("A", "B"), ("B", "B"), ("C", "")]  # "" = no prediction: never a predicted path
    f1 = node_f1(pairs)
    assert set(f1) == {"A", "B", "C"}
    assert f1["A"] == {"f1": 0.6667, "support": 2, "predicted": 1}  # 2 * 1 / (2 true + 1 predicted)
    assert f1["B"] == {"f1": 0.6667, "support": 1, "predicted": 2}  # 2 * 1 / (1 + 2)
    assert f1["C"] == {"f1": 0.0, "support": 1, "predicted": 0}
    assert node_f1([]) == {}


def test_level_scores_cut_both_paths_to_each_level():
    truth = {1: "A > x", 2: "A > y", 3: "B > z", 4: "B"}
    pred = {1: "A > x", 2: "A > x", 3: "A > z"}  # product 4 has no prediction
    top, second = level_scores(truth, pred)
    # level 1: (A, A) (A, A) (B, A) (B, ""): 2 of 4 right; F1 A = 2*2/(2+3) = 0.8, B = 0 -> macro 0.4
    assert top == {"level": 1, "accuracy": 0.5, "macro_f1": 0.4, "n": 4}
    # level 2, only the 3 products labelled that deep: (A>x, A>x) (A>y, A>x) (B>z, A>z): 1 of 3 right;
    # F1 A>x = 2*1/(1+2) = 0.6667, A>y = B>z = 0; A>z (support 0) is not averaged: 0.6667 / 3 = 0.2222
    assert second == {"level": 2, "accuracy": 0.3333, "macro_f1": 0.2222, "n": 3}
    # a prediction shallower than the label is wrong at the deeper level, not an error
    assert level_scores({1: "A > x"}, {1: "A"})[1] == {"level": 2, "accuracy": 0.0, "macro_f1": 0.0, "n": 1}
    assert level_scores({}, {}) == []


def test_changed_nodes_keep_new_nodes_and_real_changes_new_first():
    old = {"A": {"f1": 0.5, "support": 3}, "B": {"f1": 0.9, "support": 2}, "D": {"f1": 0.7, "support": 4}}
    new = {"A": {"f1": 0.8, "support": 3}, "B": {"f1": 0.902, "support": 2}, "C": {"f1": 0.4, "support": 1}}
    nodes = changed_nodes(old, new, is_new=lambda path: path == "C", min_change=0.005)
    # B moved 0.002 (< 0.005): left out; D (gone from the new version) fell by 0.7, A rose by 0.3
    assert [n["path"] for n in nodes] == ["C", "D", "A"]
    assert nodes[0] == {"path": "C", "old_f1": 0.0, "new_f1": 0.4, "delta": 0.4, "support": 1, "new_node": True}
    assert nodes[1] == {"path": "D", "old_f1": 0.7, "new_f1": 0.0, "delta": -0.7, "support": 4, "new_node": False}
    assert nodes[2]["delta"] == 0.3
    # nothing new and a lower threshold: every change, largest first (0.7, 0.4, 0.3, 0.002)
    assert [n["path"] for n in changed_nodes(old, new, is_new=lambda _: False, min_change=0.001)] == ["D", "C", "A", "B"]


PATHS = ["A > x", "A > y", "B > z", "B > z"]  # products 0-3
OLD = ["A > x", "A > x", "B > z", "A > x"]  # the old version: products 1 and 3 wrong
NEW = ["A > x", "A > y", "B > z", "B > z"]  # the new version: every product right


@pytest.fixture
def two_versions(db_url, tmp_path, factory):
    """Products 0-3 labelled PATHS, an old version predicting OLD (it never knew "A > y") and a new one predicting NEW."""
    (tmp_path / "cat.csv").write_text("sku,name,category\n" + "".join(f"{i},item {i},{p}\n" for i, p in enumerate(PATHS)))
    mapping = ColumnMap.parse(["id=sku", "title=name", "path=category", "image=none", "description=none", "brand=none"])
    ingest(tmp_path / "cat.csv", platform="shop", db_url=db_url, mapping=mapping)
    with transaction(factory) as s:
        ids = {p.external_id: p.id for p in s.query(Product).all()}
        node = {path: repo.node_by_path(s, path).id for path in ("A", "B", "A > x", "A > y", "B > z")}
        known = {path: i for path, i in node.items() if path != "A > y"}
        old = ModelVersion(name="old", params={"split": "hash", "seed": 0, "node_ids": known})
        new = ModelVersion(name="new", params={"split": "hash", "seed": 0}, metrics={"test_product_ids": list(ids.values())})
        s.add_all([old, new])
        s.flush()
        for version, preds in ((old, OLD), (new, NEW)):
            for ext, path in enumerate(preds):
                for level, prefix in ((1, path.split(" > ")[0]), (2, path)):
                    row = {"product_id": ids[str(ext)], "model_version_id": version.id, "level": level, "confidence": 0.9}
                    s.add(Prediction(**row, node_id=node[prefix]))
        return old.id, new.id, [ids[str(i)] for i in range(4)]


def test_stored_paths_are_the_deepest_prediction_and_the_effective_label(two_versions, factory):
    old_id, _, pids = two_versions
    with factory() as s:
        assert predicted_paths(s, model_version_id=old_id, product_ids=pids) == dict(zip(pids, OLD))
        assert current_labels(s, pids) == dict(zip(pids, PATHS))
        assert current_labels(s, pids[:1]) == {pids[0]: "A > x"}


def test_compare_versions_on_the_new_versions_held_out_products(two_versions, factory):
    old_id, new_id, _ = two_versions
    with factory() as s:
        result = compare_versions(s, old_id=old_id, new_id=new_id)
    assert result["n"] == 4 and result["same_split"] is True and result["with_predictions"] == {old_id: 4, new_id: 4}
    top, second = result["levels"]
    # old, level 1: (A,A) (A,A) (B,B) (B,A): 3 of 4; F1 A = 2*2/(2+3) = 0.8, B = 2*1/(2+1) = 0.6667
    assert top["old"] == {"level": 1, "accuracy": 0.75, "macro_f1": round((0.8 + 0.6667) / 2, 4), "n": 4}
    # old, level 2: 2 of 4; F1 A>x = 2*1/(1+3) = 0.5, A>y = 0, B>z = 2*1/(2+1) = 0.6667 -> (0.5 + 0 + 0.6667) / 3
    assert second["old"] == {"level": 2, "accuracy": 0.5, "macro_f1": 0.3889, "n": 4}
    assert top["new"]["accuracy"] == second["new"]["accuracy"] == 1.0 and second["new"]["macro_f1"] == 1.0
    # "A > y" is new (its id was not among the old version's nodes), then the largest changes
    assert [(n["path"], n["delta"], n["new_node"]) for n in result["nodes"]] == [
        ("A > y", 1.0, True),
        ("A > x", 0.5, False),
        ("B > z", 0.3333, False),
    ]
    assert result["nodes"][2]["support"] == 2
    with factory() as s, pytest.raises(ValueError, match="unknown model version 999"):
        compare_versions(s, old_id=old_id, new_id=999)
