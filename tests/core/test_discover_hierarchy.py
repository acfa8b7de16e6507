"""The cluster tree (core.discover.hierarchy) and the named levels over it (core.discover.levels)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.discover.hierarchy import ClusterTree, build_tree, gap_k, leaf_sums, silhouette_k
from core.discover.levels import Hierarchy


def two_level_data(*, per_leaf: int = 30, seed: int = 0, noise: float = 0.05):
    """Eight leaf clusters in three well-separated families (3 + 3 + 2 leaves): families far apart, leaves of a
    family near each other (`noise`: the spread of the products around their leaf's centre). Returns X (N, 16),
    leaf labels (N,), family of each leaf (8,)."""
    rng = np.random.default_rng(seed)
    family_centres = 6.0 * np.eye(16)[:3]
    family_of_leaf = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    leaf_centres = family_centres[family_of_leaf] + 1.0 * rng.standard_normal((8, 16))
    labels = np.repeat(np.arange(8), per_leaf)
    X = leaf_centres[labels] + noise * rng.standard_normal((len(labels), 16))
    return X.astype(np.float32), labels, family_of_leaf


@pytest.mark.parametrize("linkage", ["average", "ward"])
def test_cut_at_family_count_recovers_the_families(linkage):
    X, labels, family = two_level_data()
    tree = build_tree(*leaf_sums(X, labels), linkage=linkage)
    groups = tree.cut(3)
    assert len(set(groups.tolist())) == 3
    # each family's leaves share one group and no two families share a group
    for f in range(3):
        assert len(set(groups[family == f].tolist())) == 1
    assert len({int(groups[family == f][0]) for f in range(3)}) == 3


def test_cut_gives_exactly_k_groups_for_every_k():
    X, labels, _ = two_level_data()
    tree = build_tree(*leaf_sums(X, labels))
    for k in range(1, 9):
        assert len(set(tree.cut(k).tolist())) == k
        assert len(tree.level(k)) == k
    assert np.all(np.diff(tree.heights) >= 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_k_by_gap_finds_the_three_families(seed):
    for noise in (0.05, 0.8):
        X, labels, _ = two_level_data(seed=seed, noise=noise)
        assert gap_k(build_tree(*leaf_sums(X, labels)), k_min=2, k_max=7) == 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_k_by_silhouette_finds_the_three_families_when_leaves_overlap(seed):
    # with tight leaves the products' silhouette prefers the leaves themselves (7 of 8 here): it finds families
    # only when a family's leaves overlap
    X, labels, _ = two_level_data(seed=seed, noise=0.8)
    assert silhouette_k(build_tree(*leaf_sums(X, labels)), X, labels, k_min=2, k_max=7) == 3


def test_labels_at_maps_products_through_the_cut_and_keeps_noise():
    X, labels, family = two_level_data(per_leaf=5)
    labels = labels.copy()
    labels[0] = -1
    tree = build_tree(*leaf_sums(X, labels))
    grouped = tree.labels_at(labels, 3)
    assert grouped[0] == -1
    # products of one family share a group label
    fam_of_product = family[np.repeat(np.arange(8), 5)]
    for f in range(3):
        assert len(set(grouped[1:][fam_of_product[1:] == f].tolist())) == 1


def test_subgroups_of_a_family_are_its_leaves():
    X, labels, family = two_level_data()
    tree = build_tree(*leaf_sums(X, labels))
    for node in tree.level(3):
        leaves = tree.leaves_under(node)
        parts = tree.subgroups(node)
        if len(leaves) == 1:
            assert parts == []
            continue
        covered = sorted(leaf for p in parts for leaf in tree.leaves_under(p))
        assert covered == leaves  # the parts partition the group
        assert 2 <= len(parts) <= len(leaves)


def test_tree_round_trips_through_its_dict():
    X, labels, _ = two_level_data()
    tree = build_tree(*leaf_sums(X, labels))
    again = ClusterTree.from_dict(tree.as_dict())
    for k in (2, 3, 5):
        np.testing.assert_array_equal(again.cut(k), tree.cut(k))


def test_ctfidf_rows_build_a_tree_too():
    rows = np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0], [0.0, 0.1, 0.9]])
    tree = build_tree(np.arange(4), rows, np.array([10, 10, 10, 10]), sums=False)
    groups = tree.cut(2)
    assert groups[0] == groups[1] and groups[2] == groups[3] and groups[0] != groups[2]


def test_unknown_linkage_is_refused():
    with pytest.raises(ValueError, match="linkage"):
        build_tree(np.arange(2), np.eye(2), np.array([1, 1]), linkage="single")


FAMILY_TITLES = {
    0: ["Men Running Shoes", "Women Running Shoes", "Running Shoes"],
    1: ["Women Black Heels", "Women Red Heels", "Party Heels"],
    2: ["Men Formal Shoes", "Leather Formal Shoes", "Formal Shoes"],
}


def test_hierarchy_names_every_group_of_a_level_distinctly():
    X, labels, family = two_level_data(per_leaf=12)
    titles = [FAMILY_TITLES[int(family[lab])][i % 3] for i, lab in enumerate(labels)]
    hier = Hierarchy(default="gap", k_max=7, node_name="Shoes").fit(X, labels, titles)
    assert hier.default_k_ == 3
    level = hier.level()
    assert sorted(g["name"] for g in level) == ["Formal Shoes", "Heels", "Running Shoes"]
    # every leaf in exactly one group, the sizes add up
    assert sorted(leaf for g in level for leaf in g["leaves"]) == list(range(8))
    assert sum(g["size"] for g in level) == len(labels)
    # finer levels keep names distinct from each other
    for k in range(4, 9):
        names = [g["name"] for g in hier.level(k, merge_duplicates=False)]
        assert len(set(n.lower() for n in names)) == len(names)


def test_near_duplicate_groups_are_shown_as_one_proposal_with_parts():
    X, labels, family = two_level_data(per_leaf=12)
    titles = [FAMILY_TITLES[int(family[lab])][i % 3] for i, lab in enumerate(labels)]
    hier = Hierarchy(k_max=7, node_name="Shoes").fit(X, labels, titles)
    merged = hier.level(5)
    plain = hier.level(5, merge_duplicates=False)
    assert len(plain) == 5
    # at 5 groups one family is split in two; both halves want its name, so they are shown as one with two parts
    assert len(merged) < 5
    with_parts = [g for g in merged if g["parts"]]
    assert with_parts and all(len(g["nodes"]) == len(g["parts"]) >= 2 for g in with_parts)
    assert sorted(leaf for g in merged for leaf in g["leaves"]) == list(range(8))


def test_a_restored_hierarchy_shows_the_same_levels():
    X, labels, family = two_level_data(per_leaf=12)
    titles = [FAMILY_TITLES[int(family[lab])][i % 3] for i, lab in enumerate(labels)]
    hier = Hierarchy(k_max=7, node_name="Shoes", taken=["Sandals"]).fit(X, labels, titles)
    saved = json.loads(json.dumps(hier.as_dict()))  # as the node's map stores it
    again = Hierarchy.restore(saved, labels, titles)
    assert again.default_k_ == hier.default_k_ == saved["default_k"]
    for k in range(1, 8):
        assert again.level(k) == hier.level(k) == saved["levels"][str(k)]
    node = hier.level(3)[0]["nodes"][0]
    assert again.subgroups(node) == hier.subgroups(node)


def test_hierarchy_of_one_cluster_or_none_and_without_titles():
    X, labels, _ = two_level_data(per_leaf=5)
    none = Hierarchy().fit(X, np.full(len(labels), -1), None)
    assert none.level() == [] and (none.labels_at() == -1).all()
    one = Hierarchy(node_name="Shoes").fit(X, np.zeros(len(labels), int), None)
    level = one.level()
    assert len(level) == 1 and level[0]["size"] == len(labels) and level[0]["name"] == "Other Shoes"
    photos = Hierarchy(k_min=2, k_max=7).fit(X, labels, None)  # photos only: the tree merges by the vectors
    assert photos.default_k_ == 3 and len(photos.level()) == 3


def four_directions(per_leaf: dict[int, int], *, seed: int = 0):
    """Products around four leaf directions: A = e0, B between A and C but nearer C (cosine 0.6 to A, 0.8 to C),
    C = e1, D = e2 (far from all). Returns X (N, 8) and leaf labels (N,)."""
    rng = np.random.default_rng(seed)
    dirs = np.zeros((4, 8))
    dirs[0, 0], dirs[1, :2], dirs[2, 1], dirs[3, 2] = 1.0, (0.6, 0.8), 1.0, 1.0
    labels = np.repeat(np.arange(4), [per_leaf[i] for i in range(4)])
    X = dirs[labels] + 0.01 * rng.standard_normal((len(labels), 8))
    return X.astype(np.float32), labels


def test_a_duplicate_name_joins_the_group_that_took_it_when_it_is_among_its_nearest():
    # A and B are both titled "Heels"; B's nearest group is C ("Running Shoes"), A is its second nearest
    X, labels = four_directions({0: 30, 1: 20, 2: 25, 3: 24})
    titles = {0: "Heels", 1: "Heels", 2: "Running Shoes", 3: "Formal Shoes"}
    names = [titles[int(v)] for v in labels]
    only_nearest = Hierarchy(node_name="Shoes", duplicate_neighbours=1).fit(X, labels, names).level(4)
    assert len(only_nearest) == 4 and not any(g["parts"] for g in only_nearest)
    among_three = Hierarchy(node_name="Shoes", duplicate_neighbours=3).fit(X, labels, names).level(4)
    heels = [g for g in among_three if g["name"] == "Heels"]
    assert len(among_three) == 3 and len(heels) == 1
    assert heels[0]["leaves"] == [0, 1] and heels[0]["size"] == 50 and len(heels[0]["parts"]) == 2


def test_a_group_without_a_type_word_is_a_part_of_its_nearest_named_group_only_when_asked():
    # B's titles name no type ("Men Black Shoes" under Shoes); its nearest named group is C
    X, labels = four_directions({0: 30, 1: 20, 2: 25, 3: 24})
    titles = {0: ["Heels"], 1: ["Men Black Shoes", "Men Navy Shoes", "Men Brown Shoes"], 2: ["Men Running Shoes"]}
    titles[3] = ["Men Formal Shoes"]
    names = [titles[int(v)][i % len(titles[int(v)])] for i, v in enumerate(labels)]
    apart = Hierarchy(node_name="Shoes").fit(X, labels, names).level(4)
    assert sorted(g["name"] for g in apart) == ["Formal Shoes", "Heels", "Other Shoes", "Running Shoes"]
    joined = Hierarchy(node_name="Shoes", merge_typeless=True).fit(X, labels, names).level(4)
    running = [g for g in joined if g["name"] == "Running Shoes"]
    assert len(joined) == 3 and running[0]["leaves"] == [1, 2]
    assert [p["name"] for p in running[0]["parts"]] == ["Running Shoes", "Other Shoes"]


def test_descriptions_name_the_levels_only_when_the_hierarchy_is_told_to_use_them():
    X, labels = four_directions({0: 10, 1: 10, 2: 10, 3: 10})
    titles = [f"Style {i}" for i in range(len(labels))]
    types = {0: "Jumper", 1: "Cardigan", 2: "T-shirt", 3: "Blouse"}
    descriptions = [f"{types[int(v)]} in soft cotton." for v in labels]
    used = Hierarchy(node_name="Upper body", use_descriptions=True).fit(X, labels, titles, descriptions=descriptions)
    assert sorted(g["name"] for g in used.level(4)) == ["Blouses", "Cardigans", "Jumpers", "T-Shirts"]
    ignored = Hierarchy(node_name="Upper body").fit(X, labels, titles, descriptions=descriptions)
    assert not {"Blouses", "Cardigans", "Jumpers", "T-Shirts"} & {g["name"] for g in ignored.level(4)}
