"""Benchmark metrics of a grouping (core.discover.metrics) against hand-computed values."""

from __future__ import annotations

import math

import numpy as np

from core.bench.discovery import major_types, proposal_label
from core.discover.metrics import level_scores, name_accuracy, unassigned_as_group


def test_ari_nmi_purity_of_a_small_grouping_match_hand_computation():
    truth = np.array(["a", "a", "a", "b", "b", "b"])
    labels = np.array([0, 0, 1, 1, 1, 1])
    s = level_scores(labels, truth)
    # contingency [[2, 1], [0, 3]]: sum C(n_ij, 2) = 1 + 3 = 4; rows C(3,2)*2 = 6; cols C(2,2) + C(4,2) = 7; C(6,2) = 15
    expected_index = 6 * 7 / 15
    ari = (4 - expected_index) / ((6 + 7) / 2 - expected_index)
    assert math.isclose(s["ari"], ari, rel_tol=1e-9)
    # NMI (arithmetic): H(truth) = ln 2; H(labels) = H(1/3, 2/3); I = sum p_ij ln(p_ij / (p_i p_j))
    p = np.array([[2, 1], [0, 3]]) / 6
    pi, pj = p.sum(1), p.sum(0)
    mi = sum(p[i, j] * math.log(p[i, j] / (pi[i] * pj[j])) for i in range(2) for j in range(2) if p[i, j] > 0)
    h_t, h_l = -sum(x * math.log(x) for x in pi), -sum(x * math.log(x) for x in pj)
    assert math.isclose(s["nmi"], mi / ((h_t + h_l) / 2), rel_tol=1e-9)
    assert math.isclose(s["purity"], (2 + 3) / 6)
    assert s["n_groups"] == 2 and s["share_unassigned"] == 0.0


def test_scores_leave_unassigned_out_and_report_their_share():
    truth = np.array(["a", "a", "b", "b"])
    s = level_scores(np.array([0, 0, 1, -1]), truth)
    assert s["ari"] == 1.0 and s["purity"] == 1.0 and s["share_unassigned"] == 0.25
    nothing = level_scores(np.array([-1, -1]), truth[:2])
    assert math.isnan(nothing["ari"]) and nothing["share_unassigned"] == 1.0


def test_name_accuracy_counts_products_of_groups_named_after_their_majority_type():
    truth = np.array(["Heels", "Heels", "Flats", "Sports Shoes", "Sports Shoes", "Sports Shoes", "Flats"])
    labels = np.array([0, 0, 0, 1, 1, 1, -1])
    # group 0 (3 products, majority Heels) named "heel": right, case and plural ignored; group 1 (3) named wrongly
    assert name_accuracy(labels, {0: "heel", 1: "Running Shoes"}, truth) == 0.5
    assert name_accuracy(labels, {0: "HEELS", 1: "sport shoe"}, truth) == 1.0
    assert name_accuracy(labels, {}, truth) == 0.0
    assert math.isnan(name_accuracy(np.array([-1]), {}, truth[:1]))


def test_unassigned_as_group_adds_one_group():
    np.testing.assert_array_equal(unassigned_as_group(np.array([0, -1, 1, -1])), [0, 2, 1, 2])


def test_major_types_counts_types_with_two_percent_of_the_products():
    truth = np.array(["a"] * 60 + ["b"] * 39 + ["c"])  # c holds 1%
    assert major_types(truth) == 2
    assert major_types(np.array(["x"])) == 1


def test_proposal_label_lists_the_parts_of_a_merged_proposal():
    assert proposal_label({"name": "Heels", "parts": []}) == "Heels"
    parts = [{"name": "Heels", "node": 3}, {"name": "Peep Toes", "node": 5}]
    assert proposal_label({"name": "Heels", "parts": parts}) == "Heels (Heels + Peep Toes)"
