"""The production classifier on a real slice: trained by `core.steps.train.train`, scored on the held-out products of
its own hash split next to the TF-IDF + linear SVM baseline (titles only) fitted on the same fit rows."""

from __future__ import annotations

from collections import Counter

import pytest

from core.bench.evaluate import TfidfSvmBaseline
from core.classify.bundle import ModelBundle
from core.classify.models import score
from core.data.split import fixed_split
from core.steps.embed import catalogue_features
from core.steps.train import load_products, train
from db import predictions as preds
from db.session import get_sessionmaker

pytestmark = [pytest.mark.quality, pytest.mark.timeout(600)]  # setup may build and embed a session slice

# thresholds; the test's docstring gives the measured values and the margins
MAX_DEFICIT_VS_BASELINE = 0.01
MIN_HF1 = 0.955


def held_out_hf1(url: str) -> dict[str, float]:
    """Train and activate a model version on `url`, then hF1 on its held-out products of the production model (the
    saved bundle, loaded back), of the TF-IDF + SVM baseline and of always predicting the fit rows' commonest path."""
    assert train(url, log=lambda *_: None) is not None
    factory = get_sessionmaker(url)
    with factory() as s:
        version = preds.active_model_version(s)
        artifact, params = version.artifact, version.params
    bundle = ModelBundle.load(artifact, params=params)
    cat = load_products(factory, labelled_only=True)
    split = fixed_split(cat, seed=bundle.manifest.seed)
    # the products scored here are the ones the bundle held out (never fitted on, never used for its threshold)
    assert bundle.manifest.metrics["test_product_ids"] == cat.product_ids[split.test].tolist()
    test = cat.subset(split.test)
    result = bundle.predict(test, catalogue_features(test))
    baseline = TfidfSvmBaseline().fit([cat.titles[i] for i in split.fit], [cat.labels[i] for i in split.fit])
    commonest = Counter(cat.labels[i] for i in split.fit).most_common(1)[0][0]
    tree = bundle.tree
    return {
        "model": score(tree, test.labels, result.prediction.nodes)["hF1"],
        "baseline": score(tree, test.labels, tree.encode(baseline.predict_paths(test.titles)))["hF1"],
        "majority": score(tree, test.labels, tree.encode([commonest] * len(test)))["hF1"],
        "n_test": len(test),
    }


def test_production_classifier_trails_tfidf_svm_baseline_by_at_most_a_point_on_real_slice(classification_slice, private_copy):
    """The shipped model (`train`, then the saved bundle loaded back) against the TF-IDF + SVM baseline on the same
    held-out products, by hF1.

    Measured (2026-12-01, CPU, the slice of the session fixture: 2,996 products, 109 leaves, 300 photos; split seed 0,
    582 held out): model 0.9754, baseline 0.9719 (lead +0.0034), always-the-commonest-path 0.278. Split seeds 1 and 2
    on the same slice: leads -0.0006 and +0.0011 (model 0.9722, 0.9676); an earlier 3,421-product slice gave leads
    -0.0086, -0.0020, +0.0020. The shipped model's lead (+0.3 points on the full catalogue, BENCHMARKS.md) is smaller
    than what ~600 held-out products resolve, so "beats" cannot be asserted here without flaking; at 8,222 products it
    led on all three split seeds (+0.0010, +0.0032, +0.0054), at about twice this test's cost.

    Thresholds: lead >= -0.01, i.e. a margin of 0.0134 below today's +0.0034 (three times the 0.004 split-to-split
    range of the lead on this slice, and below the worst lead seen on any slice, -0.0086); hF1 >= 0.955, a margin of
    0.020 below today's 0.9754 (the lowest hF1 seen on any slice and split was 0.9634). A majority-class predictor
    (hF1 ~0.28) fails both by far.
    """
    scores = held_out_hf1(private_copy(classification_slice))
    print(f"held-out hF1 on {scores['n_test']} products: {scores}")
    deficit = scores["baseline"] - scores["model"]
    assert deficit <= MAX_DEFICIT_VS_BASELINE, (
        f"production hF1 {scores['model']:.4f} trails the TF-IDF + SVM baseline {scores['baseline']:.4f} by "
        f"{deficit:.4f} (> {MAX_DEFICIT_VS_BASELINE})"
    )
    assert scores["model"] >= MIN_HF1, f"production hF1 {scores['model']:.4f} < {MIN_HF1}"
