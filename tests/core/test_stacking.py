"""Path-level late fusion of a neural hierarchical model with the SVM's path scores."""

from __future__ import annotations

import numpy as np
import pytest

from core.classify.estimator import HierarchicalClassifier
from core.classify.metrics import hierarchical_f1
from core.classify.stacking import StackedFusion

PATHS = [("A", "a1"), ("A", "a2"), ("B", "b1"), ("B", "b2"), ("C",)]


def data(n: int, seed: int):
    """Dense features tell the top level only; the SVM's scores tell the leaf (with noise)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(PATHS), size=n)
    top = np.array([{"A": 0, "B": 1, "C": 2}[PATHS[k][0]] for k in y])
    dense = np.eye(3)[top] * 3 + rng.normal(size=(n, 3))
    scores = np.eye(len(PATHS))[y] * 1.5 + rng.normal(scale=0.6, size=(n, len(PATHS)))
    return {"x": dense.astype(np.float32), "svm": scores.astype(np.float32)}, [PATHS[k] for k in y]


@pytest.fixture(scope="module")
def neural():
    X, y = data(600, 0)
    return HierarchicalClassifier(fusion="early", modalities=["x"], hidden=32, epochs=30, seed=0).fit({"x": X["x"]}, y)


def test_stacking_beats_both_members_and_predicts_valid_paths(neural):
    classes = [" > ".join(p) for p in PATHS]
    Xc, yc = data(400, 1)
    stacked = StackedFusion(neural, classes).fit(Xc, yc)
    assert 0.0 < stacked.alpha < 1.0 and len(stacked.search_) == 66
    Xt, yt = data(800, 2)
    pred = stacked.predict(Xt)
    tree = neural.tree_
    assert tree.is_valid(pred.nodes).all()
    np.testing.assert_allclose(pred.level_conf.prod(1), pred.path_conf, rtol=1e-4)
    truth = tree.encode(yt)
    ours = hierarchical_f1(truth, pred.nodes)
    alone_neural = hierarchical_f1(truth, neural.predict({"x": Xt["x"]}).nodes)
    alone_svm = hierarchical_f1(truth, tree.encode([PATHS[k] for k in Xt["svm"].argmax(1)]))
    assert ours > alone_neural and ours > alone_svm
    assert stacked.modalities == ["x", "svm"]


def test_save_and_load_round_trip(neural, tmp_path):
    classes = [" > ".join(p) for p in reversed(PATHS)]  # the SVM's column order differs from the tree's
    Xc, yc = data(200, 3)
    Xc["svm"] = Xc["svm"][:, ::-1]
    stacked = StackedFusion(neural, classes).fit(Xc, yc)
    stacked.save(tmp_path / "stage")
    again = StackedFusion.load(tmp_path / "stage")
    assert isinstance(again, StackedFusion) and (again.temperature, again.alpha) == (stacked.temperature, stacked.alpha)
    np.testing.assert_array_equal(again.predict(Xc).nodes, stacked.predict(Xc).nodes)
    neural.save(tmp_path / "plain")
    assert isinstance(StackedFusion.load(tmp_path / "plain"), HierarchicalClassifier)  # versions saved before stacking
