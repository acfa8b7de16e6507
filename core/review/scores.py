"""Label-issue scores: which products' labels look wrong, ranked, with a suggested path for each.

Out-of-fold probabilities (k-fold cross-validation: a product is only ever scored by a model that did
not see its label) of a hierarchical early-fusion classifier over title, TF-IDF and photo features give,
per product and per taxonomy level, the marginal P(node). From them:

- self-confidence: P(the labelled node), per level and for the whole path (the deepest labelled level);
- normalised margin: P(label) - max P(other) (in [-1, 1]; negative when the model prefers another node);
  at path level "other" is the best leaf path that does not run through the label;
- confident-learning flag (Northcutt et al., 2021, the confident joint): per level, class j's threshold
  t_j is the mean P(j) over the products labelled j; a product is counted for the class of highest
  probability among those with P(j) >= t_j, and flagged when that class is not its label.

The queue is ranked by `score` = 1 - path self-confidence (the ranking that measured best in
`python -m core review --benchmark`, against normalised margin and the raw-confidence baseline); the
suggested path is the most probable leaf path outside the label.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.classify.estimator import HierarchicalClassifier
from core.classify.models import TRAIN_OPTIONS
from core.classify.taxonomy import TaxonomyTree
from core.data.dataset import PATH_SEP, Catalogue
from core.embed.choice import EncoderChoice, chosen_encoders
from core.embed.features import embed_catalogue
from core.embed.tfidf import TfidfProjector

Progress = Callable[[str, int, int], None]
MODALITIES = ("title", "tfidf", "image")
RANKINGS = (
    "self_confidence",
    "margin",
    "flag_then_self_confidence",
    "raw_confidence (baseline)",
    "disagreement_by_confidence (baseline)",
)


@dataclass
class IssueScores:
    """Aligned with the scored rows. Paths are tuples of names."""

    self_confidence: np.ndarray  # (N,) P(label path)
    margin: np.ndarray  # (N,) normalised margin at path level
    flagged: np.ndarray  # (N,) bool, confident-learning flag at any level
    level_self_confidence: np.ndarray  # (N, depth), nan past the label's depth
    level_margin: np.ndarray  # (N, depth)
    level_flag: np.ndarray  # (N, depth) bool
    suggested: list[tuple[str, ...]]
    suggested_confidence: np.ndarray  # (N,)
    max_confidence: np.ndarray  # (N,) P(most probable leaf path): the raw-confidence baseline
    alone: np.ndarray  # (N,) bool, the only product on its label path: out of fold, nothing saw that path

    @property
    def score(self) -> np.ndarray:
        """(N,) higher = more likely mislabelled."""
        return 1.0 - self.self_confidence

    def ranking(self, name: str = "self_confidence") -> np.ndarray:
        """Row order, most suspicious first, under one of `RANKINGS`."""
        if name == "self_confidence":
            key = (self.self_confidence,)
        elif name == "margin":
            key = (self.margin,)
        elif name == "flag_then_self_confidence":
            key = (self.self_confidence, ~self.flagged)
        elif name == "raw_confidence (baseline)":  # least confident prediction first
            key = (self.max_confidence,)
        elif name == "disagreement_by_confidence (baseline)":  # prediction != label, most confident first
            key = (-self.max_confidence, self.margin >= 0)
        else:
            raise ValueError(f"unknown ranking {name!r}; use one of {RANKINGS}")
        return np.lexsort(key)

    def level_records(self, row: int) -> list[dict[str, Any]]:
        out = []
        for level in range(self.level_self_confidence.shape[1]):
            sc = self.level_self_confidence[row, level]
            if np.isnan(sc):
                break
            out.append(
                {
                    "level": level + 1,
                    "self_confidence": round(float(sc), 4),
                    "margin": round(float(self.level_margin[row, level]), 4),
                    "flag": bool(self.level_flag[row, level]),
                }
            )
        return out


def fold_ids(labels: list[tuple[str, ...]], folds: int, seed: int) -> np.ndarray:
    """(n,) fold number of each row: seeded and stratified by label path, so every path with at least two
    products has training examples outside each of its products' folds."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, path in enumerate(labels):
        groups.setdefault(tuple(path), []).append(i)
    out = np.empty(len(labels), np.int64)
    offset = 0
    for rows in groups.values():
        rows = rng.permutation(rows)
        out[rows] = (np.arange(len(rows)) + offset) % folds  # rotate so small paths do not all start in fold 0
        offset += len(rows)
    return out


def out_of_fold_marginals(
    X: dict[str, np.ndarray],
    masks: dict[str, np.ndarray],
    labels: list[tuple[str, ...]],
    *,
    folds: int = 4,
    seed: int = 0,
    progress: Progress | None = None,
    engine=None,
    **options,
):
    """Per level `(N, n_L)` marginal probabilities, each row predicted by the model of the fold that held it out.

    `engine`: None (the folds one after another here) or an engine of `core.engine` that runs `fold_marginals` of
    each fold elsewhere (`engine.run_folds(fn, args, folds)` yields (fold, result) in any order): the same models.

    Returns:
        (tree, marginals).
    """
    if folds < 2:
        raise ValueError("out-of-fold scores need at least 2 folds")
    tree = TaxonomyTree.from_paths(labels)
    fold = fold_ids(labels, folds, seed)
    marginals = [np.zeros((len(labels), size), np.float32) for size in tree.sizes]
    args = (X, masks, labels, tree, fold, seed, {**TRAIN_OPTIONS, **options})  # settings resolved here, where they are set
    if engine is None:
        runs = ((k, fold_marginals(k, *args)) for k in range(folds))
    else:
        runs = engine.run_folds(fold_marginals, args, folds)
    for done, (k, probs) in enumerate(runs, 1):
        held = np.flatnonzero(fold == k)
        for level, p in enumerate(probs):
            marginals[level][held] = p
        if progress:
            progress("out-of-fold models", done, folds)
    return tree, marginals


def fold_marginals(k: int, X, masks, labels, tree, fold: np.ndarray, seed: int, options: dict) -> list[np.ndarray]:
    """Per level marginals of the rows of fold `k` under a model (seed `seed + k`) fitted on the other folds' rows."""
    modalities = list(X)
    train, held = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
    clf = HierarchicalClassifier(fusion="early", modalities=modalities, tree=tree, seed=seed + k, **options)
    clf.fit({m: X[m][train] for m in modalities}, [labels[i] for i in train], masks={m: masks[m][train] for m in modalities})
    return clf.predict_proba({m: X[m][held] for m in modalities}, masks={m: masks[m][held] for m in modalities})


def issue_scores(tree, marginals: list[np.ndarray], labels: list[tuple[str, ...]]) -> IssueScores:
    """Self-confidence, normalised margin and confident-learning flags of `labels` under `marginals`."""
    n, depth = len(labels), tree.depth
    path_count = Counter(tuple(p) for p in labels)
    given = tree.encode(labels)  # (N, depth), -1 past the label's end
    level_sc = np.full((n, depth), np.nan)
    level_margin = np.full((n, depth), np.nan)
    level_flag = np.zeros((n, depth), bool)
    rows = np.arange(n)
    for level in range(depth):
        P = marginals[level].astype(np.float64)
        has = given[:, level] >= 0
        g = np.where(has, given[:, level], 0)
        p_given = P[rows, g]
        others = P.copy()
        others[rows, g] = -np.inf
        level_sc[has, level] = p_given[has]
        best_other = others.max(1) if P.shape[1] > 1 else np.zeros(n)  # a level with one node has no rival
        level_margin[has, level] = (p_given - best_other)[has]
        # confident joint: per-class thresholds from the products labelled with the class
        sums = np.bincount(g[has], weights=p_given[has], minlength=P.shape[1])
        labelled = np.bincount(g[has], minlength=P.shape[1])
        thresholds = np.where(labelled > 0, sums / np.maximum(labelled, 1), np.inf)
        above = np.where(P >= thresholds[None, :], P, -np.inf)
        assigned = above.argmax(1)
        confident = np.isfinite(above.max(1))
        level_flag[:, level] = has & confident & (assigned != g)
    # path level: leaves of the tree and their probabilities (marginal at each leaf's own depth)
    leaves = tree.leaf_paths()
    leaf_depth = (leaves >= 0).sum(1) - 1
    leaf_p = np.stack([marginals[d][:, leaves[j, d]] for j, d in enumerate(leaf_depth)], axis=1).astype(np.float64)
    label_depth = (given >= 0).sum(1) - 1
    self_conf = level_sc[rows, label_depth]
    # a leaf runs through the label when it has the label's node at the label's depth
    through = leaves[None, :, :] == given[:, None, :]  # (N, P, depth)
    through = np.take_along_axis(through, label_depth[:, None, None].repeat(len(leaves), 1), axis=2)[:, :, 0]
    other_p = np.where(through, -np.inf, leaf_p)
    best_other = other_p.argmax(1)
    best_other_p = other_p[rows, best_other]
    best_other_p = np.where(np.isfinite(best_other_p), best_other_p, 0.0)
    suggested = tree.decode(leaves[best_other])
    return IssueScores(
        self_confidence=self_conf,
        margin=self_conf - best_other_p,
        flagged=level_flag.any(1),
        level_self_confidence=level_sc,
        level_margin=level_margin,
        level_flag=level_flag,
        suggested=suggested,
        suggested_confidence=best_other_p,
        max_confidence=leaf_p.max(1),
        alone=np.array([path_count[tuple(p)] == 1 for p in labels], bool),
    )


def review_features(
    cat: Catalogue,
    *,
    seed: int = 0,
    choice: EncoderChoice | None = None,
    projector: TfidfProjector | None = None,
    device=None,
    progress: Progress | None = None,
    engine=None,
):
    """(X, masks, encoder ids) of the review model: cached title and photo embeddings from the encoders of `choice`
    (default: the recorded choice; no photo block when it has no image encoder), and a TF-IDF projection of the titles.

    `projector`: a fitted TF-IDF projection (the active model version's, so the queue is scored in the model's own
    feature space); without one, a projection is fitted here on every title (it is unsupervised: it never reads a
    label).
    """
    choice = choice or chosen_encoders()
    feats = embed_catalogue(cat, **choice.kwargs(), device=device, progress=progress, engine=engine)
    if any(t.strip() for t in cat.titles):
        projector = projector or TfidfProjector(dim=256, seed=seed).fit(cat.titles)
        feats.blocks["tfidf"] = projector.transform(cat.titles)
        feats.masks["tfidf"] = np.ones(len(cat), bool)
    else:  # a photo-only catalogue: its empty titles say nothing
        feats.blocks.pop("title", None)
    if "image" in feats.masks and not feats.masks["image"].any():
        feats.blocks.pop("image")  # no readable photo at all
    modalities = [m for m in MODALITIES if m in feats.blocks]
    if not modalities:
        raise ValueError("nothing to score labels by: the products have neither titles nor readable photos")
    return {m: feats.blocks[m] for m in modalities}, {m: feats.masks[m] for m in modalities}, feats.encoder_ids


def score_catalogue(
    cat, *, folds: int = 4, seed: int = 0, device=None, progress: Progress | None = None, features=None, engine=None
):
    """Issue scores of every product of `cat` labelled at a leaf (`Catalogue.trainable`); `engine`: where the folds
    run (see `out_of_fold_marginals`).

    Returns:
        (rows, IssueScores): the scored row indices of `cat` and their scores.
    """
    rows = np.flatnonzero(cat.trainable)
    if features is None:
        features = review_features(cat, seed=seed, device=device, progress=progress, engine=engine)
    X, masks, _ = features
    labels = [cat.labels[i] for i in rows]
    tree, marginals = out_of_fold_marginals(
        {m: x[rows] for m, x in X.items()},
        {m: k[rows] for m, k in masks.items()},
        labels,
        folds=folds,
        seed=seed,
        progress=progress,
        engine=engine,
    )
    return rows, issue_scores(tree, marginals, labels)


def in_queue(scores: IssueScores) -> np.ndarray:
    """(N,) bool: the model prefers another path to the label, or confident learning flags it and the label's
    own probability is under one half; never a product that is alone on its path (no model could learn it)."""
    return ((scores.margin < 0) | (scores.flagged & (scores.self_confidence < 0.5))) & ~scores.alone


def queue_rows(cat, rows: np.ndarray, scores: IssueScores, node_ids: dict[str, int]) -> list[dict[str, Any]]:
    """Database rows of the review queue (see `in_queue`)."""
    keep = np.flatnonzero(in_queue(scores))
    out = []
    for j in keep:
        i = rows[j]
        out.append(
            {
                "product_id": int(cat.product_ids[i]),
                "score": round(float(scores.score[j]), 6),
                "self_confidence": round(float(scores.self_confidence[j]), 6),
                "margin": round(float(scores.margin[j]), 6),
                "flagged": bool(scores.flagged[j]),
                "label_node_id": node_ids[PATH_SEP.join(cat.labels[i])],
                "suggested_node_id": node_ids[PATH_SEP.join(scores.suggested[j])],
                "suggested_confidence": round(float(scores.suggested_confidence[j]), 6),
                "levels": scores.level_records(j),
            }
        )
    return out


def flip_labels(labels: list[tuple[str, ...]], *, share: float = 0.02, seed: int = 0) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """Move a seeded `share` of the products to a plausible wrong path: a sibling (same parent) or a
    cousin (same grandparent) leaf, among the paths in use.

    Returns:
        (noisy labels, indices of the flipped rows).
    """
    rng = np.random.default_rng(seed)
    paths = sorted({tuple(p) for p in labels})
    candidates: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for p in paths:
        near = [q for q in paths if q != p and len(q) == len(p) and len(p) >= 2 and q[: len(p) - 1] == p[:-1]]
        near += [
            q
            for q in paths
            if q != p and len(q) == len(p) and len(p) >= 3 and q[: len(p) - 2] == p[:-2] and q[: len(p) - 1] != p[:-1]
        ]
        candidates[p] = near
    eligible = np.flatnonzero([bool(candidates[tuple(p)]) for p in labels])
    flipped = np.sort(rng.choice(eligible, size=int(round(share * len(labels))), replace=False))
    noisy = list(labels)
    for i in flipped:
        options = candidates[tuple(labels[i])]
        noisy[i] = options[rng.integers(len(options))]
    return noisy, flipped
