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


def fixed_split(cat, *, seed: int = 0, test_size: float = 0.2, calib_size: float = 0.1):
    """Held-out rows chosen by a hash of (platform, external id), not by label: a product stays in the
    same part across retrains however its label changes, so versions are compared on the same products.

    Returns:
        `core.classify.Split` (fit, calib, test row indices).
    """
    from core.classify import Split

    u = np.array(
        [
            int.from_bytes(hashlib.sha256(f"{seed}|{p}|{e}".encode()).digest()[:8], "big") / 2**64
            for p, e in zip(cat.platforms, cat.external_ids)
        ]
    )
    test = np.flatnonzero(u < test_size)
    calib = np.flatnonzero((u >= test_size) & (u < test_size + calib_size))
    return Split(np.flatnonzero(u >= test_size + calib_size), calib, test)


def _cached(kind: str, key: str, fit: Callable[[], Any], load: Callable[[Path], Any], log) -> Any:
    """A label-free fitted part (TF-IDF projection, title-photo aligner) from data/models/cache, or fit and store it."""
    folder = data_dir() / "models" / "cache" / f"{kind}-{key}"
    if (folder / "done").exists():
        log(f"{kind}: reused (fitted on the same products before)")
        return load(folder)
    part = fit()
    folder.mkdir(parents=True, exist_ok=True)
    part.save(folder / kind)
    (folder / "done").write_text("ok")
    return part


def _content_key(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


class _Steps:
    """Progress of the training steps, and their timings for the log."""

    def __init__(self, names: list[str], progress: Progress | None, log):
        self.names, self.progress, self.log, self.done = names, progress, log, 0
        self.started = time.perf_counter()
        self.timings: dict[str, float] = {}

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self.started, 1)
        self.started = now
        self.done += 1
        self.log(f"{name}: {self.timings[name]}s")
        if self.progress:
            self.progress("train", self.done, len(self.names))


TRAIN_STEPS = ["features", "tfidf projection", "title-photo aligner", "svm and stage-1 and stage-2 models", "evaluation"]


def fit_version(factory, cat, *, seed: int = 0, device=None, progress: Progress | None = None, log=print) -> dict[str, Any]:
    """Fit every part of a model version on `cat` (labelled products) and save it under data/models.

    The label-free parts (TF-IDF projection, title-photo aligner) are reused from data/models/cache when
    the fit products are the same; the SVM and the two neural models train side by side in threads.

    Returns:
        {"folder", "metrics", "params", "models": (aligner, projector, svm, stage1, stage2), "feats", "tree",
        "taxonomy_version"}.
    """
    from sqlalchemy import select

    from core.classify import STACKED
    from core.features import embed_catalogue
    from core.hierarchy import TaxonomyTree
    from db.models import TaxonomyNode
    from db.repo import taxonomy_version

    steps = _Steps(TRAIN_STEPS, progress, log)
    with factory() as s:  # the taxonomy as it was when the labels were read (renames during training are fine)
        path_ids = dict(s.execute(select(TaxonomyNode.path, TaxonomyNode.id)).all())
        taxonomy_at_load = taxonomy_version(s) or None
    feats = embed_catalogue(cat, device=device, progress=progress)
    key = data_key(cat, feats.encoder_ids)
    steps("features")
    started = time.perf_counter()
    split = fixed_split(cat, seed=seed)
    tree = TaxonomyTree.from_paths(cat.labels)
    projector, aligner = _label_free_parts(cat, feats, split, seed=seed, device=device, steps=steps, log=log)
    svm, stage1, stage2 = _fit_members(cat, feats, split, tree, seed=seed, device=device)
    steps("svm and stage-1 and stage-2 models")
    metrics, threshold = _metrics(stage1, stage2, feats, cat.labels, split, tree)
    steps("evaluation")
    folder = data_dir() / "models" / f"{time.strftime('%Y%m%d-%H%M%S')}-{key[:8]}"
    _save(folder, aligner=aligner, projector=projector, svm=svm, stage1=stage1, stage2=stage2)
    params = {
        "data_key": key,
        "seed": seed,
        "split": "hash of (platform, external id): 70% fit / 10% calibration / 20% held out",
        "node_ids": _node_ids(path_ids, tree),
        "threshold": threshold,
        "stage1": STACKED["text-only"],
        "stage2": STACKED[STAGE2],
        "stacking": {"stage1": [stage1.temperature, stage1.alpha], "stage2": [stage2.temperature, stage2.alpha]},
        "encoders": feats.encoder_ids,
        "n_fit": len(split.fit),
        "n_test": len(split.test),
        "train_s": round(time.perf_counter() - started, 1),
        "step_s": steps.timings,
    }
    return {
        "folder": folder,
        "metrics": metrics,
        "params": params,
        "models": (aligner, projector, svm, stage1, stage2),
        "feats": feats,
        "tree": tree,
        "taxonomy_version": taxonomy_at_load,
    }


def _label_free_parts(cat, feats, split, *, seed: int, device, steps: _Steps, log):
    """The TF-IDF projection and the title-photo aligner (fitted on split.fit, or reused from the cache);
    adds their blocks "tfidf" and "joint" to `feats`. Returns (projector, aligner)."""
    from core.classify import add_joint, add_tfidf
    from core.joint import JointAligner
    from core.tfidf import TfidfProjector

    fit_titles = [cat.titles[i] for i in split.fit]
    projector = _cached(
        "tfidf",
        _content_key(fit_titles, seed),
        lambda: add_tfidf(feats, cat.titles, split.fit, seed=seed),
        lambda f: TfidfProjector.load(f / "tfidf"),
        log,
    )
    feats.blocks["tfidf"], feats.masks["tfidf"] = projector.transform(cat.titles), np.ones(len(cat), bool)
    steps("tfidf projection")
    with_photo = split.fit[feats.masks["image"][split.fit]]
    aligner = _cached(
        "joint",
        _content_key(
            feats.encoder_ids, feats.blocks["title"][with_photo].tobytes(), feats.blocks["image"][with_photo].tobytes(), seed
        ),
        lambda: add_joint(feats, split.fit, seed=seed),
        lambda f: JointAligner.load(f / "joint", device=device),
        log,
    )
    feats.blocks["joint"] = aligner.joint(feats.blocks["title"], feats.blocks["image"], feats.masks["image"]).astype(np.float32)
    feats.masks["joint"] = np.ones(len(cat), bool)
    steps("title-photo aligner")
    return projector, aligner


def _fit_members(cat, feats, split, tree, *, seed: int, device):
    """The SVM (adds block "svm") and the two neural models, fused with it on split.calib. Returns (svm, stage1, stage2).

    The SVM (one liblinear thread) and the neural models (one torch thread each; initialisation and dropout are
    seeded per model, see core.fusion.seed_dropout) are independent: they train side by side.
    """
    from concurrent.futures import ThreadPoolExecutor

    from core.classify import MODELS, add_svm, fit_model, stack_model

    specs = {spec.name: spec for spec in MODELS}
    with ThreadPoolExecutor(3) as pool:
        svm_job = pool.submit(add_svm, feats, cat.titles, cat.labels, split.fit, descriptions=cat.descriptions, seed=seed)
        jobs = [
            pool.submit(fit_model, specs[name], feats, cat.labels, split.fit, tree=tree, seed=seed, device=device)
            for name in ("text-only", STAGE2)
        ]
        svm = svm_job.result()
        neural1, neural2 = (job.result() for job in jobs)
    return (
        svm,
        stack_model(neural1, svm, feats, cat.labels, split.calib),
        stack_model(neural2, svm, feats, cat.labels, split.calib),
    )


def _register(session, fitted: dict[str, Any]):
    """Record a fitted version (a candidate until activated)."""
    from db import predictions as preds

    return preds.register_model_version(
        session,
        name=f"cascade text-only -> {STAGE2} (+ tfidf-svm)",
        metrics=fitted["metrics"],
        params=fitted["params"],
        artifact=str(fitted["folder"]),
        taxonomy_version_id=fitted["taxonomy_version"],
    )


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
    from core.features import encoder_ids
    from db import predictions as preds
    from db.session import get_sessionmaker, transaction

    factory = get_sessionmaker(db_url)
    cat = _load(factory, labelled_only=True)
    if len(cat) < 10:
        raise ValueError(f"only {len(cat)} labelled products: ingest a catalogue first")
    with factory() as s:
        active = preds.active_model_version(s)
    if active is not None and not force:
        key = data_key(cat, encoder_ids(cat))
        if active.params.get("data_key") == key:
            log(f"model version #{active.id} was trained on these labels and features: nothing to do")
            return None
    fitted = fit_version(factory, cat, seed=seed, device=device, progress=progress, log=log)
    metrics, params = fitted["metrics"], fitted["params"]
    with transaction(factory) as s:
        version = _register(s, fitted)
        if activate or (activate is None and active is None):
            preds.activate_model_version(s, version_id=version.id, actor="train")
        version_id = version.id
    log(
        f"model version #{version_id}: hF1 {metrics['hf1']:.4f} on {params['n_test']} held-out products, "
        f"threshold {params['threshold']:.3f}, trained in {params['train_s']}s"
    )
    return version_id


def retrain(
    db_url: str,
    *,
    seed: int = 0,
    actor: str = "retrain",
    device=None,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Train on the database's current taxonomy and labels, predict every product, then in ONE transaction
    register the version, store its predictions and make it active. Until that commit the previous version
    stays active with its predictions, so a failed or killed retrain changes nothing.

    Returns:
        the new version's id.
    """
    from core.cascade import TwoStageCascade
    from core.classify import CASCADE_INPUTS, inputs
    from db import predictions as preds
    from db.session import get_sessionmaker, transaction

    started = time.perf_counter()
    factory = get_sessionmaker(db_url)
    everyone = _load(factory, labelled_only=False)
    labelled = np.flatnonzero(everyone.labelled)
    if len(labelled) < 10:
        raise ValueError(f"only {len(labelled)} labelled products: ingest a catalogue first")
    fitted = fit_version(factory, everyone.subset(labelled), seed=seed, device=device, progress=progress, log=log)
    aligner, projector, svm, stage1, stage2 = fitted["models"]
    cascade = TwoStageCascade(stage1, stage2, threshold=fitted["params"]["threshold"])
    reuse = fitted["feats"] if len(labelled) == len(everyone) else None
    feats = _features_for(everyone, reuse, aligner, projector, svm, device=device, progress=progress)
    if progress:
        progress("predict", 0, 2)
    X, masks = inputs(feats, CASCADE_INPUTS, np.arange(len(everyone)))
    result = cascade.predict(X, masks=masks)
    rows = prediction_rows(factory, fitted["params"]["node_ids"], stage1.tree_, everyone.product_ids, result)
    log(f"predicted {len(everyone)} products ({(result.stage == 2).mean():.1%} by stage 2); storing them")
    if progress:
        progress("predict", 1, 2)
    params = fitted["params"]
    with transaction(factory) as s:
        version = _register(s, fitted)
        preds.replace_predictions(s, model_version_id=version.id, rows=rows)
        preds.mark_predicted(s, model_version_id=version.id, key=data_key(everyone, params["encoders"]))
        preds.activate_model_version(s, version_id=version.id, actor=actor)
        version_id = version.id
    log(
        f"model version #{version_id} active: hF1 {fitted['metrics']['hf1']:.4f} on {params['n_test']} held-out products; "
        f"{len(everyone)} products predicted; retrain took {time.perf_counter() - started:.0f}s"
    )
    return version_id


def _features_for(cat, feats, aligner, projector, svm, *, device=None, progress=None):
    """Every modality block of `cat` for prediction (`feats`: its embeddings when already loaded, else None)."""
    from core.features import embed_catalogue

    if feats is None:
        feats = embed_catalogue(cat, device=device, progress=progress)
        feats.blocks["joint"] = aligner.joint(feats.blocks["title"], feats.blocks["image"], feats.masks["image"])
        feats.blocks["tfidf"] = projector.transform(cat.titles)
    if "svm" not in feats.blocks:  # fit_version's features hold the SVM's scores of every product already
        feats.blocks["svm"] = svm.transform(cat.titles, cat.descriptions)
    for m in ("joint", "tfidf", "svm"):
        feats.masks[m] = np.ones(len(cat), bool)
    return feats


def _metrics(stage1, stage2, feats, labels, split, tree) -> tuple[dict[str, Any], float]:
    from core.cascade import TwoStageCascade, choose_threshold, threshold_sweep
    from core.classify import CASCADE_INPUTS, inputs, score

    X, masks = inputs(feats, CASCADE_INPUTS, split.calib)
    chosen = choose_threshold(threshold_sweep(stage1, stage2, X, tree.encode([labels[i] for i in split.calib]), masks=masks))
    X, masks = inputs(feats, CASCADE_INPUTS, split.test)
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


def _node_ids(path_ids: dict[str, int], tree) -> dict[str, int]:
    """Database node id of every path prefix the model can predict (ids survive later renames)."""
    prefixes = {" > ".join(p[: i + 1]) for p in tree.decode(tree.leaf_paths()) for i in range(len(p))}
    return {path: path_ids[path] for path in prefixes}


def _per_leaf_f1(tree, true_paths: list, pred_nodes: np.ndarray) -> dict[str, dict[str, float]]:
    """F1 and support of each predicted or true full path on the held-out rows."""
    from core.model_compare import node_f1

    pairs = [(" > ".join(t), " > ".join(p)) for t, p in zip(true_paths, tree.decode(pred_nodes))]
    return {path: {"f1": r["f1"], "support": r["support"]} for path, r in node_f1(pairs).items()}


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
    from core.joint import JointAligner
    from core.stacking import StackedFusion
    from core.tfidf import TfidfProjector, TfidfSvmScores

    folder = Path(folder)
    stage1 = StackedFusion.load(folder / "stage1", device=device)
    stage2 = StackedFusion.load(folder / "stage2", device=device)
    cascade = TwoStageCascade(stage1, stage2, threshold=threshold)
    aligner = JointAligner.load(folder / "joint.pt", device=device)
    return aligner, TfidfProjector.load(folder / "tfidf"), TfidfSvmScores.load(folder / "svm"), cascade


def predict(
    db_url: str, *, force: bool = False, device=None, progress: Progress | None = None, log: Callable[[str], None] = print
) -> int:
    """Predict every product with the active model version and store the predictions; returns how many."""
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
    from core.classify import CASCADE_INPUTS, inputs

    aligner, projector, svm, cascade = load_cascade(artifact, threshold=params["threshold"], device=device)
    feats = _features_for(cat, None, aligner, projector, svm, device=device, progress=progress)

    X, masks = inputs(feats, CASCADE_INPUTS, np.arange(len(cat)))
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
