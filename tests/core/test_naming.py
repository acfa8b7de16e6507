from __future__ import annotations

import numpy as np

from core.discover.naming import (
    ClusterNamer,
    ctfidf,
    name_from_terms,
    nearest_names_by_embedding,
    nearest_names_by_tokens,
    tokens,
    top_terms,
)
from tests.core.discovery_helpers import CLASS_WORDS, blobs, docs_for


def test_ctfidf_ranks_class_terms_above_shared_terms():
    docs = ["red heel shoe", "red heel shoe", "blue mesh shoe", "blue mesh shoe", "noise words here"]
    labels = np.array([0, 0, 1, 1, -1])
    ids, weights, vocab = ctfidf(docs, labels, ngram_range=(1, 1), stop_words=None, min_df=1)
    np.testing.assert_array_equal(ids, [0, 1])
    col = {t: i for i, t in enumerate(vocab)}
    assert "noise" not in col  # noise points are left out
    assert weights[0, col["heel"]] > weights[0, col["shoe"]]
    assert weights[1, col["mesh"]] > weights[1, col["shoe"]]
    assert weights[0, col["mesh"]] == 0
    assert top_terms(weights, vocab, top_n=2)[0] == ["heel", "red"]


def test_ctfidf_falls_back_when_min_df_prunes_everything():
    _, weights, vocab = ctfidf(["alpha", "beta"], np.array([0, 1]), min_df=5, stop_words=None)
    assert set(vocab) == {"alpha", "beta"}
    assert weights.shape == (2, 2)


def test_name_from_terms_uses_one_to_three_new_words():
    assert name_from_terms(["running shoes", "running", "mesh"]) == "running shoes"
    assert name_from_terms(["heels", "heels party", "stiletto"]) == "heels party"
    assert name_from_terms(["flats", "ballerina flats"]) == "flats ballerina"
    assert name_from_terms(["a b c d", "x"]) == "x"
    assert name_from_terms([]) == ""


def test_nearest_names_by_embedding_ranks_by_cosine():
    cents = np.array([[1.0, 0.1], [0.0, 1.0]])
    name_emb = np.array([[0.0, 2.0], [3.0, 0.0], [1.0, 1.0]])
    out = nearest_names_by_embedding(cents, name_emb, ["B", "A", "AB"], top_n=2)
    assert [n for n, _ in out[0]] == ["A", "AB"]
    assert [n for n, _ in out[1]] == ["B", "AB"]
    assert abs(out[1][0][1] - 1.0) < 1e-6


def test_nearest_names_by_tokens_matches_plurals_and_rank():
    assert tokens("Sports Shoes") == {"sport", "shoe"}
    out = nearest_names_by_tokens([["sports", "shoe", "mesh"], ["heels"]], ["Heels", "Sports Shoes", "Flats"])
    assert out[0][0][0] == "Sports Shoes"
    assert [n for n, _ in out[1]] == ["Heels"]


def test_namer_summarises_each_cluster():
    _, y = blobs(n_per=30, k=4, dim=8)
    docs = docs_for(y)
    labels = y.copy()
    labels[::10] = -1
    emb, _ = blobs(n_per=30, k=4, dim=8)
    namer = ClusterNamer(taxonomy_names=["Sports Shoes", "Heels", "Formal Shoes", "Casual Shoes"])
    summaries = namer.fit(docs, labels, embeddings=emb, known_labels=y).summaries_
    assert [s.cluster_id for s in summaries] == [0, 1, 2, 3]
    for s in summaries:
        assert s.size == (labels == s.cluster_id).sum() == len(s.members)
        assert set(s.name.split()) <= set(CLASS_WORDS[s.cluster_id])
        assert 1 <= len(s.name.split()) <= 3
        assert s.purity == 1.0 and s.majority_label == str(s.cluster_id)
        assert s.coherence > 0.9
    assert summaries[0].nearest_names[0][0] == "Sports Shoes"
    assert summaries[2].nearest_names[0][0] == "Formal Shoes"


def test_namer_uses_name_embeddings_when_given():
    emb, y = blobs(n_per=20, k=2, dim=8)
    cents = np.stack([emb[y == 0].mean(0), emb[y == 1].mean(0)])
    namer = ClusterNamer(taxonomy_names=["second", "first"], taxonomy_embeddings=cents[::-1])
    summaries = namer.fit(None, y, embeddings=emb).summaries_
    assert [s.nearest_names[0][0] for s in summaries] == ["first", "second"]
    assert summaries[0].name == "cluster 0" and summaries[0].purity is None


def test_extra_stop_words_keep_brands_out_of_names():
    docs = ["acme running shoe NA", "acme running mesh NA", "zeta heel party", "zeta heel stiletto"]
    labels = np.array([0, 0, 1, 1])
    plain = ClusterNamer(min_df=1).fit(docs, labels).summaries_
    assert "acme" in plain[0].top_terms
    named = ClusterNamer(min_df=1, extra_stop_words=["Acme", "Zeta"]).fit(docs, labels).summaries_
    assert not {"acme", "zeta", "na"} & {w for s in named for t in s.top_terms for w in t.split()}
    assert named[0].name.split()[0] == "running" and named[1].name.split()[0] == "heel"
