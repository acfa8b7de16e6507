"""The mapping-suggestion arithmetic (core.mapping.suggest) against hand computations and synthetic signals."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from core.mapping.suggest import NONE, Signals, Weights, fit_weights, reliability, specific_vote, suggest, top1_accuracy

NODES = [("A",), ("A", "B"), ("A", "B", "C"), ("A", "B", "D"), ("A", "B", "E"), ("F",)]


def test_specific_vote_favours_the_leaf_that_dominates_and_the_parent_of_a_spread():
    votes = specific_vote(
        [
            Counter({("A", "B", "C"): 9, ("A", "B", "D"): 1}),
            Counter({("A", "B", "C"): 1, ("A", "B", "D"): 1, ("A", "B", "E"): 1}),
            Counter(),
        ],
        NODES,
    )
    # 9 of 10 at C: C gets 0.9; A > B holds all 10 but its best child holds 9: 0.1; A holds 10, its child A > B 10: 0
    assert votes[0] == pytest.approx([0.0, 0.1, 0.9, 0.1, 0.0, 0.0])
    # spread evenly over three leaves: each leaf 1/3, their parent 1 - 1/3
    assert votes[1] == pytest.approx([0.0, 2 / 3, 1 / 3, 1 / 3, 1 / 3, 0.0])
    assert not votes[2].any()  # no predictions: no vote


def synthetic(n_cat: int, n_nodes: int, seed: int, none_share: float = 0.2):
    """Signals where the name signal points at the truth (with noise), the vote is noise, the centroid half-right."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, n_nodes, n_cat)
    truth[rng.random(n_cat) < none_share] = NONE
    name = rng.normal(0.3, 0.1, (n_cat, n_nodes)).astype(np.float32)
    centroid = rng.normal(0.5, 0.1, (n_cat, n_nodes)).astype(np.float32)
    vote = rng.random((n_cat, n_nodes)).astype(np.float32)
    for c, t in enumerate(truth):
        if t != NONE:
            name[c, t] += 0.5
            if c % 2:
                centroid[c, t] += 0.3
    return Signals(vote, name, centroid), truth


def test_fit_weights_learns_which_signal_to_trust_and_shuffled_truth_scores_near_chance():
    signals, truth = synthetic(200, 30, seed=0)
    tune, test = np.arange(100), np.arange(100, 200)
    part = lambda rows: Signals(signals.vote[rows], signals.name[rows], signals.centroid[rows])  # noqa: E731
    w = fit_weights(part(tune), truth[tune])
    assert w.name > w.vote and w.name > 0.3
    assert top1_accuracy(part(test), w, truth[test]) >= 0.95
    # control: the same weights against the held-out truth shuffled across categories score near chance (1/31), so
    # the accuracy above comes from each category's own signals
    shuffled = np.random.default_rng(1).permutation(truth[test])
    assert top1_accuracy(part(test), w, shuffled) < 0.3


def test_suggest_ranks_candidates_and_flags_close_calls():
    vote = np.array([[0.9, 0.1, 0.0], [0.5, 0.48, 0.0]], np.float32)
    zeros = np.zeros_like(vote)
    out = suggest(Signals(vote, zeros, zeros), Weights(1.0, 0.0, 0.0, none_score=0.2, temperature=0.1), top_k=3)
    assert out[0].ranking[:2] == [0, NONE] and not out[0].ambiguous
    # softmax at T = 0.1 of (0.9, 0.1, 0.0, none 0.2): hand computed
    e = np.exp(np.array([0.9, 0.1, 0.0, 0.2]) / 0.1)
    assert out[0].confidence[0] == pytest.approx(e[0] / e.sum(), rel=1e-5)
    assert out[1].ranking[:2] == [0, 1] and out[1].ambiguous
    assert out[0].signals[0] == {"vote": pytest.approx(0.9), "name": 0.0, "centroid": 0.0}


def test_reliability_bins_and_expected_calibration_error_by_hand():
    conf = np.array([0.95, 0.95, 0.6, 0.3])
    correct = np.array([True, False, True, False])
    rows = {r["bin"]: r for r in reliability(conf, correct)}
    assert (rows["0.9-1.0"]["n"], rows["0.9-1.0"]["accuracy"]) == (2, 0.5)
    assert (rows["0.5-0.7"]["n"], rows["0.5-0.7"]["accuracy"]) == (1, 1.0)
    assert rows["0.7-0.9"]["n"] == 0
    # ECE = 2/4 * |0.95 - 0.5| + 1/4 * |0.6 - 1| + 1/4 * |0.3 - 0|
    assert rows["ECE"]["accuracy"] == pytest.approx(0.5 * 0.45 + 0.25 * 0.4 + 0.25 * 0.3, abs=1e-3)
