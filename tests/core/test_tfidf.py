"""The TF-IDF projection modality: separates classes by exact tokens, and saves/loads without pickles."""

from __future__ import annotations

import numpy as np

from core.embed.tfidf import TfidfProjector

TITLES = [
    f"{brand} Men {colour} {kind}"
    for brand in ("Nike", "Puma", "Adidas", "Roadster")
    for colour in ("Red", "Blue", "Black", "White", "Grey")
    for kind in ("Casual Shoes", "Sports Shoes", "Tshirt", "Heels")
]


def test_projection_separates_kinds_and_round_trips(tmp_path):
    proj = TfidfProjector(dim=16, seed=0).fit(TITLES)
    emb = proj.transform(TITLES)
    assert emb.shape == (80, 16) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    kinds = np.array([t.split(" ", 3)[3] for t in TITLES])
    sims = emb @ emb.T
    same = kinds[:, None] == kinds[None, :]
    assert sims[same].mean() > sims[~same].mean() + 0.2
    proj.save(tmp_path / "tfidf")
    assert not list((tmp_path / "tfidf").glob("*.pkl"))
    again = TfidfProjector.load(tmp_path / "tfidf")
    np.testing.assert_allclose(again.transform(TITLES[:5]), emb[:5], atol=1e-6)
    assert np.allclose(again.transform(["zzzz qqqq"]), 0.0)  # no known n-gram: a zero row, not NaN


def test_svm_scores_are_out_of_fold_on_training_rows_and_round_trip(tmp_path):
    from core.embed.tfidf import TfidfSvmScores

    kinds = [t.split(" ", 3)[3] for t in TITLES]
    model = TfidfSvmScores(folds=4, seed=0).fit(TITLES, kinds)
    scores = model.transform(TITLES)
    assert scores.shape == (80, 4) and model.oof_.shape == (80, 4)
    predicted = [model.classes_[i] for i in scores.argmax(1)]
    assert predicted == kinds  # in-sample
    assert not np.allclose(model.oof_, scores)  # out-of-fold scores come from models that did not see the row
    assert np.mean([model.classes_[i] == k for i, k in zip(model.oof_.argmax(1), kinds)]) > 0.9
    model.save(tmp_path / "svm")
    again = TfidfSvmScores.load(tmp_path / "svm")
    np.testing.assert_allclose(again.transform(TITLES), scores, atol=2e-2)  # coefficients stored as float16
    assert again.classes_ == model.classes_
