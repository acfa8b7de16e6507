"""The production model set: which hierarchical models exist, their inputs and options, and how each is fitted.

`ModelSpec`s name the models (single-modality models and three fusions over the catalogue's feature
blocks); `add_joint`, `add_tfidf` and `add_svm` fit the feature blocks that are learnt from the fit rows;
`fit_model` trains one spec, `stack_model` combines a neural model with the TF-IDF SVM per path, and `score`
reports the hierarchical metrics of predictions. Training (`core.steps`) and the comparison
(`core.bench.evaluate`) both build their models here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.classify.estimator import HierarchicalClassifier
from core.classify.metrics import hierarchical_report
from core.classify.stacking import StackedFusion
from core.embed.features import Features
from core.embed.joint import JointAligner
from core.embed.tfidf import TfidfProjector, TfidfSvmScores

TEXT_MODALITIES = ("title", "tfidf")
FUSION_MODALITIES = ("title", "tfidf", "image", "joint")
CASCADE_INPUTS = (*FUSION_MODALITIES, "svm")  # the stacked stages also read the SVM's path scores
STACKED = {"text-only": "text-only + tfidf-svm (stacked)", "late-fusion": "late-fusion + tfidf-svm (stacked)"}


@dataclass(frozen=True)
class ModelSpec:
    """One model of the set: its name, fusion kind and input blocks (keys of `Features.blocks`)."""

    name: str
    fusion: str = "late"
    modalities: tuple[str, ...] = ("text",)
    images_only: bool = False  # trained and scored on products with a photo only


MODELS = (
    ModelSpec("text-only", "late", TEXT_MODALITIES),
    ModelSpec("image-only", "late", ("image",), images_only=True),
    ModelSpec("joint-only", "late", ("joint",)),
    ModelSpec("early-fusion", "early", FUSION_MODALITIES),
    ModelSpec("late-fusion", "late", FUSION_MODALITIES),
    ModelSpec("attention-fusion", "attention", FUSION_MODALITIES),
)


TRAIN_OPTIONS: dict[str, Any] = {"hidden": 512, "epochs": 40, "lr": 2e-3, "batch_size": 512, "patience": 4, "dropout": 0.2}


TFIDF_DIM = 256  # width of the TF-IDF projection block
JOINT_DIM, JOINT_EPOCHS = 256, 30  # the title-photo aligner's joint space and training epochs


def add_joint(feats: Features, rows_for_fit: np.ndarray, *, dim: int = JOINT_DIM, seed: int = 0, epochs: int = JOINT_EPOCHS):
    """Fit the contrastive title-image aligner on `rows_for_fit` that have a photo; add block "joint" for all rows.

    Returns:
        the fitted `JointAligner`.
    """
    rows = rows_for_fit[feats.masks["image"][rows_for_fit]]
    aligner = JointAligner(dim=dim, epochs=epochs, seed=seed).fit(feats.blocks["title"][rows], feats.blocks["image"][rows])
    feats.blocks["joint"] = aligner.joint(feats.blocks["title"], feats.blocks["image"], feats.masks["image"]).astype(np.float32)
    feats.masks["joint"] = np.ones(len(feats.product_ids), bool)
    return aligner


def add_tfidf(feats: Features, titles: list[str], rows_for_fit: np.ndarray, *, dim: int = TFIDF_DIM, seed: int = 0):
    """Fit the TF-IDF projection on the titles of `rows_for_fit`; add block "tfidf" for all rows.

    Returns:
        the fitted `TfidfProjector`.
    """
    projector = TfidfProjector(dim=dim, seed=seed).fit([titles[i] for i in rows_for_fit])
    feats.blocks["tfidf"] = projector.transform(titles)
    feats.masks["tfidf"] = np.ones(len(titles), bool)
    return projector


def add_svm(feats: Features, titles: list[str], labels: list, rows_for_fit: np.ndarray, *, descriptions=None, seed: int = 0):
    """Fit the TF-IDF linear SVM (titles, and descriptions when given) on `rows_for_fit`; add block "svm",
    its per-path decision scores for every row (only rows outside `rows_for_fit` may be used to calibrate
    or score anything built on them).

    Returns:
        the fitted `TfidfSvmScores`.
    """
    pick = lambda xs: None if xs is None else [xs[i] for i in rows_for_fit]  # noqa: E731
    svm = TfidfSvmScores(seed=seed, folds=0).fit(
        pick(titles), pick([" > ".join(p) for p in labels]), descriptions=pick(descriptions)
    )
    feats.blocks["svm"], feats.masks["svm"] = svm.transform(titles, descriptions), np.ones(len(titles), bool)
    return svm


def inputs(feats: Features, modalities, rows: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(X, masks) of `rows` for the given input blocks; a block without a mask counts as present everywhere."""
    return (
        {m: feats.blocks[m][rows] for m in modalities},
        {m: feats.masks.get(m, np.ones(len(feats.product_ids), bool))[rows] for m in modalities},
    )


def fit_model(spec: ModelSpec, feats: Features, labels: list, rows: np.ndarray, *, tree, seed: int = 0, device=None, **options):
    """Train one hierarchical classifier of `spec` on `rows`."""
    X, masks = inputs(feats, spec.modalities, rows)
    clf = HierarchicalClassifier(
        fusion=spec.fusion, modalities=spec.modalities, seed=seed, device=device, tree=tree, **{**TRAIN_OPTIONS, **options}
    )
    return clf.fit(X, [labels[i] for i in rows], masks=masks)


def stack_model(model, svm, feats: Features, labels: list, calib_rows: np.ndarray):
    """Late fusion of a fitted neural model with the SVM at the path level, weights chosen on `calib_rows`."""
    stacked = StackedFusion(model, svm.classes_)
    X, masks = inputs(feats, stacked.modalities, calib_rows)
    return stacked.fit(X, [labels[i] for i in calib_rows], masks=masks)


def score(tree, true_paths: list, pred_nodes: np.ndarray) -> dict[str, Any]:
    """Hierarchical P/R/F1, per-level accuracy and macro-F1, and path validity of node-index predictions."""
    return hierarchical_report(tree.encode(true_paths), pred_nodes, tree=tree)
