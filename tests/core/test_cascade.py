"""Two-stage cascade: routing, merging, threshold sweep and choice."""

from __future__ import annotations

import numpy as np
import pytest

from core.classify.cascade import (
    TwoStageCascade,
    choose_threshold,
    merge_predictions,
    route,
    sweep_from_predictions,
    threshold_sweep,
)
from core.classify.estimator import HierarchicalClassifier
from core.classify.taxonomy import HierarchicalPrediction, TaxonomyTree
from core.torch_runtime import torch_threads
from tests.core.ml_helpers import labelled_data

TREE = TaxonomyTree.from_paths([("A", "a"), ("A", "b"), ("B", "c")])
TRUE = TREE.encode([("A", "a"), ("A", "b"), ("B", "c"), ("A", "a")])


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small models run fastest on one thread, and the test machine's cores are shared."""
    with torch_threads(1):
        yield


def _pred(paths, conf):
    nodes = TREE.encode(paths)
    conf = np.asarray(conf, np.float32)
    return HierarchicalPrediction(nodes, np.stack([np.ones_like(conf), conf], 1), conf)


STAGE1 = _pred([("A", "a"), ("A", "a"), ("A", "b"), ("A", "a")], [0.99, 0.6, 0.4, 0.95])
STAGE2 = _pred([("A", "b"), ("A", "b"), ("B", "c"), ("A", "a")], [0.9, 0.9, 0.9, 0.9])


class FakeStage:
    """Returns fixed rows of a prediction, looked up by the first input column; records its calls."""

    def __init__(self, pred, modalities):
        self.pred, self.modalities, self.tree_, self.seen = pred, modalities, TREE, []

    def predict(self, X, *, masks=None):
        assert sorted(X) == sorted(self.modalities)
        rows = X[self.modalities[0]][:, 0].astype(int)
        self.seen.append(rows.tolist())
        return self.pred.take(rows)


def test_route_and_merge():
    routed = route(STAGE1.path_conf, threshold=0.9)
    assert routed.tolist() == [False, True, True, False]
    merged = merge_predictions(STAGE1, STAGE2, routed)
    assert TREE.decode(merged.nodes) == [("A", "a"), ("A", "b"), ("B", "c"), ("A", "a")]
    np.testing.assert_allclose(merged.path_conf, [0.99, 0.9, 0.9, 0.95])


def test_cascade_runs_stage_two_only_on_routed_rows():
    first, second = FakeStage(STAGE1, ["text"]), FakeStage(STAGE2, ["text", "image"])
    X = {"text": np.arange(4.0)[:, None], "image": np.arange(4.0)[:, None], "unused": np.zeros((4, 1))}
    result = TwoStageCascade(first, second, threshold=0.9).predict(X, masks={"image": np.ones(4, bool)})
    assert first.seen == [[0, 1, 2, 3]] and second.seen == [[1, 2]]
    assert result.stage.tolist() == [1, 2, 2, 1]
    np.testing.assert_array_equal(result.prediction.nodes, TRUE)
    assert STAGE1.path_conf[1] == pytest.approx(0.6)  # inputs were not modified


def test_cascade_with_confident_stage_one_never_calls_stage_two():
    first, second = FakeStage(STAGE1, ["text"]), FakeStage(STAGE2, ["text"])
    result = TwoStageCascade(first, second, threshold=0.1).predict({"text": np.arange(4.0)[:, None]})
    assert second.seen == [] and (result.stage == 1).all()


def test_cascade_rejects_different_taxonomies():
    other = FakeStage(STAGE2, ["text"])
    other.tree_ = TaxonomyTree.from_paths([("A", "a")])
    with pytest.raises(ValueError, match="taxonomies"):
        TwoStageCascade(FakeStage(STAGE1, ["text"]), other)


def test_sweep_from_predictions_by_hand():
    rows = sweep_from_predictions(STAGE1, STAGE2, TRUE, thresholds=[0.0, 0.5, 0.9, np.inf], seconds1=2.0, seconds2=10.0)
    assert [r["share_stage2"] for r in rows] == [0.0, 0.25, 0.5, 1.0]
    # stage 1 alone: rows 0 and 3 right (2+2), rows 1 and 2: 1 and 0 shared -> 5/8
    assert rows[0]["hF1"] == pytest.approx(5 / 8)
    assert rows[1]["hF1"] == pytest.approx(7 / 8)
    assert rows[2]["hF1"] == pytest.approx(1.0)
    assert rows[3]["hF1"] == pytest.approx(7 / 8)  # stage 2 gets row 0 wrong
    assert [r["seconds"] for r in rows] == pytest.approx([2.0, 4.5, 7.0, 12.0])


def test_choose_threshold():
    sweep = [
        {"threshold": 0.0, "share_stage2": 0.0, "hF1": 0.970, "seconds": 1.0},
        {"threshold": 0.9, "share_stage2": 0.2, "hF1": 0.985, "seconds": 2.0},
        {"threshold": 0.99, "share_stage2": 0.4, "hF1": 0.9905, "seconds": 3.0},
        {"threshold": 0.999, "share_stage2": 0.6, "hF1": 0.9920, "seconds": 4.0},
    ]
    chosen = choose_threshold(sweep, max_share=0.5, max_hf1_drop=0.002)
    assert chosen["threshold"] == 0.99 and chosen["meets_constraints"]
    loose = choose_threshold(sweep, max_share=0.5, max_hf1_drop=0.01)
    assert loose["threshold"] == 0.9
    strict = choose_threshold(sweep, max_share=0.3, max_hf1_drop=0.001)
    assert strict["threshold"] == 0.9 and not strict["meets_constraints"]


def test_threshold_sweep_with_real_models():
    X, y, masks = labelled_data(500, seed=7, text_informative=False, image_share=1.0)
    train, test = slice(0, 350), slice(350, 500)
    opts = dict(hidden=32, epochs=15, batch_size=128, seed=0)
    text = HierarchicalClassifier(fusion="late", modalities=["text"], **opts).fit({"text": X["text"][train]}, y[train])
    tree = text.tree_
    both = HierarchicalClassifier(fusion="late", tree=tree, **opts).fit({k: v[train] for k, v in X.items()}, y[train])
    test_X = {k: v[test] for k, v in X.items()}
    rows = threshold_sweep(text, both, test_X, tree.encode(y[test]), thresholds=[0.0, 0.5, 0.9, np.inf])
    shares = [r["share_stage2"] for r in rows]
    assert shares == sorted(shares) and shares[0] == 0.0 and shares[-1] == 1.0
    assert rows[-1]["hF1"] > rows[0]["hF1"] + 0.05  # the image model fixes what text cannot know
    assert all(r["seconds"] > 0 for r in rows)
    result = TwoStageCascade(text, both, threshold=0.9).predict(test_X)
    assert set(np.unique(result.stage)) <= {1, 2} and tree.is_valid(result.prediction.nodes).all()
