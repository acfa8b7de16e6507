"""Fusion models: shapes, modality masks, late-fusion combination, training with early stopping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.classify.estimator import HierarchicalClassifier
from core.classify.fusion import build_fusion, holdout_rows, mean_loss, train_fusion
from core.classify.taxonomy import TaxonomyTree
from core.torch_runtime import torch_threads
from tests.core.ml_helpers import PATHS, labelled_data


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small models run fastest on one thread, and the test machine's cores are shared."""
    with torch_threads(1):
        yield


SIZES = [3, 5, 6, 2]
DIMS = [12, 20]


def _inputs(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(n, d, generator=g) for d in DIMS]
    mask = torch.ones(n, 2, dtype=torch.bool)
    mask[::2, 1] = False  # every other product has no image
    return xs, mask


def test_unknown_fusion_is_rejected():
    with pytest.raises(ValueError, match="unknown fusion"):
        build_fusion("sum", input_dims=DIMS, level_sizes=SIZES)


@pytest.mark.parametrize("kind", ["early", "late", "attention"])
def test_output_shapes_and_missing_modality_is_ignored(kind):
    torch.manual_seed(0)
    model = build_fusion(kind, input_dims=DIMS, level_sizes=SIZES, hidden=16).eval()
    xs, mask = _inputs()
    logits, aux = model(xs, mask)
    assert [tuple(t.shape) for t in logits] == [(6, s) for s in SIZES]
    assert all(torch.isfinite(t).all() for t in logits)
    scrambled = [xs[0], xs[1].clone()]
    scrambled[1][~mask[:, 1]] = 1e3 * torch.randn(int((~mask[:, 1]).sum()), DIMS[1])
    again, _ = model(scrambled, mask)
    for a, b in zip(logits, again):
        assert torch.allclose(a, b, atol=1e-5)  # values of an absent modality never matter
    changed = [xs[0], xs[1] + 1.0]
    moved, _ = model(changed, mask)
    assert not torch.allclose(moved[0][1], logits[0][1])  # a present image does matter


def test_late_fusion_without_image_is_the_text_branch():
    torch.manual_seed(0)
    model = build_fusion("late", input_dims=DIMS, level_sizes=SIZES, hidden=16).eval()
    with torch.no_grad():
        model.weight_logits.copy_(torch.tensor([0.3, -0.2]))
    xs, mask = _inputs()
    combined, aux = model(xs, mask)
    text_levels, _ = aux[0]
    image_levels, _ = aux[1]
    w = torch.softmax(torch.tensor([0.3, -0.2]), 0)
    for lv in range(len(SIZES)):
        text_lp, image_lp = torch.log_softmax(text_levels[lv], -1), torch.log_softmax(image_levels[lv], -1)
        assert torch.allclose(combined[lv][0], text_lp[0], atol=1e-6)  # row 0 has no image
        assert torch.allclose(combined[lv][1], w[0] * text_lp[1] + w[1] * image_lp[1], atol=1e-6)


def test_late_fusion_equal_weights_are_fixed():
    model = build_fusion("late", input_dims=DIMS, level_sizes=SIZES, hidden=8, weights="equal")
    assert not model.weight_logits.requires_grad


def test_attention_row_without_any_modality_stays_finite():
    model = build_fusion("attention", input_dims=DIMS, level_sizes=SIZES, hidden=16).eval()
    xs, mask = _inputs()
    mask[0] = False
    logits, _ = model(xs, mask)
    assert all(torch.isfinite(t).all() for t in logits)


def test_single_modality_fusion():
    for kind in ("early", "late", "attention"):
        model = build_fusion(kind, input_dims=[12], level_sizes=SIZES, hidden=16).eval()
        logits, aux = model([torch.randn(4, 12)], torch.ones(4, 1, dtype=torch.bool))
        assert [tuple(t.shape) for t in logits] == [(4, s) for s in SIZES] and aux == []


def test_train_fusion_restores_the_best_epoch():
    X, y, masks = labelled_data(300, seed=5)
    tree = TaxonomyTree.from_paths(PATHS)
    xs = [torch.as_tensor(X["text"]), torch.as_tensor(X["image"])]
    mask = torch.as_tensor(np.stack([np.ones(300, bool), masks["image"]], 1))
    targets = torch.as_tensor(tree.encode(y))
    child = [None] + [torch.as_tensor(tree.child_mask(lv)) for lv in range(1, tree.depth)]
    torch.manual_seed(0)
    model = build_fusion("early", input_dims=[24, 40], level_sizes=tree.sizes, hidden=16)
    history = train_fusion(
        model, xs, mask, targets, child, epochs=40, lr=3e-2, batch_size=32, val_fraction=0.2, patience=2, seed=0
    )
    assert len(history) < 40  # stopped early
    _, val_rows = holdout_rows(300, 0.2, 0)
    best = min(h["val_loss"] for h in history)
    assert mean_loss(model, xs, mask, targets, child, val_rows, 64) == pytest.approx(best, rel=1e-4)


def test_image_helps_when_text_is_weak():
    X, y, masks = labelled_data(900, seed=6, text_informative=False, image_share=0.9)
    train, test = slice(0, 600), slice(600, 900)

    def accuracy(modalities):
        clf = HierarchicalClassifier(fusion="late", modalities=modalities, hidden=32, epochs=20, batch_size=128, seed=0)
        clf.fit({m: X[m][train] for m in modalities}, y[train], masks={"image": masks["image"][train]})
        pred = clf.predict_paths({m: X[m][test] for m in modalities}, masks={"image": masks["image"][test]})
        return np.mean([p == t for p, t in zip(pred, y[test])])

    text_only, both = accuracy(["text"]), accuracy(["text", "image"])
    assert both > text_only + 0.2


def test_thread_limit_is_restored():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    X, y, masks = labelled_data(100, seed=8)
    torch.set_num_threads(2)
    try:
        HierarchicalClassifier(fusion="late", hidden=8, epochs=1, num_threads=1).fit(X, y, masks=masks)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
