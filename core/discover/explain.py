"""Why a proposal is what it is: its top terms, its most typical and most doubtful members, and the terms that
separate it from its nearest sibling.

Everything here is pure: arrays of product vectors and texts in, plain lists out (ready for JSON and a page).
"""

from __future__ import annotations

import numpy as np

from core.discover.clustering import NOISE
from core.discover.naming import WORD, lemma
from core.embed.encoders import l2_normalize


def typical_and_doubtful(X: np.ndarray, members: np.ndarray, *, n: int = 5) -> tuple[list[int], list[int]]:
    """(the `n` members closest to the group's centroid, the `n` farthest), as positions into X, by cosine.

    Args:
        X: (N, D) product vectors.
        members: positions of the group's products.
    """
    members = np.asarray(members)
    if len(members) == 0:
        return [], []
    unit = l2_normalize(np.asarray(X[members], dtype=np.float32))
    centre = l2_normalize(unit.mean(axis=0, keepdims=True))[0]
    order = np.argsort(-(unit @ centre), kind="stable")
    return members[order[:n]].tolist(), members[order[::-1][: min(n, len(members))]].tolist()


def nearest_sibling(X: np.ndarray, groups: np.ndarray) -> dict[int, int]:
    """{group: the other group whose centroid is closest by cosine} for every group of `groups` (noise left out)."""
    groups = np.asarray(groups)
    ids = np.unique(groups[groups != NOISE])
    if len(ids) < 2:
        return {}
    unit = l2_normalize(np.asarray(X, dtype=np.float32))
    cents = l2_normalize(np.stack([unit[groups == g].mean(axis=0) for g in ids]))
    sims = cents @ cents.T
    np.fill_diagonal(sims, -np.inf)
    return {int(g): int(ids[sims[i].argmax()]) for i, g in enumerate(ids)}


def word_shares(texts: list[str], stop: set[str] = frozenset()) -> dict[str, float]:
    """{lemma: share of the texts that hold it}."""
    counts: dict[str, int] = {}
    for text in texts:
        for w in {lemma(t) for t in WORD.findall(text.lower()) if t not in stop and not t.isdigit()}:
            counts[w] = counts.get(w, 0) + 1
    return {w: c / max(len(texts), 1) for w, c in counts.items()}


def separating_terms(
    texts_a: list[str], texts_b: list[str], *, n: int = 5, min_share: float = 0.1, stop: set[str] = frozenset()
) -> tuple[list[dict], list[dict]]:
    """The words whose share of titles differs most between two groups: (more in a, more in b), each up to `n`
    entries {"term", "share_here", "share_there"} with the larger share at least `min_share`."""
    a, b = word_shares(texts_a, stop), word_shares(texts_b, stop)
    diff = {w: a.get(w, 0.0) - b.get(w, 0.0) for w in set(a) | set(b)}
    ranked = sorted(diff, key=lambda w: (-abs(diff[w]), w))

    def pick(sign: int, here: dict, there: dict) -> list[dict]:
        chosen = [w for w in ranked if sign * diff[w] > 0 and here.get(w, 0.0) >= min_share][:n]
        return [{"term": w, "share_here": round(here.get(w, 0.0), 3), "share_there": round(there.get(w, 0.0), 3)} for w in chosen]

    return pick(1, a, b), pick(-1, b, a)


def explain_groups(
    X: np.ndarray,
    groups: np.ndarray,
    titles: list[str],
    *,
    top_terms: dict[int, list[str]] | None = None,
    n_members: int = 5,
    stop: set[str] = frozenset(),
) -> dict[int, dict]:
    """An explanation of every group of `groups` (positions into X and titles; noise left out).

    Returns:
        {group: {"top_terms", "typical" and "doubtful" (positions, closest to / farthest from the centroid),
        "nearest_sibling" (group or None), "more_here" / "more_there" (the terms separating it from that sibling,
        see `separating_terms`)}}.
    """
    groups = np.asarray(groups)
    siblings = nearest_sibling(X, groups)
    out = {}
    for g in np.unique(groups[groups != NOISE]):
        members = np.flatnonzero(groups == g)
        typical, doubtful = typical_and_doubtful(X, members, n=n_members)
        other = siblings.get(int(g))
        here, there = ([], [])
        if other is not None:
            here, there = separating_terms(
                [titles[i] for i in members], [titles[i] for i in np.flatnonzero(groups == other)], stop=stop
            )
        out[int(g)] = {
            "top_terms": list((top_terms or {}).get(int(g), [])),
            "typical": typical,
            "doubtful": doubtful,
            "nearest_sibling": other,
            "more_here": here,
            "more_there": there,
        }
    return out
