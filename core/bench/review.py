"""`python -m core review --benchmark`: flip a share of the labels in memory, score the catalogue, and measure how
well each ranking of `core.review.scores` (and the review queue) finds the flipped products."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from core.embed.choice import EncoderChoice
from core.review.scores import RANKINGS, IssueScores, Progress, flip_labels, in_queue, review_features, score_catalogue
from core.steps.catalogue import load_catalogue
from core.steps.review import review_inputs
from db.session import get_sessionmaker


def benchmark(
    db_url: str,
    *,
    share: float = 0.02,
    folds: int = 4,
    seed: int = 0,
    choice: EncoderChoice | None = None,
    device=None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Flip `share` of the labels (in memory; the database is not changed), score, and measure how well each
    ranking finds the flipped products: precision@k and recall@k with k = number flipped. The features come from
    the active model version's encoders and TF-IDF projection (see `core.steps.review.review_inputs`)."""
    factory = get_sessionmaker(db_url)
    choice, projector, source = review_inputs(factory, choice=choice, device=device)
    with factory() as s:
        cat = load_catalogue(s)
    cat = cat.subset(np.flatnonzero(cat.trainable))
    started = time.perf_counter()
    features = review_features(cat, seed=seed, choice=choice, projector=projector, device=device, progress=progress)
    feature_s = time.perf_counter() - started
    original = list(cat.labels)
    noisy, flipped = flip_labels(original, share=share, seed=seed)
    cat.labels = noisy
    started = time.perf_counter()
    _, scores = score_catalogue(cat, folds=folds, seed=seed, device=device, progress=progress, features=features)
    score_s = time.perf_counter() - started
    truth = np.zeros(len(cat), bool)
    truth[flipped] = True
    return {
        "n_products": len(cat),
        "n_flipped": len(flipped),
        "share": share,
        "folds": folds,
        "seed": seed,
        "encoders": features[2],
        "features": source,
        **found_flips(scores, truth),
        # among the flipped products, how often the suggested path is the true (pre-flip) one
        "suggestion_is_true_path": round(float(np.mean([scores.suggested[i] == tuple(original[i]) for i in flipped])), 4),
        "features_s": round(feature_s, 1),
        "scoring_s": round(score_s, 1),
    }


def found_flips(scores: IssueScores, truth: np.ndarray) -> dict[str, Any]:
    """How well each ranking's top k, the review queue and the confident-learning flag find the `truth` rows
    (k = number of true rows)."""
    k = int(truth.sum())
    rankings = {}
    for name in RANKINGS:
        hits = int(truth[scores.ranking(name)[:k]].sum())
        rankings[name] = {"precision_at_k": round(hits / k, 4), "recall_at_k": round(hits / k, 4), "hits": hits}
    queued = in_queue(scores)
    return {
        "rankings": rankings,
        "queue": {
            "size": int(queued.sum()),
            "flipped_in_queue": int((queued & truth).sum()),
            "recall": round(float((queued & truth).sum() / k), 4),
            "precision": round(float((queued & truth).sum() / max(queued.sum(), 1)), 4),
        },
        "cl_flag": {
            "flagged": int(scores.flagged.sum()),
            "precision": round(float((scores.flagged & truth).sum() / max(scores.flagged.sum(), 1)), 4),
            "recall": round(float((scores.flagged & truth).sum() / k), 4),
        },
    }
