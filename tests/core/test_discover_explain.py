"""Explaining a proposal (core.discover.explain): typical and doubtful members, nearest sibling, separating terms."""

from __future__ import annotations

import numpy as np

from core.discover.explain import explain_groups, nearest_sibling, separating_terms, typical_and_doubtful


def test_typical_members_point_like_the_centroid_and_doubtful_ones_away():
    X = np.array([[1.0, 0.0], [1.0, 0.05], [1.0, -0.05], [0.6, 0.8], [0.0, 1.0]])
    typical, doubtful = typical_and_doubtful(X, np.array([0, 1, 2, 3]), n=2)
    # centroid of rows 0-3 points almost along x: row 3 (53 degrees off) is the farthest
    assert doubtful[0] == 3
    assert typical[0] in (0, 1, 2) and 3 not in typical
    assert typical_and_doubtful(X, np.array([], dtype=int)) == ([], [])


def test_nearest_sibling_is_the_closest_centroid():
    X = np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.0, 0.6, 0.8]])
    groups = np.array([0, 1, 1, 2])
    near = nearest_sibling(X, groups)
    assert near[0] == 1 and near[1] == 0
    assert near[2] == 1  # group 2 is at 90 degrees from group 0 (no x) but shares y with group 1


def test_separating_terms_are_the_words_whose_share_differs_most():
    here = ["canvas sneakers", "canvas sneakers", "canvas shoes", "mesh sneakers"]
    there = ["leather loafers", "leather shoes", "leather loafers", "canvas loafers"]
    more_here, more_there = separating_terms(here, there, n=2)
    # hand-computed shares: sneaker 3/4 vs 0, canvas 3/4 vs 1/4, loafer 0 vs 3/4, leather 0 vs 3/4
    assert more_here[0] == {"term": "sneaker", "share_here": 0.75, "share_there": 0.0}
    assert {e["term"] for e in more_there} == {"leather", "loafer"}
    assert all(e["share_here"] == 0.75 for e in more_there)


def test_explain_groups_covers_every_group_and_skips_noise():
    X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.5, 0.5]])
    groups = np.array([0, 0, 1, 1, -1])
    titles = ["running shoes", "running shoes", "heels", "party heels", "noise"]
    out = explain_groups(X, groups, titles, top_terms={0: ["running"]}, n_members=1)
    assert set(out) == {0, 1}
    assert out[0]["top_terms"] == ["running"] and out[1]["top_terms"] == []
    assert out[0]["nearest_sibling"] == 1 and out[1]["nearest_sibling"] == 0
    assert out[0]["more_here"][0]["term"] in ("running", "shoe")
    assert out[1]["more_here"][0]["term"] == "heel"
    assert 4 not in out[0]["typical"] + out[1]["typical"] + out[0]["doubtful"] + out[1]["doubtful"]
