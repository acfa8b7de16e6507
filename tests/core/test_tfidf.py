"""The TF-IDF projection modality: separates classes by exact tokens, and saves/loads without pickles."""

from __future__ import annotations

import numpy as np

from core.tfidf import TfidfProjector

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
