"""The production steps behind `python -m core train` and `python -m core predict`.

train: labels and taxonomy from the database -> features (cached) -> joint aligner, a text-only stage-1
model and a late-fusion stage-2 model on a fixed split -> threshold chosen on the calibration rows ->
metrics on the held-out rows -> artifacts under data/models/<version> -> a registered model version.
predict: the active version's two-stage cascade over every product -> predictions in the database.
Both are idempotent: with nothing changed they return at once.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core.config import data_dir

Progress = Callable[[str, int, int], None]
STAGE2 = "late-fusion"


def data_key(cat, encoder_ids: dict[str, str]) -> str:
    """Hash of what a model learns from: product ids, label paths, encoders."""
    h = hashlib.sha256(json.dumps(encoder_ids, sort_keys=True).encode())
    h.update(cat.product_ids.tobytes())
    h.update("\n".join(" > ".join(p) if p else "" for p in cat.labels).encode())
    return h.hexdigest()[:16]


def _load(session_factory, *, labelled_only: bool):
    from core.dataset import load_catalogue

    with session_factory() as s:
        cat = load_catalogue(s)
    return cat.subset(np.flatnonzero(cat.labelled)) if labelled_only else cat


def train(
    db_url: str,
    *,
    seed: int = 0,
    force: bool = False,
    activate: bool | None = None,
    device=None,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
) -> int | None:
    """Train and register a model version; returns its id (None when nothing changed and not `force`).

    Args:
        activate: make it the active model (default: when no model is active yet).
    """
    from core.classify import MODELS, add_joint, add_svm, add_tfidf, fit_model, make_split
    from core.features import embed_catalogue
    from core.hierarchy import TaxonomyTree
    from db import predictions as preds
    from db.repo import taxonomy_version
    from db.session import get_sessionmaker, transaction

    factory = get_sessionmaker(db_url)
    cat = _load(factory, labelled_only=True)
    if len(cat) < 10:
        raise ValueError(f"only {len(cat)} labelled products: ingest a catalogue first")
    feats = embed_catalogue(cat, device=device, progress=progress)
    key = data_key(cat, feats.encoder_ids)
    with factory() as s:
        active = preds.active_model_version(s)
    if active is not None and active.params.get("data_key") == key and not force:
        log(f"model version #{active.id} was trained on these labels and features: nothing to do")
        return None
    started = time.perf_counter()
    split = make_split(cat.labels, seed=seed)
    tree = TaxonomyTree.from_paths(cat.labels)
    aligner = add_joint(feats, split.fit, seed=seed)
    projector = add_tfidf(feats, cat.titles, split.fit, seed=seed)
    svm = add_svm(feats, cat.titles, cat.labels, split.fit, seed=seed)
    specs = {spec.name: spec for spec in MODELS}
    stage1 = fit_model(specs["text-only"], feats, cat.labels, split.fit, tree=tree, seed=seed, device=device)
    stage2 = fit_model(specs[STAGE2], feats, cat.labels, split.fit, tree=tree, seed=seed, device=device)
    metrics, threshold = _metrics(stage1, stage2, feats, cat.labels, split, tree)
    folder = data_dir() / "models" / f"{time.strftime('%Y%m%d-%H%M%S')}-{key[:8]}"
    _save(folder, aligner=aligner, projector=projector, svm=svm, stage1=stage1, stage2=stage2)
    params = {
        "data_key": key,
        "seed": seed,
        "node_ids": _node_ids(factory, tree),
        "threshold": threshold,
        "stage1": "text-only",
        "stage2": STAGE2,
        "encoders": feats.encoder_ids,
        "n_fit": len(split.fit),
        "n_test": len(split.test),
        "train_s": round(time.perf_counter() - started, 1),
    }
    with transaction(factory) as s:
        version = preds.register_model_version(
            s,
            name=f"cascade text-only -> {STAGE2}",
            metrics=metrics,
            params=params,
            artifact=str(folder),
            taxonomy_version_id=taxonomy_version(s) or None,
        )
        if activate or (activate is None and active is None):
            preds.activate_model_version(s, version_id=version.id, actor="train")
        version_id = version.id
    log(
        f"model version #{version_id}: hF1 {metrics['hf1']:.4f} on {len(split.test)} held-out products, "
        f"threshold {threshold:.3f}, trained in {params['train_s']}s"
    )
    return version_id


def _metrics(stage1, stage2, feats, labels, split, tree) -> tuple[dict[str, Any], float]:
    from core.cascade import TwoStageCascade, choose_threshold, threshold_sweep
    from core.classify import FUSION_MODALITIES, inputs, score

    X, masks = inputs(feats, FUSION_MODALITIES, split.calib)
    chosen = choose_threshold(threshold_sweep(stage1, stage2, X, tree.encode([labels[i] for i in split.calib]), masks=masks))
    X, masks = inputs(feats, FUSION_MODALITIES, split.test)
    result = TwoStageCascade(stage1, stage2, threshold=chosen["threshold"]).predict(X, masks=masks)
    report = score(tree, [labels[i] for i in split.test], result.prediction.nodes)
    per_node = _per_leaf_f1(tree, [labels[i] for i in split.test], result.prediction.nodes)
    metrics = {
        "hf1": report["hF1"],
        "level_accuracy": report["level_accuracy"],
        "level_macro_f1": report["level_macro_f1"],
        "path_validity": report["path_validity"],
        "share_stage2": float((result.stage == 2).mean()),
        "per_node_f1": per_node,
        "test_product_ids": feats.product_ids[split.test].tolist(),
    }
    return metrics, float(chosen["threshold"])


def _node_ids(factory, tree) -> dict[str, int]:
    """Database node id of every path prefix the model can predict (ids survive later renames)."""
    from sqlalchemy import select

    from db.models import TaxonomyNode

    with factory() as s:
        ids = dict(s.execute(select(TaxonomyNode.path, TaxonomyNode.id)).all())
    prefixes = {" > ".join(p[: i + 1]) for p in tree.decode(tree.leaf_paths()) for i in range(len(p))}
    return {path: ids[path] for path in prefixes}


def _per_leaf_f1(tree, true_paths: list, pred_nodes: np.ndarray) -> dict[str, dict[str, float]]:
    """F1 and support of each predicted or true full path on the held-out rows."""
    from collections import Counter

    pred_paths = [" > ".join(p) for p in tree.decode(pred_nodes)]
    truth = [" > ".join(p) for p in true_paths]
    tp = Counter(t for t, p in zip(truth, pred_paths) if t == p)
    n_true, n_pred = Counter(truth), Counter(pred_paths)
    out = {}
    for path in set(truth) | set(pred_paths):
        denom = n_true[path] + n_pred[path]
        out[path] = {"f1": round(2 * tp[path] / denom, 4) if denom else 0.0, "support": n_true[path]}
    return out


def _save(folder: Path, *, aligner, projector, svm, stage1, stage2) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    aligner.save(folder / "joint.pt")
    projector.save(folder / "tfidf")
    svm.save(folder / "svm")
    stage1.save(folder / "stage1")
    stage2.save(folder / "stage2")


def load_cascade(folder: str | Path, *, threshold: float, device=None):
    """(aligner, projector, svm, TwoStageCascade) from a model version's artifact folder."""
    from core.cascade import TwoStageCascade
    from core.hierarchy import HierarchicalClassifier
    from core.joint import JointAligner
    from core.tfidf import TfidfProjector, TfidfSvmScores

    folder = Path(folder)
    stage1 = HierarchicalClassifier.load(folder / "stage1", device=device)
    stage2 = HierarchicalClassifier.load(folder / "stage2", device=device)
    cascade = TwoStageCascade(stage1, stage2, threshold=threshold)
    aligner = JointAligner.load(folder / "joint.pt", device=device)
    return aligner, TfidfProjector.load(folder / "tfidf"), TfidfSvmScores.load(folder / "svm"), cascade


def predict(
    db_url: str, *, force: bool = False, device=None, progress: Progress | None = None, log: Callable[[str], None] = print
) -> int:
    """Predict every product with the active model version and store the predictions; returns how many."""
    from core.features import embed_catalogue
    from db import predictions as preds
    from db.session import get_sessionmaker, transaction

    factory = get_sessionmaker(db_url)
    with factory() as s:
        version = preds.active_model_version(s)
        if version is None:
            raise ValueError("no active model version: run `python -m core train` first")
        version_id, params, artifact = version.id, version.params, version.artifact
        done = preds.prediction_count(s, model_version_id=version_id)
    cat = _load(factory, labelled_only=False)
    if done == len(cat) and params.get("predicted_key") == data_key(cat, params["encoders"]) and not force:
        log(f"model version #{version_id} already predicted all {done} products: nothing to do")
        return 0
    feats = embed_catalogue(cat, device=device, progress=progress)
    aligner, projector, svm, cascade = load_cascade(artifact, threshold=params["threshold"], device=device)
    feats.blocks["joint"] = aligner.joint(feats.blocks["title"], feats.blocks["image"], feats.masks["image"])
    feats.blocks["tfidf"], feats.blocks["svm"] = projector.transform(cat.titles), svm.transform(cat.titles)
    feats.masks["joint"] = feats.masks["tfidf"] = feats.masks["svm"] = np.ones(len(cat), bool)
    from core.classify import FUSION_MODALITIES, inputs

    X, masks = inputs(feats, FUSION_MODALITIES, np.arange(len(cat)))
    result = cascade.predict(X, masks=masks)
    rows = prediction_rows(factory, params["node_ids"], cascade.stage1.tree_, cat.product_ids, result)
    with transaction(factory) as s:
        preds.replace_predictions(s, model_version_id=version_id, rows=rows)
        preds.mark_predicted(s, model_version_id=version_id, key=data_key(cat, params["encoders"]))
    log(f"model version #{version_id}: {len(cat)} products predicted, {(result.stage == 2).mean():.1%} by stage 2")
    return len(cat)


def prediction_rows(factory, node_ids: dict[str, int], tree, product_ids: np.ndarray, result) -> list[dict[str, Any]]:
    """Database rows (one per product and level) of a cascade result.

    Node indices map to the node ids recorded at training time; a node merged or retired since then
    maps to where its products went.
    """
    from db.models import TaxonomyNode
    from db.repo import follow_redirects

    with factory() as s:
        current = {i: follow_redirects(s, s.get(TaxonomyNode, i)).id for i in set(node_ids.values())}
    node_ids = {path: current[i] for path, i in node_ids.items()}
    rows = []
    pred = result.prediction
    for i, path in enumerate(tree.decode(pred.nodes)):
        for level in range(len(path)):
            rows.append(
                {
                    "product_id": int(product_ids[i]),
                    "level": level + 1,
                    "node_id": node_ids[" > ".join(path[: level + 1])],
                    "confidence": float(pred.level_conf[i, level]),
                    "stage": int(result.stage[i]),
                }
            )
    return rows
