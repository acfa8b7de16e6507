"""Suggested names for discovered clusters.

Class-based TF-IDF (c-TF-IDF, as in BERTopic) over each cluster's titles and descriptions gives
its top terms and a 1-3 word name; the nearest existing taxonomy names come from embedding
similarity of the cluster centroid (or token overlap without embeddings); each summary also
carries size, coherence and, where labels are known, purity and the majority label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from core.discover.clustering import NOISE, cluster_centroids, cluster_coherence, cluster_ids, majority_labels
from core.embed.encoders import l2_normalize

TOKEN = re.compile(r"[a-z][a-z0-9]+")
PLACEHOLDERS = ("na", "nan", "null", "none")  # catalogue placeholders ("Heels NA"), never a name


def ctfidf(
    docs: list[str],
    labels: np.ndarray,
    *,
    ngram_range: tuple[int, int] = (1, 2),
    stop_words: str | list[str] | None = "english",
    min_df: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class-based TF-IDF: one document per cluster, weights tf_{t,c} * log(1 + A / f_t).

    tf_{t,c} is the frequency of term t in cluster c (L1-normalised per cluster), f_t the
    frequency of t over all clusters and A the average number of words per cluster.

    Args:
        docs: N texts (e.g. title + description), one per product.
        labels: (N,) int cluster labels; noise (-1) is left out.
        ngram_range: word n-grams counted.
        stop_words: passed to scikit-learn's CountVectorizer.
        min_df: minimum number of products a term must occur in (lowered to 1 for tiny inputs).

    Returns:
        ids: (K,) cluster labels; weights: (K, V) float; vocab: (V,) str terms.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    labels = np.asarray(labels)
    ids = cluster_ids(labels)
    kept = [d for d, lab in zip(docs, labels) if lab != NOISE]
    try:
        vec = CountVectorizer(ngram_range=ngram_range, stop_words=stop_words, min_df=min_df)
        counts = vec.fit_transform(kept)
    except ValueError:  # vocabulary empty after pruning
        vec = CountVectorizer(ngram_range=ngram_range, stop_words=stop_words, min_df=1)
        counts = vec.fit_transform(kept)
    kept_labels = labels[labels != NOISE]
    tf = np.vstack([np.asarray(counts[kept_labels == c].sum(axis=0)).ravel() for c in ids]).astype(float)
    freq = tf.sum(axis=0)
    avg_words = tf.sum() / max(len(ids), 1)
    tf /= np.maximum(tf.sum(axis=1, keepdims=True), 1e-12)
    idf = np.log1p(avg_words / np.maximum(freq, 1e-12))
    return ids, tf * idf, np.asarray(vec.get_feature_names_out())


def top_terms(weights: np.ndarray, vocab: np.ndarray, *, top_n: int = 10) -> list[list[str]]:
    """Highest-weighted terms of each row of weights: (K, V); returns K lists of up to top_n terms."""
    order = np.argsort(-weights, axis=1, kind="stable")[:, :top_n]
    return [[str(vocab[j]) for j in row if weights[i, j] > 0] for i, row in enumerate(order)]


def name_from_terms(terms: list[str], *, max_words: int = 3) -> str:
    """A short name from ranked terms: add terms in order while they bring new words.

    Args:
        terms: ranked terms (unigrams or n-grams).
        max_words: most words in the name.

    Returns:
        e.g. "running shoes" or "heels"; "" when there are no terms.
    """
    words: list[str] = []
    for term in terms:
        new = [w for w in term.split() if w not in words]
        if not new or len(words) + len(new) > max_words:
            continue
        words += new
        if len(words) >= 2:
            break
    return " ".join(words)


def nearest_names_by_embedding(
    centroids: np.ndarray, name_emb: np.ndarray, names: list[str], *, top_n: int = 3
) -> list[list[tuple[str, float]]]:
    """Taxonomy names closest to each cluster centroid by cosine similarity.

    Args:
        centroids: (K, D) cluster centroids.
        name_emb: (M, D) embeddings of the existing taxonomy names.
        names: M names.
        top_n: names per cluster.

    Returns:
        K lists of (name, cosine) pairs, best first.
    """
    sims = l2_normalize(centroids) @ l2_normalize(name_emb).T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :top_n]
    return [[(names[j], float(sims[i, j])) for j in row] for i, row in enumerate(order)]


def tokens(text: str) -> set[str]:
    """Lower-case word tokens of a text, with a trailing plural "s" dropped."""
    return {t[:-1] if t.endswith("s") and len(t) > 3 else t for t in TOKEN.findall(text.lower())}


def nearest_names_by_tokens(terms: list[list[str]], names: list[str], *, top_n: int = 3) -> list[list[tuple[str, float]]]:
    """Taxonomy names sharing the most tokens with each cluster's top terms.

    Args:
        terms: K lists of ranked terms.
        names: M existing taxonomy names.
        top_n: names per cluster.

    Returns:
        K lists of (name, score) pairs, best first; score is the share of the name's tokens
        found among the terms, weighted towards higher-ranked terms.
    """
    out = []
    for ranked in terms:
        weight: dict[str, float] = {}
        for rank, term in enumerate(ranked):
            for tok in tokens(term):
                weight[tok] = max(weight.get(tok, 0.0), 1.0 / (1 + rank))
        scores = [float(np.mean([weight.get(t, 0.0) for t in tokens(n)] or [0.0])) for n in names]
        order = np.argsort(-np.array(scores), kind="stable")[:top_n]
        out.append([(names[j], scores[j]) for j in order if scores[j] > 0])
    return out


@dataclass
class ClusterSummary:
    """What a reviewer sees of one discovered cluster."""

    cluster_id: int
    name: str
    top_terms: list[str]
    nearest_names: list[tuple[str, float]]
    size: int
    coherence: float
    members: np.ndarray = field(repr=False)
    purity: float | None = None
    majority_label: str | None = None


class ClusterNamer:
    """Names clusters with c-TF-IDF and matches them to existing taxonomy names.

    Args:
        taxonomy_names: existing category names to match clusters against.
        taxonomy_embeddings: (M, D) embeddings of those names, in the space of the embeddings
            passed to `fit`; without them names are matched by token overlap.
        top_n_terms: top terms kept per cluster.
        name_words: most words in a suggested name.
        n_nearest: nearest taxonomy names kept per cluster.
        ngram_range, stop_words, min_df: c-TF-IDF vocabulary settings.
        extra_stop_words: words never used in names, added to `stop_words` (e.g. brand names,
            which otherwise name clusters after the brand that dominates them); the catalogue
            placeholders in PLACEHOLDERS ("na", ...) are always left out.
    """

    def __init__(
        self,
        *,
        taxonomy_names: list[str] | None = None,
        taxonomy_embeddings: np.ndarray | None = None,
        top_n_terms: int = 10,
        name_words: int = 3,
        n_nearest: int = 3,
        ngram_range: tuple[int, int] = (1, 2),
        stop_words: str | list[str] | None = "english",
        min_df: int = 2,
        extra_stop_words: list[str] | None = None,
    ):
        self.taxonomy_names = list(taxonomy_names or [])
        self.taxonomy_embeddings = taxonomy_embeddings
        self.top_n_terms = top_n_terms
        self.name_words = name_words
        self.n_nearest = n_nearest
        self.ngram_range = ngram_range
        self.stop_words = stop_words
        self.extra_stop_words = list(extra_stop_words or [])
        self.min_df = min_df

    def fit(
        self,
        docs: list[str] | None,
        labels: np.ndarray,
        *,
        embeddings: np.ndarray | None = None,
        known_labels: np.ndarray | None = None,
    ) -> ClusterNamer:
        """Summarise every cluster.

        Args:
            docs: N texts (title + description) or None (then names are "cluster <id>").
            labels: (N,) int cluster labels, -1 unassigned.
            embeddings: (N, D) embeddings for coherence and embedding-based name matching.
            known_labels: (N,) existing labels, for purity and the majority label.

        Sets:
            summaries_: list of ClusterSummary, one per cluster, in cluster-id order.
        """
        labels = np.asarray(labels)
        ids = cluster_ids(labels)
        terms = self._terms(docs, labels, ids)
        names = [name_from_terms(t, max_words=self.name_words) or f"cluster {c}" for t, c in zip(terms, ids)]
        nearest = self._nearest(labels, embeddings, terms)
        coherence = cluster_coherence(embeddings, labels)[1] if embeddings is not None else np.full(len(ids), np.nan)
        majority, purity = self._majority(labels, known_labels, len(ids))
        self.summaries_ = [
            ClusterSummary(
                cluster_id=int(c),
                name=names[i],
                top_terms=terms[i],
                nearest_names=nearest[i],
                size=int((labels == c).sum()),
                coherence=float(coherence[i]),
                members=np.flatnonzero(labels == c),
                purity=purity[i],
                majority_label=majority[i],
            )
            for i, c in enumerate(ids)
        ]
        return self

    def _terms(self, docs, labels, ids) -> list[list[str]]:
        if docs is None or len(ids) == 0:
            return [[] for _ in ids]
        _, weights, vocab = ctfidf(
            list(docs), labels, ngram_range=self.ngram_range, stop_words=self._stop_words(), min_df=self.min_df
        )
        return top_terms(weights, vocab, top_n=self.top_n_terms)

    def _stop_words(self) -> list[str]:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        base = ENGLISH_STOP_WORDS if self.stop_words == "english" else (self.stop_words or [])
        extra = {t for w in self.extra_stop_words for t in TOKEN.findall(w.lower())}
        return sorted(set(base) | extra | set(PLACEHOLDERS))

    def _nearest(self, labels, embeddings, terms) -> list[list[tuple[str, float]]]:
        if not self.taxonomy_names:
            return [[] for _ in terms]
        if self.taxonomy_embeddings is not None and embeddings is not None:
            _, cents = cluster_centroids(l2_normalize(embeddings), labels)
            return nearest_names_by_embedding(cents, self.taxonomy_embeddings, self.taxonomy_names, top_n=self.n_nearest)
        return nearest_names_by_tokens(terms, self.taxonomy_names, top_n=self.n_nearest)

    @staticmethod
    def _majority(labels, known_labels, k) -> tuple[list, list]:
        if known_labels is None:
            return [None] * k, [None] * k
        _, majority, purity = majority_labels(labels, np.asarray(known_labels))
        return [str(m) for m in majority], [float(p) for p in purity]
