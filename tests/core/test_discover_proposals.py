"""What a discovery run stores per proposal (core.steps.discover.level_clusters): the tree level, parts,
sub-groups, the nearest existing names and the explanation, in a form a page can show."""

from __future__ import annotations

import json

import numpy as np

from core.discover.levels import Hierarchy
from core.steps.discover import LeafRun, NodeRun, level_clusters, nearest_alternatives
from tests.core.test_discover_hierarchy import FAMILY_TITLES, two_level_data


def fitted(per_leaf: int = 12):
    X, labels, family = two_level_data(per_leaf=per_leaf)
    titles = [FAMILY_TITLES[int(family[lab])][i % 3] for i, lab in enumerate(labels)]
    ids = 1000 + np.arange(len(labels))
    pipe = LeafRun(labels, X[:, :2], np.arange(8), np.linspace(0.5, 0.9, 8))
    node = NodeRun("Footwear > Shoes", ids, X, titles, [None] * len(labels), ["Sandals"])
    hier = Hierarchy(k_max=7, node_name="Shoes", taken=node.children).fit(X, labels, titles)
    return pipe, hier, node, family


def test_level_clusters_hold_members_names_subgroups_and_explanations():
    pipe, hier, node, family = fitted()
    clusters = level_clusters(pipe, hier, node)
    json.dumps(clusters)  # what db.proposals stores must be JSON
    assert len(clusters) == 3
    assert sorted(c["name"] for c in clusters) == ["Formal Shoes", "Heels", "Running Shoes"]
    members = sorted(m for c in clusters for m in c["members"])
    assert members == node.product_ids.tolist()  # every product in exactly one proposal
    for c in clusters:
        s = c["scores"]
        assert s["size"] == len(c["members"]) and len(c["coords"]) == len(c["members"])
        assert s["level"]["k"] == 3 and s["level"]["default_k"] == 3
        # sub-groups partition the proposal
        if s["subgroups"]:
            assert sorted(m for sub in s["subgroups"] for m in sub["members"]) == sorted(c["members"])
        expl = s["explanation"]
        assert {p["id"] for p in expl["typical"] + expl["doubtful"]} <= set(c["members"])
        assert expl["nearest_sibling"] in {o["name"] for o in clusters if o is not c}
        assert c["suggested_names"][0] == c["name"]


def test_level_clusters_at_a_finer_level_split_a_family():
    pipe, hier, node, _ = fitted()
    clusters = level_clusters(pipe, hier, node, k=8)
    assert sum(len(c["scores"]["level"]["tree_nodes"]) for c in clusters) == 8
    shown_once = [c for c in clusters if c["scores"]["parts"]]
    # near-duplicate leaves of one family are one proposal whose parts hold its members
    assert shown_once and len(clusters) < 8
    for c in shown_once:
        assert sorted(m for p in c["scores"]["parts"] for m in p["members"]) == sorted(c["members"])


def test_nearest_alternatives_come_from_both_sources_and_skip_the_own_name():
    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [1.0, 0.05], [0.95, 0.1]], dtype=np.float32)
    entries = [
        {"name": "Heels", "path": "Footwear > Heels", "source": "taxonomy"},
        {"name": "Pumps", "path": "Footwear > Pumps", "source": "taxonomy"},
        {"name": "Flats", "path": "Footwear > Flats", "source": "taxonomy"},
        {"name": "High Heels", "path": "Apparel & Accessories > Shoes > High Heels", "source": "google"},
        {"name": "Pumps", "path": "Footwear > Shoes > Pumps", "source": "taxonomy"},
    ]
    out = nearest_alternatives(np.array([[1.0, 0.0]]), {"entries": entries, "vectors": vectors}, ["heel"])
    names = [a["name"] for a in out[0]]
    assert "Heels" not in names  # the proposal's own name (plural and case ignored)
    assert names == ["Pumps", "Flats", "High Heels"]  # "Pumps" at two paths counts once
    assert {a["source"] for a in out[0]} == {"taxonomy", "google"}
    assert nearest_alternatives(np.zeros((1, 2)), None, ["x"]) == [[]]
