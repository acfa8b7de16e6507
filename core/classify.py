"""Train, evaluate and apply the hierarchical classifiers on a catalogue's features.

`ModelSpec`s name the models of the comparison (the TF-IDF + linear SVM baseline, single-modality
models, three fusions, the two-stage cascade); `evaluate` trains each on one seeded stratified split and
scores it on two populations (products with a photo, all products) in the same run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.dataset import Catalogue, stratified_split
from core.features import Features

TEXT_MODALITIES = ("title", "tfidf")
FUSION_MODALITIES = ("title", "tfidf", "image", "joint")
CASCADE_INPUTS = (*FUSION_MODALITIES, "svm")  # the stacked stages also read the SVM's path scores
STACKED = {"text-only": "text-only + tfidf-svm (stacked)", "late-fusion": "late-fusion + tfidf-svm (stacked)"}


@dataclass(frozen=True)
class ModelSpec:
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


@dataclass
class Split:
    """Row indices: `fit` trains models, `calib` picks the cascade threshold, `test` scores everything."""

    fit: np.ndarray
    calib: np.ndarray
    test: np.ndarray


def make_split(labels: list[tuple[str, ...]], *, seed: int = 0, test_size: float = 0.2, calib_size: float = 0.1) -> Split:
    train, test = stratified_split(labels, test_size=test_size, seed=seed)
    fit_local, calib_local = stratified_split([labels[i] for i in train], test_size=calib_size, seed=seed + 1)
    return Split(train[fit_local], train[calib_local], test)


def add_joint(feats: Features, rows_for_fit: np.ndarray, *, dim: int = 256, seed: int = 0, epochs: int = 30):
    """Fit the contrastive title-image aligner on `rows_for_fit` that have a photo; add block "joint" for all rows.

    Returns:
        the fitted `JointAligner`.
    """
    from core.joint import JointAligner

    rows = rows_for_fit[feats.masks["image"][rows_for_fit]]
    aligner = JointAligner(dim=dim, epochs=epochs, seed=seed).fit(feats.blocks["title"][rows], feats.blocks["image"][rows])
    feats.blocks["joint"] = aligner.joint(feats.blocks["title"], feats.blocks["image"], feats.masks["image"]).astype(np.float32)
    feats.masks["joint"] = np.ones(len(feats.product_ids), bool)
    return aligner


def add_tfidf(feats: Features, titles: list[str], rows_for_fit: np.ndarray, *, dim: int = 256, seed: int = 0):
    """Fit the TF-IDF projection on the titles of `rows_for_fit`; add block "tfidf" for all rows.

    Returns:
        the fitted `TfidfProjector`.
    """
    from core.tfidf import TfidfProjector

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
    from core.tfidf import TfidfSvmScores

    pick = lambda xs: None if xs is None else [xs[i] for i in rows_for_fit]  # noqa: E731
    svm = TfidfSvmScores(seed=seed, folds=0).fit(
        pick(titles), pick([" > ".join(p) for p in labels]), descriptions=pick(descriptions)
    )
    feats.blocks["svm"], feats.masks["svm"] = svm.transform(titles, descriptions), np.ones(len(titles), bool)
    return svm


def inputs(feats: Features, modalities, rows: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    return (
        {m: feats.blocks[m][rows] for m in modalities},
        {m: feats.masks.get(m, np.ones(len(feats.product_ids), bool))[rows] for m in modalities},
    )


def fit_model(spec: ModelSpec, feats: Features, labels: list, rows: np.ndarray, *, tree, seed: int = 0, device=None, **options):
    """Train one hierarchical classifier of `spec` on `rows`."""
    from core.hierarchy import HierarchicalClassifier

    X, masks = inputs(feats, spec.modalities, rows)
    clf = HierarchicalClassifier(
        fusion=spec.fusion, modalities=spec.modalities, seed=seed, device=device, tree=tree, **{**TRAIN_OPTIONS, **options}
    )
    return clf.fit(X, [labels[i] for i in rows], masks=masks)


def stack_model(model, svm, feats: Features, labels: list, calib_rows: np.ndarray):
    """Late fusion of a fitted neural model with the SVM at the path level, weights chosen on `calib_rows`."""
    from core.stacking import StackedFusion

    stacked = StackedFusion(model, svm.classes_)
    X, masks = inputs(feats, stacked.modalities, calib_rows)
    return stacked.fit(X, [labels[i] for i in calib_rows], masks=masks)


# ---------------------------------------------------------------- baseline


@dataclass
class TfidfSvmBaseline:
    """TF-IDF (word 1-2-grams + char 2-5-grams) on titles + a linear SVM over full paths (flat)."""

    C: float = 1.0
    model_: Any = field(default=None, repr=False)

    def fit(self, titles: list[str], paths: list[tuple[str, ...]]) -> TfidfSvmBaseline:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline, make_union
        from sklearn.svm import LinearSVC

        from core.tfidf import SPECS

        features = make_union(*(TfidfVectorizer(sublinear_tf=True, **spec) for spec in SPECS.values()))
        self.model_ = make_pipeline(features, LinearSVC(C=self.C)).fit(titles, [" > ".join(p) for p in paths])
        return self

    def predict_paths(self, titles: list[str]) -> list[tuple[str, ...]]:
        return [tuple(p.split(" > ")) for p in self.model_.predict(titles)]


# ---------------------------------------------------------------- scoring


def score(tree, true_paths: list, pred_nodes: np.ndarray) -> dict[str, Any]:
    """Hierarchical P/R/F1, per-level accuracy and macro-F1, and path validity of node-index predictions."""
    from core.metrics import hierarchical_report

    return hierarchical_report(tree.encode(true_paths), pred_nodes, tree=tree)


# ---------------------------------------------------------------- the comparison


def _timed(fn, *args, **kwargs):
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - started


def _row(model: str, population: str, report: dict, *, train_s: float, predict_s: float, n: int, **extra) -> dict:
    return {
        "model": model,
        "population": population,
        "hf1": report["hF1"],
        "hp": report["hP"],
        "hr": report["hR"],
        "acc": report["level_accuracy"],
        "macro_f1": report["level_macro_f1"],
        "path_validity": report.get("path_validity", 1.0),
        "train_s": round(train_s, 2),
        "predict_items_per_s": round(n / predict_s, 1) if predict_s > 0 else None,
        "n_test": n,
        **extra,
    }


POPULATIONS = {"with_images": lambda has_image: has_image, "all": lambda has_image: np.ones_like(has_image)}


def evaluate_model(spec: ModelSpec, feats: Features, labels: list, split: Split, tree, *, seed: int, device=None):
    """Train `spec` on split.fit, score it on split.test for each population; returns (rows, model)."""
    has_image = feats.masks["image"]
    fit_rows = split.fit[has_image[split.fit]] if spec.images_only else split.fit
    model, train_s = _timed(fit_model, spec, feats, labels, fit_rows, tree=tree, seed=seed, device=device)
    # an image model has nothing to read for products without a photo
    populations = ("with_images",) if spec.images_only else tuple(POPULATIONS)
    return score_model(spec.name, model, feats, labels, split, tree, train_s=train_s, populations=populations), model


def score_model(
    name: str,
    model,
    feats: Features,
    labels: list,
    split: Split,
    tree,
    *,
    train_s: float,
    populations=tuple(POPULATIONS),
    **extra,
) -> list[dict]:
    """Rows of a fitted model on split.test, one per population."""
    rows = []
    for population in populations:
        select = POPULATIONS[population]
        test = split.test[select(feats.masks["image"][split.test])]
        X, masks = inputs(feats, model.modalities, test)
        pred, predict_s = _timed(model.predict, X, masks=masks)
        report = score(tree, [labels[i] for i in test], pred.nodes)
        rows.append(_row(name, population, report, train_s=train_s, predict_s=predict_s, n=len(test), **extra))
    return rows


def evaluate_baseline(cat: Catalogue, feats: Features, labels: list, split: Split, tree) -> list[dict]:
    titles = cat.titles
    model, train_s = _timed(TfidfSvmBaseline().fit, [titles[i] for i in split.fit], [labels[i] for i in split.fit])
    rows = []
    for population, select in POPULATIONS.items():
        test = split.test[select(feats.masks["image"][split.test])]
        paths, predict_s = _timed(model.predict_paths, [titles[i] for i in test])
        report = score(tree, [labels[i] for i in test], tree.encode(paths))
        rows.append(_row("tfidf-svm (baseline)", population, report, train_s=train_s, predict_s=predict_s, n=len(test)))
    return rows


def evaluate_cascade(
    stage1, stage2, feats: Features, labels: list, split: Split, tree, *, train_s: float
) -> tuple[list[dict], dict]:
    """Choose the threshold on split.calib, then score the cascade on split.test (both populations)."""
    from core.cascade import TwoStageCascade, choose_threshold, threshold_sweep

    modalities = sorted(set(stage1.modalities) | set(stage2.modalities))
    X, masks = inputs(feats, modalities, split.calib)
    sweep = threshold_sweep(stage1, stage2, X, tree.encode([labels[i] for i in split.calib]), masks=masks)
    chosen = choose_threshold(sweep)
    cascade = TwoStageCascade(stage1, stage2, threshold=chosen["threshold"])
    rows = []
    for population, select in POPULATIONS.items():
        test = split.test[select(feats.masks["image"][split.test])]
        X, masks = inputs(feats, modalities, test)
        result, predict_s = _timed(cascade.predict, X, masks=masks)
        report = score(tree, [labels[i] for i in test], result.prediction.nodes)
        share = float((result.stage == 2).mean())
        rows.append(
            _row(
                "two-stage cascade",
                population,
                report,
                train_s=train_s,
                predict_s=predict_s,
                n=len(test),
                threshold=chosen["threshold"],
                share_stage2=share,
            )
        )
    return rows, {"sweep_on_calibration": sweep, "chosen": chosen}


def evaluate(cat: Catalogue, feats: Features, *, seed: int = 0, device=None, specs=MODELS, progress=None) -> dict[str, Any]:
    """The whole comparison on one seeded stratified split; see the module docstring.

    Args:
        cat, feats: labelled products and their features (aligned; "joint" is fitted here on split.fit).
        progress: called as progress(stage, done, total) after each model.

    Returns:
        {"rows": [...], "cascade": {...}, "split": sizes, "features": embedding stats}.
    """
    from core.hierarchy import TaxonomyTree

    labels = cat.labels
    split = make_split(labels, seed=seed)
    tree = TaxonomyTree.from_paths(labels)
    aligner, joint_s = _timed(add_joint, feats, split.fit, seed=seed)
    projector, tfidf_s = _timed(add_tfidf, feats, cat.titles, split.fit, seed=seed)
    svm, svm_s = _timed(add_svm, feats, cat.titles, labels, split.fit, descriptions=cat.descriptions, seed=seed)
    rows = evaluate_baseline(cat, feats, labels, split, tree)
    models, total = {}, len(specs) + 2
    for done, spec in enumerate(specs, start=1):
        spec_rows, models[spec.name] = evaluate_model(spec, feats, labels, split, tree, seed=seed, device=device)
        rows += spec_rows
        if progress:
            progress("evaluate", done, total)
    for base, name in STACKED.items():
        stacked, stack_s = _timed(stack_model, models[base], svm, feats, labels, split.calib)
        models[name] = stacked
        base_train = next(r["train_s"] for r in rows if r["model"] == base)
        rows += score_model(
            name,
            stacked,
            feats,
            labels,
            split,
            tree,
            train_s=base_train + svm_s + stack_s,
            temperature=stacked.temperature,
            alpha=stacked.alpha,
        )
    train_s = sum(r["train_s"] for r in rows if r["model"] in STACKED.values() and r["population"] == "all") / 2
    cascade_rows, cascade = evaluate_cascade(
        models[STACKED["text-only"]], models[STACKED["late-fusion"]], feats, labels, split, tree, train_s=train_s
    )
    rows += cascade_rows
    with_image_test = split.test[feats.masks["image"][split.test]]
    sample = np.random.default_rng(seed).choice(with_image_test, size=min(300, len(with_image_test)), replace=False)
    cascade["end_to_end"] = end_to_end_speed(
        cat,
        np.sort(sample),
        models,
        aligner=aligner,
        projector=projector,
        svm=svm,
        threshold=cascade["chosen"]["threshold"],
        device=device,
    )
    if progress:
        progress("evaluate", total, total)
    return {
        "rows": rows,
        "cascade": cascade,
        "joint_fit_s": round(joint_s, 2),
        "tfidf_fit_s": round(tfidf_s, 2),
        "svm_fit_s": round(svm_s, 2),
        "split": {"fit": len(split.fit), "calibration": len(split.calib), "test": len(split.test), "seed": seed},
        "features": {"encoders": feats.encoder_ids, "stats": feats.stats},
    }


def markdown_table(rows: list[dict]) -> str:
    """The comparison as a Markdown table."""
    head = "| model | population | hF1 | acc L1/L2/L3 | macro-F1 L1/L2/L3 | valid | train s | predict items/s | n test |"
    lines = [head, "|" + "---|" * 9]
    fmt = lambda xs: " / ".join(f"{x:.4f}" for x in xs)  # noqa: E731
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['population']} | {r['hf1']:.4f} | {fmt(r['acc'])} | {fmt(r['macro_f1'])} | "
            f"{r['path_validity']:.0%} | {r['train_s']} | {r['predict_items_per_s']} | {r['n_test']} |"
        )
    return "\n".join(lines)


def end_to_end_speed(
    cat: Catalogue, rows: np.ndarray, models: dict, *, aligner, projector, svm, threshold: float, device=None
) -> dict:
    """Wall time from raw title/description/photo to a path for `rows`, embeddings computed fresh (no cache).

    Multimodal-for-all embeds every modality for every product; the cascade embeds the photo only for the
    products stage 1 is unsure of.

    Returns:
        {"n", "multimodal_s", "cascade_s", "speedup", "share_stage2"}.
    """
    from core.encoders import get_encoder

    text_enc, image_enc = get_encoder("minilm"), get_encoder("efficientnet-lite0")
    sub = cat.subset(rows)

    def text_blocks(c):
        blocks = {
            "title": text_enc.embed(c.titles, device=device),
            "tfidf": projector.transform(c.titles),
            "svm": svm.transform(c.titles, c.descriptions),
        }
        if "text" in FUSION_MODALITIES:
            blocks["text"] = text_enc.embed(c.texts, device=device)
        return blocks

    def full_blocks(c, blocks):
        image, ok = image_enc.embed_masked([p for p in c.images], device=device)
        blocks.update(image=image, joint=aligner.joint(blocks["title"], image, ok))
        return blocks, {m: (ok if m == "image" else np.ones(len(c), bool)) for m in blocks}

    started = time.perf_counter()
    blocks, masks = full_blocks(sub, text_blocks(sub))
    stage1, stage2 = models[STACKED["text-only"]], models[STACKED["late-fusion"]]
    stage2.predict({m: blocks[m] for m in stage2.modalities}, masks={m: masks[m] for m in stage2.modalities})
    multimodal_s = time.perf_counter() - started

    started = time.perf_counter()
    blocks = text_blocks(sub)
    first = stage1.predict({m: blocks[m] for m in stage1.modalities})
    routed = np.flatnonzero(first.path_conf < threshold)
    if len(routed):
        part = sub.subset(routed)
        rb, rm = full_blocks(part, {m: b[routed] for m, b in blocks.items()})
        stage2.predict({m: rb[m] for m in stage2.modalities}, masks={m: rm[m] for m in stage2.modalities})
    cascade_s = time.perf_counter() - started
    return {
        "n": len(rows),
        "multimodal_s": round(multimodal_s, 2),
        "cascade_s": round(cascade_s, 2),
        "speedup": round(multimodal_s / cascade_s, 2),
        "share_stage2": round(len(routed) / len(rows), 4),
    }
