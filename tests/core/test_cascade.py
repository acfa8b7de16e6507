"""Two-stage cascade: routing, merging, threshold sweep and choice, and what its end-to-end timing embeds."""

from __future__ import annotations

import time

import numpy as np
import pytest

from core.bench.evaluate import end_to_end_speed
from core.classify.cascade import (
    TwoStageCascade,
    choose_threshold,
    merge_predictions,
    route,
    sweep_from_predictions,
    threshold_sweep,
)
from core.classify.estimator import HierarchicalClassifier
from core.classify.models import STACKED
from core.classify.taxonomy import HierarchicalPrediction, TaxonomyTree
from core.data.dataset import Catalogue
from core.embed.encoders import ENCODERS
from core.torch_runtime import torch_threads
from tests.core.ml_helpers import STAND_INS, TableEncoder, labelled_data, make_small_catalogue, stand_in_factories

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
    # the time at a threshold is stage 1's plus the routed share of stage 2's: linear in the share
    span = rows[-1]["seconds"] - rows[0]["seconds"]
    assert span > 0 and [r["seconds"] - rows[0]["seconds"] for r in rows] == pytest.approx([s * span for s in shares])
    result = TwoStageCascade(text, both, threshold=0.9).predict(test_X)
    assert set(np.unique(result.stage)) <= {1, 2} and tree.is_valid(result.prediction.nodes).all()


class SlowPhotos(TableEncoder):
    """The stand-in image encoder, taking `DELAY` seconds per photo (a real image encoder is the slow part)."""

    DELAY = 0.01

    def _embed_batch(self, items, device):
        time.sleep(self.DELAY * len(items))
        return super()._embed_batch(items, device)


class SureWhereFirstCoordinatePositive:
    """A stage whose path confidence is set by hand: 0.99 where the title vector's first coordinate is > 0, else 0.5."""

    def __init__(self, modalities):
        self.modalities, self.tree_, self.seen = modalities, TREE, []

    def predict(self, X, *, masks=None):
        self.seen.append(len(X["title"]))
        conf = np.where(X["title"][:, 0] > 0, 0.99, 0.5).astype(np.float32)
        return _pred([("A", "a")] * len(conf), conf)


class Blocks:
    """Stand-ins of the fitted aligner, TF-IDF projection and SVM: fixed-width blocks."""

    def joint(self, title, image, ok):
        return np.hstack([title, image])

    def transform(self, titles, descriptions=None):
        return np.zeros((len(titles), 2), np.float32)


def test_end_to_end_cascade_embeds_photos_only_for_the_products_stage_one_routes(tmp_path, monkeypatch):
    cat = make_small_catalogue(tmp_path, 40, photo_share=1.0)
    photos = {p: v for p, v in zip(cat.photos, cat.image_vectors)}
    monkeypatch.setitem(ENCODERS, STAND_INS["text"], stand_in_factories(cat)[STAND_INS["text"]])
    monkeypatch.setitem(ENCODERS, "slow-photos", lambda **_: SlowPhotos("image", "image:slow", photos, cat.embedded["image"]))
    n = len(cat)
    products = Catalogue(
        np.arange(n), cat.skus, ["shop"] * n, cat.titles, cat.titles, cat.photos, [None] * n, [None] * n, [""] * n
    )
    stage1 = SureWhereFirstCoordinatePositive(["title", "tfidf", "svm"])
    stage2 = SureWhereFirstCoordinatePositive(["title", "image", "joint", "svm"])
    models = {STACKED["text-only"]: stage1, STACKED["late-fusion"]: stage2}
    speed = end_to_end_speed(
        products,
        np.arange(n),
        models,
        aligner=Blocks(),
        projector=Blocks(),
        svm=Blocks(),
        threshold=0.9,
        text_encoder=STAND_INS["text"],
        image_encoder="slow-photos",
    )
    routed = [cat.photos[i] for i in range(n) if cat.title_vectors[i, 0] <= 0]  # stage 1 is unsure of these
    assert 0 < len(routed) < n and speed["n"] == n and speed["share_stage2"] == pytest.approx(len(routed) / n, abs=1e-4)
    assert cat.embedded["image"] == cat.photos + routed  # multimodal for all: every photo; the cascade: the routed ones
    assert stage1.seen == [n] and stage2.seen == [n, len(routed)]
    assert speed["multimodal_s"] >= n * SlowPhotos.DELAY and speed["cascade_s"] >= len(routed) * SlowPhotos.DELAY
    # the photos dominate the time: n / routed if only they counted, under 1 if the cascade embedded them all again
    assert speed["speedup"] > (1 + n / len(routed)) / 2
