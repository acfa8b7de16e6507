"""Where a platform category goes in the master taxonomy: three signals, combined with weights chosen on data.

For each platform category and each candidate master node (every active node, any depth, plus "no master
equivalent"):

- **vote**: how the active model placed the category's products. A node's vote is the share of the products
  predicted at or below it, less the share of its best child (`specific_vote`): a leaf that takes 90% of the
  products scores 0.9 and its parent 0.1; a category spread evenly over three leaves gives their parent 0.67.
- **name**: cosine similarity of the category's path and name to the node's (text encoder), mean of the two.
- **centroid**: cosine similarity of the mean text embedding of the category's products to that of the node's
  labelled products (the node and everything below it).

score = w_vote * vote + w_name * name + w_centroid * centroid; "no master equivalent" scores `none_score`; the
confidence is softmax(score / temperature) over the candidates, so it is a probability that `fit_weights` calibrates
on a reference mapping (negative log-likelihood), after choosing the weights that get most of it right.
A suggestion is ambiguous when its runner-up's confidence is within `AMBIGUOUS_GAP` of it.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

AMBIGUOUS_GAP = 0.15
NONE = -1  # the index of "no master equivalent" in a ranking
SIGNALS = ("vote", "name", "centroid")


@dataclass(frozen=True)
class Weights:
    vote: float
    name: float
    centroid: float
    none_score: float
    temperature: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# Chosen by `fit_weights` on all 132 categories of the hand-written H&M reference mapping (tests/data/
# hm_reference_mapping.csv) with the Myntra-trained model; `python -m benchmarks.bench_mapping` reproduces them
# ("weights_all") and measures what such weights do on categories they were not chosen on (two folds: chosen on one
# half, scored on the other). A new platform has no reference mapping, so these are its weights.
DEFAULT_WEIGHTS = Weights(vote=0.1, name=0.5, centroid=0.4, none_score=0.5, temperature=0.0432)


@dataclass
class Signals:
    """Per category (rows) and candidate master node (columns): the three signals, each `(C, K)` float."""

    vote: np.ndarray
    name: np.ndarray
    centroid: np.ndarray

    def combined(self, weights: Weights) -> np.ndarray:
        """`(C, K + 1)` scores; the last column is "no master equivalent"."""
        score = weights.vote * self.vote + weights.name * self.name + weights.centroid * self.centroid
        return np.hstack([score, np.full((len(score), 1), weights.none_score)])


def specific_vote(predicted: Sequence[Counter], nodes: Sequence[tuple[str, ...]]) -> np.ndarray:
    """`(C, K)` vote of each category for each node: share at or below the node minus its best child's share.

    Args:
        predicted: per category, Counter of the predicted (full) paths of its products.
        nodes: the candidate master paths.
    """
    index = {path: k for k, path in enumerate(nodes)}
    parent = [index.get(path[:-1]) for path in nodes]
    out = np.zeros((len(predicted), len(nodes)), np.float32)
    for c, counts in enumerate(predicted):
        total = sum(counts.values())
        if not total:
            continue
        share = np.zeros(len(nodes), np.float32)
        for path, n in counts.items():
            for depth in range(1, len(path) + 1):
                k = index.get(tuple(path[:depth]))
                if k is not None:
                    share[k] += n / total
        best_child = np.zeros(len(nodes), np.float32)
        for k, p in enumerate(parent):
            if p is not None:
                best_child[p] = max(best_child[p], share[k])
        out[c] = share - best_child
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`(len(a), len(b))` cosine similarities (zero rows give 0)."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a @ b.T).astype(np.float32)


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = scores / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Suggestion:
    """One category's ranking: candidate indices (NONE for "no master equivalent") with their confidence."""

    ranking: list[int]
    confidence: list[float]
    signals: list[dict[str, float]]  # vote / name / centroid of each ranked candidate

    @property
    def top(self) -> int:
        return self.ranking[0]

    @property
    def ambiguous(self) -> bool:
        return len(self.confidence) > 1 and self.confidence[0] - self.confidence[1] < AMBIGUOUS_GAP


def suggest(signals: Signals, weights: Weights = DEFAULT_WEIGHTS, *, top_k: int = 5) -> list[Suggestion]:
    """The `top_k` candidates of every category, best first."""
    prob = softmax(signals.combined(weights), weights.temperature)
    n_nodes = prob.shape[1] - 1
    out = []
    for c, row in enumerate(prob):
        order = np.argsort(-row, kind="stable")[:top_k]
        ranking = [int(k) if k < n_nodes else NONE for k in order]
        detail = [
            {s: float(getattr(signals, s)[c, k]) for s in SIGNALS} if k != NONE else {s: 0.0 for s in SIGNALS} for k in ranking
        ]
        out.append(Suggestion(ranking, [float(row[k]) for k in order], detail))
    return out


def top1_accuracy(signals: Signals, weights: Weights, truth: np.ndarray) -> float:
    """Share of categories whose best candidate is `truth` (node index, or NONE)."""
    scores = signals.combined(weights)
    best = scores.argmax(axis=1)
    best = np.where(best == scores.shape[1] - 1, NONE, best)
    return float((best == truth).mean())


def nll(signals: Signals, weights: Weights, truth: np.ndarray) -> float:
    prob = softmax(signals.combined(weights), weights.temperature)
    column = np.where(truth == NONE, prob.shape[1] - 1, truth)
    return float(-np.log(np.maximum(prob[np.arange(len(truth)), column], 1e-12)).mean())


def fit_weights(signals: Signals, truth: np.ndarray, *, step: float = 0.1) -> Weights:
    """The signal weights (a grid on the simplex) and "no equivalent" score that get most of `truth` right (ties:
    lower negative log-likelihood), then the temperature that calibrates them (lowest negative log-likelihood)."""
    grid = np.round(np.arange(0.0, 1.0 + 1e-9, step), 6)
    best: tuple[float, float, Weights] | None = None
    for wv, wn in itertools.product(grid, grid):
        wc = round(1.0 - wv - wn, 6)
        if wc < -1e-9:
            continue
        for none_score in np.round(np.arange(0.0, 0.81, 0.05), 6):
            w = Weights(float(wv), float(wn), float(wc), float(none_score), 0.05)
            key = (top1_accuracy(signals, w, truth), -nll(signals, w, truth))
            if best is None or key > best[:2]:
                best = (*key, w)
    assert best is not None
    chosen = best[2]
    temps = np.geomspace(0.005, 1.0, 60)
    with_t = lambda t: Weights(chosen.vote, chosen.name, chosen.centroid, chosen.none_score, float(t))
    return with_t(min(temps, key=lambda t: nll(signals, with_t(t), truth)))


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: Sequence[float] = (0.0, 0.5, 0.7, 0.9, 1.0)) -> list[dict]:
    """Per confidence bin: how many suggestions, their mean confidence, and the share that were right; plus the
    expected calibration error (count-weighted |confidence - accuracy|) as the last row."""
    rows, ece = [], 0.0
    for lo, hi in itertools.pairwise(bins):
        sel = (confidence >= lo) & ((confidence < hi) if hi < 1.0 else (confidence <= hi))
        if not sel.any():
            rows.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": 0, "confidence": None, "accuracy": None})
            continue
        conf, acc = float(confidence[sel].mean()), float(correct[sel].mean())
        ece += sel.sum() / len(confidence) * abs(conf - acc)
        rows.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": int(sel.sum()), "confidence": round(conf, 3), "accuracy": round(acc, 3)})
    rows.append({"bin": "ECE", "n": int(len(confidence)), "confidence": None, "accuracy": round(float(ece), 3)})
    return rows
