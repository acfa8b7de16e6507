"""Taxonomy arrays, dynamic masking, decoding to valid paths, and the hierarchical classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from core.classify.estimator import HierarchicalClassifier
from core.classify.heads import hierarchical_loss
from core.classify.taxonomy import TaxonomyTree, conditional_log_probs, decode, marginal_probs
from core.torch_runtime import torch_threads
from tests.core.ml_helpers import PATHS, labelled_data


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small models run fastest on one thread, and the test machine's cores are shared."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tree() -> TaxonomyTree:
    return TaxonomyTree.from_paths(PATHS)


def test_tree_arrays(tree):
    assert tree.depth == 4
    assert tree.sizes == [3, 5, 6, 2]
    assert tree.names(0) == ["Accessories", "Apparel", "Footwear"]
    flip = tree.levels[1].index(("Footwear", "Flip Flops"))
    flip_leaf = tree.levels[2].index(("Footwear", "Flip Flops", "Flip Flops"))
    assert tree.parent[2][flip_leaf] == flip
    assert tree.parent[1][flip] == tree.levels[0].index(("Footwear",))
    assert not tree.has_children[1][tree.levels[1].index(("Accessories", "Bags"))]
    assert tree.has_children[2][tree.levels[2].index(("Footwear", "Shoes", "Casual Shoes"))]
    mask = tree.child_mask(3)
    casual = tree.levels[2].index(("Footwear", "Shoes", "Casual Shoes"))
    assert mask.shape == (6, 2) and mask[casual].all() and mask.sum() == 2
    assert (tree.parent[0] == -1).all()


def test_encode_decode_roundtrip(tree):
    nodes = tree.encode(PATHS)
    assert nodes.shape == (len(PATHS), 4)
    assert nodes[PATHS.index(("Accessories", "Bags"))].tolist()[2:] == [-1, -1]
    assert tree.decode(nodes) == PATHS
    with pytest.raises(KeyError):
        tree.encode([("Apparel", "Topwear", "Socks")])


def test_leaf_paths_are_the_label_paths(tree):
    assert sorted(tree.decode(tree.leaf_paths())) == sorted(PATHS)
    assert tree.is_valid(tree.leaf_paths()).all()


def test_is_valid_rejects_broken_paths(tree):
    good = tree.encode([("Footwear", "Shoes", "Casual Shoes", "Loafers")])[0]
    internal_stop = good.copy()
    internal_stop[3] = -1  # Casual Shoes has children: not a full path
    wrong_parent = tree.encode([("Apparel", "Topwear", "Shirts")])[0]
    wrong_parent[1] = tree.levels[1].index(("Footwear", "Shoes"))
    past_leaf = tree.encode([("Accessories", "Bags")])[0]
    past_leaf[2] = 0
    gap = good.copy()
    gap[1] = -1
    out_of_range = good.copy()
    out_of_range[3] = 7
    rows = np.stack([good, internal_stop, wrong_parent, past_leaf, gap, out_of_range])
    assert tree.is_valid(rows).tolist() == [True, False, False, False, False, False]


def test_json_roundtrip(tree):
    again = TaxonomyTree.from_json(json.loads(json.dumps(tree.to_json())))
    assert again == tree and again.sizes == tree.sizes


def test_conditional_log_probs_normalise_within_siblings(tree):
    rng = np.random.default_rng(0)
    logits = [rng.normal(size=(5, s)) * 4 for s in tree.sizes]
    cond = conditional_log_probs(logits, tree)
    for level in range(1, tree.depth):
        probs = np.exp(cond[level])
        for parent in np.unique(tree.parent[level]):
            group = tree.parent[level] == parent
            np.testing.assert_allclose(probs[:, group].sum(1), 1.0, rtol=1e-9)
            ref = np.exp(logits[level][:, group]) / np.exp(logits[level][:, group]).sum(1, keepdims=True)
            np.testing.assert_allclose(probs[:, group], ref, rtol=1e-9)


def test_beam_finds_better_path_than_greedy():
    tree = TaxonomyTree.from_paths([("A", "a1"), ("A", "a2"), ("B", "b1")])
    # greedy: A (0.55) then a1 or a2 (0.5 each) -> path 0.275; best path is B/b1 with 0.45
    lp0 = np.log([[0.55, 0.45]])
    lp1 = np.log([[0.5, 0.5, 1.0]])
    greedy = decode([lp0, lp1], tree, beam_width=1)
    beam = decode([lp0, lp1], tree, beam_width=2)
    assert tree.decode(greedy.nodes)[0][0] == "A"
    assert tree.decode(beam.nodes) == [("B", "b1")]
    np.testing.assert_allclose(beam.path_conf, [0.45], rtol=1e-6)
    np.testing.assert_allclose(greedy.level_conf[0], [0.55, 0.5], rtol=1e-6)


@st.composite
def trees_and_logits(draw):
    depth = draw(st.integers(1, 4))
    paths: list[tuple[str, ...]] = []

    def grow(prefix: tuple[str, ...]):
        if len(prefix) == depth or (prefix and draw(st.booleans()) and draw(st.booleans())):
            paths.append(prefix)
            return
        for i in range(draw(st.integers(1, 3))):
            grow((*prefix, f"n{i}"))

    grow(())
    tree = TaxonomyTree.from_paths(paths)
    n = draw(st.integers(1, 6))
    values = st.floats(-30, 30, allow_nan=False, width=32)
    logits = [np.array(draw(st.lists(values, min_size=n * s, max_size=n * s))).reshape(n, s) for s in tree.sizes]
    return tree, logits, draw(st.integers(1, 4))


@settings(max_examples=150, deadline=None)
@given(trees_and_logits())
def test_every_prediction_is_a_valid_path(case):
    tree, logits, width = case
    cond = conditional_log_probs(logits, tree)
    pred = decode(cond, tree, beam_width=width)
    assert tree.is_valid(pred.nodes).all()
    assert np.all((pred.path_conf >= 0) & (pred.path_conf <= 1 + 1e-6))
    np.testing.assert_allclose(pred.path_conf, pred.level_conf.prod(1), rtol=1e-5)
    # with a beam as wide as the number of leaves the search is exact
    leaves = tree.leaf_paths()
    exact = decode(cond, tree, beam_width=len(leaves))
    scores = sum(np.where(leaves[:, lv] >= 0, cond[lv][:, np.maximum(leaves[:, lv], 0)], 0.0) for lv in range(tree.depth))
    np.testing.assert_allclose(np.log(exact.path_conf.astype(np.float64)), scores.max(1), rtol=1e-4, atol=1e-4)


def test_marginals_sum_to_one_over_leaves(tree):
    rng = np.random.default_rng(1)
    cond = conditional_log_probs([rng.normal(size=(4, s)) for s in tree.sizes], tree)
    marg = marginal_probs(cond, tree)
    np.testing.assert_allclose(marg[0].sum(1), 1.0, rtol=1e-5)
    leaves = tree.leaf_paths()
    deepest = (leaves >= 0).sum(1) - 1
    total = sum(marg[d][:, leaves[i, d]] for i, d in enumerate(deepest))
    np.testing.assert_allclose(total, 1.0, rtol=1e-5)


def _child_masks(tree):
    return [None] + [torch.as_tensor(tree.child_mask(lv)) for lv in range(1, tree.depth)]


def test_teacher_forced_loss_ignores_non_children_and_past_end(tree):
    targets = torch.as_tensor(tree.encode([("Apparel", "Topwear", "Shirts"), ("Accessories", "Bags")]))
    torch.manual_seed(0)
    logits = [torch.randn(2, s) for s in tree.sizes]
    base = hierarchical_loss(logits, targets, _child_masks(tree))
    changed = [t.clone() for t in logits]
    jeans = tree.levels[2].index(("Apparel", "Bottomwear", "Jeans"))  # not a child of Topwear
    changed[2][0, jeans] += 50.0
    changed[2][1] += 50.0  # row 1 ends at level 1: levels 2 and 3 carry no loss
    changed[3][1] -= 50.0
    assert torch.isclose(hierarchical_loss(changed, targets, _child_masks(tree)), base)
    sibling = tree.levels[2].index(("Apparel", "Topwear", "Tshirts"))
    changed[2][0, sibling] += 5.0
    assert hierarchical_loss(changed, targets, _child_masks(tree)) > base


@pytest.mark.parametrize("fusion", ["late", "early", "attention"])
def test_classifier_learns_and_predicts_valid_paths(fusion):
    X, y, masks = labelled_data(700, seed=1)
    clf = HierarchicalClassifier(fusion=fusion, hidden=32, epochs=25, batch_size=128, patience=4, seed=0)
    clf.fit({k: v[:500] for k, v in X.items()}, y[:500], masks={"image": masks["image"][:500]})
    test_X, test_masks = {k: v[500:] for k, v in X.items()}, {"image": masks["image"][500:]}
    pred = clf.predict(test_X, masks=test_masks)
    assert pred.nodes.shape == (200, 4) and clf.tree_.is_valid(pred.nodes).all()
    accuracy = np.mean([p == t for p, t in zip(clf.tree_.decode(pred.nodes), y[500:])])
    assert accuracy > 0.9
    text_only = ~test_masks["image"]
    assert text_only.sum() > 20
    assert np.mean([p == t for p, t, m in zip(clf.predict_paths(test_X, masks=test_masks), y[500:], text_only) if m]) > 0.85


def test_classifier_probabilities_and_beam():
    X, y, masks = labelled_data(300, seed=2)
    clf = HierarchicalClassifier(fusion="late", hidden=16, epochs=5, batch_size=64, val_fraction=0, seed=0)
    clf.fit(X, y, masks=masks)
    assert len(clf.history_) == 5 and clf.history_[0]["val_loss"] is None
    proba = clf.predict_proba(X, masks=masks)
    assert [p.shape for p in proba] == [(300, s) for s in clf.tree_.sizes]
    np.testing.assert_allclose(proba[0].sum(1), 1.0, rtol=1e-5)
    empty = clf.predict({k: v[:0] for k, v in X.items()}, masks={"image": masks["image"][:0]})
    assert empty.nodes.shape == (0, 4) and empty.path_conf.shape == (0,)
    beam = clf.predict(X, masks=masks, beam_width=8)
    greedy = clf.predict(X, masks=masks)
    assert np.all(beam.path_conf >= greedy.path_conf - 1e-6)


def test_save_load_roundtrip(tmp_path):
    X, y, masks = labelled_data(200, seed=3)
    clf = HierarchicalClassifier(
        fusion="attention", hidden=16, epochs=3, batch_size=64, seed=0, fusion_options={"num_heads": 2}
    ).fit(X, y, masks=masks)
    clf.save(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["meta.json", "weights.pt"]
    again = HierarchicalClassifier.load(tmp_path / "model", device="cpu")
    a, b = clf.predict(X, masks=masks), again.predict(X, masks=masks)
    np.testing.assert_array_equal(a.nodes, b.nodes)
    np.testing.assert_allclose(a.path_conf, b.path_conf, rtol=1e-6)
    assert again.tree_ == clf.tree_ and again.modalities == ["text", "image"]
    assert again.model_.attn.num_heads == 2


def test_fixed_tree_keeps_unseen_nodes():
    X, y, masks = labelled_data(150, seed=4)
    full = TaxonomyTree.from_paths([*PATHS, ("Home", "Decor")])
    clf = HierarchicalClassifier(fusion="early", modalities=["text"], hidden=16, epochs=2, tree=full)
    clf.fit({"text": X["text"]}, y)
    assert clf.tree_.sizes[0] == 4
    assert clf.tree_.is_valid(clf.predict({"text": X["text"]}).nodes).all()


def test_models_trained_side_by_side_in_threads_match_sequential_training():
    """Initialisation and dropout are seeded per model, so threads do not change what a seeded model learns."""
    from concurrent.futures import ThreadPoolExecutor

    X, y, masks = labelled_data(300, seed=4)

    def fit(seed):
        clf = HierarchicalClassifier(fusion="late", modalities=["text", "image"], hidden=32, epochs=4, dropout=0.3, seed=seed)
        return clf.fit(X, y, masks=masks).predict_proba(X, masks=masks)[-1]

    alone = [fit(0), fit(1)]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(fit, [0, 1]))
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(alone[0], alone[1])  # the seeds do matter
