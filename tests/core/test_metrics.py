"""Hierarchical metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from core.classify.metrics import (
    hierarchical_f1,
    hierarchical_prf,
    hierarchical_report,
    path_validity_rate,
    per_level_accuracy,
    per_level_macro_f1,
)
from core.classify.taxonomy import TaxonomyTree


def test_single_wrong_leaf():
    # {A, A/B, A/B/C} vs {A, A/B, A/B/D}: 2 shared of 3 and 3
    out = hierarchical_prf([("A", "B", "C")], [("A", "B", "D")])
    assert out == pytest.approx({"hP": 2 / 3, "hR": 2 / 3, "hF1": 2 / 3})


def test_short_prediction_has_high_precision_low_recall():
    out = hierarchical_prf([("A", "B", "C")], [("A",)])
    assert out == pytest.approx({"hP": 1.0, "hR": 1 / 3, "hF1": 0.5})


def test_micro_average_over_products():
    y_true = [("A", "B"), ("X", "Y", "Z"), ("A", "B", "C")]
    y_pred = [("A", "B", "C"), ("W", "V"), ("A", "B", "C")]
    # intersections 2 + 0 + 3 = 5; |pred| 3 + 2 + 3 = 8; |true| 2 + 3 + 3 = 8
    out = hierarchical_prf(y_true, y_pred)
    assert out == pytest.approx({"hP": 5 / 8, "hR": 5 / 8, "hF1": 5 / 8})
    y_pred[1] = ("X",)  # now 6 shared, |pred| 7
    out = hierarchical_prf(y_true, y_pred)
    assert out["hP"] == pytest.approx(6 / 7) and out["hR"] == pytest.approx(6 / 8)
    assert out["hF1"] == pytest.approx(2 * (6 / 7) * (6 / 8) / (6 / 7 + 6 / 8))


def test_same_name_under_other_parent_does_not_count():
    assert hierarchical_f1([("A", "Other")], [("B", "Other")]) == 0.0


def test_arrays_agree_with_paths():
    paths = [("A", "B", "C"), ("A", "B", "D"), ("A", "E"), ("F", "G", "H")]
    tree = TaxonomyTree.from_paths(paths)
    y_true = [paths[i] for i in (0, 1, 2, 3, 0)]
    y_pred = [paths[i] for i in (0, 0, 2, 1, 3)]
    from_arrays = hierarchical_prf(tree.encode(y_true), tree.encode(y_pred))
    assert from_arrays == pytest.approx(hierarchical_prf(y_true, y_pred))
    assert from_arrays["hF1"] == pytest.approx(7 / 14)  # shared 3+2+2+0+0, sizes 3+3+2+3+3 on both sides


def test_kinds_must_match_and_lengths_agree():
    with pytest.raises(TypeError):
        hierarchical_prf(np.zeros((1, 2), np.int64), [("A",)])
    with pytest.raises(ValueError):
        hierarchical_prf([("A",)], [("A",), ("B",)])


def test_per_level_accuracy_skips_levels_past_the_end():
    y_true = np.array([[0, 1, 2], [0, 1, -1], [1, 3, -1], [1, 2, 4]])
    y_pred = np.array([[0, 1, 3], [0, 0, 5], [1, 3, -1], [0, 1, 2]])
    np.testing.assert_allclose(per_level_accuracy(y_true, y_pred), [3 / 4, 2 / 4, 0 / 2])
    unreached = per_level_accuracy(np.array([[0, -1]]), np.array([[0, -1]]))
    assert unreached[0] == 1.0 and np.isnan(unreached[1])


def test_per_level_macro_f1_by_hand():
    y_true = np.array([[0], [0], [1], [1]])
    y_pred = np.array([[0], [1], [1], [1]])
    # class 0: P=1, R=1/2, F=2/3; class 1: P=2/3, R=1, F=4/5 -> macro 11/15
    np.testing.assert_allclose(per_level_macro_f1(y_true, y_pred), [11 / 15])
    y_pred_none = np.array([[0], [0], [-1], [2]])  # -1 and an unseen node are misses for class 1
    np.testing.assert_allclose(per_level_macro_f1(y_true, y_pred_none), [0.5])  # class 0: F=1, class 1: F=0


def test_path_validity_rate_and_report():
    tree = TaxonomyTree.from_paths([("A", "B"), ("A", "C"), ("D",)])
    pred = np.array([[0, 0], [1, -1], [0, -1], [1, 0]])  # valid, valid, stops at A, D has no child
    assert path_validity_rate(pred, tree) == 0.5
    true = np.array([[0, 0], [1, -1], [0, 1], [0, 1]])
    report = hierarchical_report(true, pred, tree=tree)
    assert report["path_validity"] == 0.5
    assert report["level_accuracy"] == pytest.approx([3 / 4, 1 / 3])
    assert report["hP"] == pytest.approx(4 / 6) and report["hR"] == pytest.approx(4 / 7)
