"""app/clusters_view.py without a page: the levels the control offers, each product's group at a level (the map's
colours), the level the open proposals show, and a restored tree that gives back the levels the map stored."""

from __future__ import annotations

import numpy as np

from app import clusters_view as view
from core.discover.levels import Hierarchy
from tests.core.test_discover_hierarchy import FAMILY_TITLES, two_level_data


def fitted_tree() -> tuple[Hierarchy, dict, np.ndarray]:
    X, labels, family = two_level_data(per_leaf=10)
    titles = [FAMILY_TITLES[int(family[lab])][i % 3] for i, lab in enumerate(labels)]
    hier = Hierarchy(k_min=2, k_max=8, node_name="Shoes").fit(X, labels, titles)
    return hier, hier.as_dict(), labels


def test_level_names_give_each_product_the_name_of_the_group_holding_its_leaf():
    _, tree, labels = fitted_tree()
    leaves = np.concatenate([labels, [-1]])  # and one unassigned product
    for k in (2, 3, 8):
        names = view.level_names(tree, k, leaves)
        by_leaf = {int(leaf): g["name"] for g in tree["levels"][str(k)] for leaf in g["leaves"]}
        assert names[:-1] == [by_leaf[int(leaf)] for leaf in labels] and names[-1] == "unassigned"
        assert len(set(names[:-1])) == len(tree["levels"][str(k)])  # one colour per group of the level


def test_the_control_offers_the_held_levels_from_k_min_and_always_the_default():
    tree = {"levels": {str(k): [] for k in range(1, 9)}, "default_k": 6}
    assert view.level_choices(tree) == [4, 5, 6, 7, 8]  # HIERARCHY k_min is 4
    assert view.level_choices({**tree, "default_k": 2}) == [2, 3, 4, 5, 6, 7, 8]


def test_the_open_proposals_level_is_the_most_common_among_open_discovery_proposals():
    def p(k, status="open", run_key="r"):
        return {"status": status, "run_key": run_key, "scores": {"level": {"k": k}}}

    assert view.proposals_level([p(5), p(5), p(7), p(9, "accepted"), p(9, run_key="mapping:3"), p(9, run_key="mapping:4")]) == 5
    assert view.proposals_level([p(9, "rejected"), {"status": "open", "run_key": None, "scores": {}}]) is None


def test_a_restored_tree_gives_back_the_levels_the_map_stored():
    hier, tree, labels = fitted_tree()
    stored = {k: [{**g, "name": f"Stored {i}"} for i, g in enumerate(groups)] for k, groups in tree["levels"].items()}
    restored = Hierarchy.restore({**tree, "levels": stored}, labels, None)
    assert [g["name"] for g in restored.level(3)] == [f"Stored {i}" for i in range(len(stored["3"]))]
    assert [g["name"] for g in restored.level()] == [g["name"] for g in stored[str(tree["default_k"])]]
    assert restored.default_k_ == tree["default_k"] and restored.tree_.n_leaves == 8  # the rest is the hierarchy's
    unmerged = restored.level(3, merge_duplicates=False)
    assert [g["leaves"] for g in unmerged] == [g["leaves"] for g in hier.level(3, merge_duplicates=False)]
