"""Two-stage inference: a cheap text-only model first, the multimodal model only where it is unsure.

Stage 1 predicts every product; products whose stage-1 path confidence is below `threshold` are routed
to stage 2 and take its prediction. Both stages must share one taxonomy (node indices).

A stage is any object with `modalities` (list of input names), `tree_` and
`predict(X, *, masks) -> HierarchicalPrediction`, e.g. `core.classify.estimator.HierarchicalClassifier`
or `core.classify.stacking.StackedFusion`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.classify.metrics import hierarchical_f1
from core.classify.taxonomy import HierarchicalPrediction

DEFAULT_THRESHOLDS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, np.inf)


def route(path_conf: np.ndarray, *, threshold: float) -> np.ndarray:
    """`(N,) bool`: True where stage-1 path confidence `(N,)` is below `threshold` (go to stage 2)."""
    return np.asarray(path_conf) < threshold


def merge_predictions(
    first: HierarchicalPrediction, second: HierarchicalPrediction, routed: np.ndarray
) -> HierarchicalPrediction:
    """Stage-1 rows, replaced by stage-2 rows where `routed (N,) bool` (both predictions cover all N)."""
    routed = np.asarray(routed, bool)
    return HierarchicalPrediction(
        np.where(routed[:, None], second.nodes, first.nodes),
        np.where(routed[:, None], second.level_conf, first.level_conf),
        np.where(routed, second.path_conf, first.path_conf),
    )


def _split_inputs(stage, X: dict, masks: dict | None) -> tuple[dict, dict | None]:
    """The inputs and masks of `stage.modalities` only."""
    xs = {m: X[m] for m in stage.modalities}
    return xs, None if masks is None else {m: masks[m] for m in stage.modalities if m in masks}


def _predict(stage, X: dict, masks: dict | None, within: np.ndarray | None = None) -> HierarchicalPrediction:
    xs, ms = _split_inputs(stage, X, masks)
    return stage.predict(xs, masks=ms) if within is None else stage.predict(xs, masks=ms, within=within)


def _rows(X: dict, masks: dict | None, rows: np.ndarray) -> tuple[dict, dict | None]:
    return {m: np.asarray(v)[rows] for m, v in X.items()}, (
        None if masks is None else {m: np.asarray(v)[rows] for m, v in masks.items()}
    )


@dataclass
class CascadeResult:
    """Merged predictions (`prediction`) and the stage used per product (`stage`: `(N,) int8`, 1 or 2)."""

    prediction: HierarchicalPrediction
    stage: np.ndarray


class TwoStageCascade:
    """Stage 1 everywhere, stage 2 where stage-1 path confidence < `threshold`.

    Args:
        stage1: the cheap (text-only) model.
        stage2: the multimodal model.
        threshold: confidence below which a product goes to stage 2.
    """

    def __init__(self, stage1, stage2, *, threshold: float = 0.9):
        if stage1.tree_ != stage2.tree_:
            raise ValueError("the two stages were trained on different taxonomies")
        self.stage1, self.stage2, self.threshold = stage1, stage2, threshold

    def predict(
        self, X: dict[str, np.ndarray], *, masks: dict[str, np.ndarray] | None = None, within: np.ndarray | None = None
    ) -> CascadeResult:
        """Two-stage prediction.

        Args:
            X: modality name -> `(N, D_m)`; must hold the inputs of both stages.
            masks: modality name -> `(N,) bool` presence masks.
            within: `(N, depth)` node prefix each path must start with (-1: free), see `TaxonomyTree.within`.

        Returns:
            `CascadeResult`; stage 2 runs only on the routed rows.
        """
        first = _predict(self.stage1, X, masks, within)
        routed = route(first.path_conf, threshold=self.threshold)
        merged = first.take(np.arange(len(first)))  # a copy
        if routed.any():
            second = _predict(self.stage2, *_rows(X, masks, routed), None if within is None else within[routed])
            merged.nodes[routed], merged.level_conf[routed] = second.nodes, second.level_conf
            merged.path_conf[routed] = second.path_conf
        return CascadeResult(merged, np.where(routed, 2, 1).astype(np.int8))


def sweep_from_predictions(
    first: HierarchicalPrediction,
    second: HierarchicalPrediction,
    y_true: np.ndarray,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    seconds1: float = 0.0,
    seconds2: float = 0.0,
) -> list[dict]:
    """Share routed, hF1 and estimated time per threshold, from both stages' predictions on all rows.

    Args:
        first, second: stage-1 and stage-2 predictions of the same N products.
        y_true: `(N, depth) int` true node indices.
        thresholds: confidence thresholds to try (`np.inf` routes everything).
        seconds1, seconds2: time each stage took on all N products; time at a threshold is estimated
            as `seconds1 + share * seconds2`.

    Returns:
        list of `{"threshold", "share_stage2", "hF1", "seconds"}`, in the order of `thresholds`.
    """
    rows = []
    for threshold in thresholds:
        routed = route(first.path_conf, threshold=threshold)
        merged = merge_predictions(first, second, routed)
        share = float(routed.mean()) if len(routed) else 0.0
        rows.append(
            {
                "threshold": float(threshold),
                "share_stage2": share,
                "hF1": hierarchical_f1(np.asarray(y_true), merged.nodes),
                "seconds": seconds1 + share * seconds2,
            }
        )
    return rows


def _timed_predict(stage, X: dict, masks: dict | None) -> tuple[HierarchicalPrediction, float]:
    start = time.perf_counter()
    pred = _predict(stage, X, masks)
    return pred, time.perf_counter() - start


def threshold_sweep(
    stage1,
    stage2,
    X: dict[str, np.ndarray],
    y_true: np.ndarray,
    *,
    masks: dict[str, np.ndarray] | None = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> list[dict]:
    """Runs both stages once on all rows (timed), then `sweep_from_predictions`.

    Args:
        stage1, stage2: fitted models sharing one taxonomy.
        X: modality name -> `(N, D_m)`. y_true: `(N, depth) int` true node indices.
        masks: modality name -> `(N,) bool`.
        thresholds: confidence thresholds to try.

    Returns:
        list of `{"threshold", "share_stage2", "hF1", "seconds"}`.
    """
    first, seconds1 = _timed_predict(stage1, X, masks)
    second, seconds2 = _timed_predict(stage2, X, masks)
    return sweep_from_predictions(first, second, y_true, thresholds=thresholds, seconds1=seconds1, seconds2=seconds2)


def choose_threshold(sweep: Sequence[dict], *, max_share: float = 0.5, max_hf1_drop: float = 0.002) -> dict:
    """The cheapest threshold whose hF1 is within `max_hf1_drop` of the sweep's best hF1.

    Among rows with `share_stage2 <= max_share` and `hF1 >= best - max_hf1_drop`, the one with the
    smallest share (ties: higher hF1). If no row meets both, the row with the best hF1 among those
    within `max_share` (or overall, if none is). The returned row is a copy with `meets_constraints`.

    Args:
        sweep: rows from `threshold_sweep` / `sweep_from_predictions`.
        max_share: largest acceptable share of products sent to stage 2.
        max_hf1_drop: largest acceptable hF1 loss against the best row.

    Returns:
        the chosen row (dict).
    """
    best = max(row["hF1"] for row in sweep)
    within = [row for row in sweep if row["share_stage2"] <= max_share]
    good = [row for row in within if row["hF1"] >= best - max_hf1_drop]
    if good:
        chosen = min(good, key=lambda row: (row["share_stage2"], -row["hF1"]))
    else:
        chosen = max(within or sweep, key=lambda row: row["hF1"])
    return {**chosen, "meets_constraints": bool(good)}
