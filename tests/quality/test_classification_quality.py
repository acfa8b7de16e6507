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
SPLIT_SEEDS = (0, 1, 2)
MIN_MEAN_LEAD = 0.0  # "beats": the mean lead over the split seeds must be positive
MAX_DEFICIT_ON_ONE_SPLIT = 0.005
MIN_HF1 = 0.955


def held_out_hf1(url: str, *, seed: int = 0) -> dict[str, float]:
    """Train and activate a model version on `url` (split seed `seed`), then hF1 on its held-out products of the
    production model (the saved bundle, loaded back), of the TF-IDF + SVM baseline and of always predicting the fit
    rows' commonest path."""
    assert train(url, seed=seed, force=True, activate=True, log=lambda *_: None) is not None
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


def test_production_classifier_beats_tfidf_svm_baseline_on_a_real_slice(large_classification_slice, private_copy):
    """The shipped model (`train`, then the saved bundle loaded back) against the TF-IDF + SVM baseline fitted on the
    same fit rows, by hF1 on the same held-out products, for three split seeds.

    Measured (2026-12-01, CPU, the session's 8,222-product slice: every leaf >= 10 products, 300 photos; ~1,600
    held out per split): model 0.9761 / 0.9802 / 0.9834, baseline 0.9757 / 0.9762 / 0.9799 (split seeds 0, 1, 2),
    leads +0.0004 / +0.0040 / +0.0035, mean +0.0026; always-the-commonest-path 0.31. The lead is real but small (+0.3
    points on the full catalogue, BENCHMARKS.md): on the 3,000-product slice (~600 held out) single splits went both
    ways (-0.0006 to +0.0034), which is why this test uses the larger slice and the mean of three splits.

    Thresholds: mean lead > 0 (the issue's "beats"; margin 0.0026, today's mean lead); no single split trails by more
    than 0.005 (margin 0.0054 below the worst split, +0.0004; a regression of half a point on any split fails);
    hF1 >= 0.955 on every split, a margin of 0.021 below today's lowest (0.9761). A majority-class predictor (hF1 ~0.31)
    fails all three by far.
    """
    url = private_copy(large_classification_slice)
    runs = [held_out_hf1(url, seed=seed) for seed in SPLIT_SEEDS]
    leads = [r["model"] - r["baseline"] for r in runs]
    print(f"held-out hF1 per split seed {SPLIT_SEEDS}: {runs}; leads {[round(x, 4) for x in leads]}")
    assert sum(leads) / len(leads) > MIN_MEAN_LEAD, (
        f"production hF1 {[round(r['model'], 4) for r in runs]} does not beat the TF-IDF + SVM baseline "
        f"{[round(r['baseline'], 4) for r in runs]} on average (leads {[round(x, 4) for x in leads]})"
    )
    assert min(leads) >= -MAX_DEFICIT_ON_ONE_SPLIT, f"the production model trails the baseline by > 0.005 on a split: {leads}"
    assert min(r["model"] for r in runs) >= MIN_HF1, f"production hF1 below {MIN_HF1}: {runs}"
