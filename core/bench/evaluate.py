"""The model comparison behind `python -m core evaluate`: every model of `core.classify.models` on one split.

`evaluate` fits the learnt feature blocks (joint, tfidf, svm) and every model on the fit rows of the hash
split that model versions use (`core.data.split.fixed_split`: 70 % fit / 10 % calibration / 20 % held out
by a hash of (platform, external id)), so the comparison and a trained version report numbers on the same
products. Each model is scored on two populations of the held-out products (those with a photo, all), next
to a flat TF-IDF + linear SVM baseline, the two stacked models and the two-stage cascade (threshold chosen
on the calibration rows). `end_to_end_speed` times raw product to path with fresh embeddings, using the
encoders the features were embedded with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.classify.bundle import ModelBundle, Plan, plan_for
from core.classify.models import (
    FUSION_MODALITIES,
    MODELS,
    STACKED,
    ModelSpec,
    add_joint,
    add_svm,
    add_tfidf,
    fit_model,
    inputs,
    score,
    stack_model,
)
from core.classify.taxonomy import TaxonomyTree
from core.data.dataset import Catalogue
from core.data.split import Split, fixed_split
from core.embed.encoders import DEFAULT_ENCODERS, get_encoder
from core.embed.features import Features
from core.embed.tfidf import SPECS
from core.keys import content_key

SPLIT_RULE = "hash of (platform, external id)"
BASELINE = "tfidf-svm (baseline)"
CASCADE = "two-stage cascade"
POPULATIONS = {"with_images": lambda has_image: has_image, "all": lambda has_image: np.ones_like(has_image)}


@dataclass
class TfidfSvmBaseline:
    """TF-IDF (word 1-2-grams + char 2-5-grams) on titles + a linear SVM over full paths (flat)."""

    C: float = 1.0
    model_: Any = field(default=None, repr=False)

    def fit(self, titles: list[str], paths: list[tuple[str, ...]]) -> TfidfSvmBaseline:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline, make_union
        from sklearn.svm import LinearSVC

        features = make_union(*(TfidfVectorizer(sublinear_tf=True, **spec) for spec in SPECS.values()))
        self.model_ = make_pipeline(features, LinearSVC(C=self.C)).fit(titles, [" > ".join(p) for p in paths])
        return self

    def predict_paths(self, titles: list[str]) -> list[tuple[str, ...]]:
        return [tuple(p.split(" > ")) for p in self.model_.predict(titles)]


@dataclass
class LearntBlocks:
    """The feature blocks fitted on the fit rows (aligner -> "joint", projector -> "tfidf", svm -> "svm")
    and the seconds each fit took."""

    aligner: Any
    projector: Any
    svm: Any
    seconds: dict[str, float]


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


def population_rows(feats: Features, split: Split, population: str) -> np.ndarray:
    """The held-out rows (`split.test`) of one population ("with_images" or "all")."""
    return split.test[POPULATIONS[population](feats.masks["image"][split.test])]


def evaluate_model(spec: ModelSpec, feats: Features, labels: list, split: Split, tree, *, seed: int, device=None, **options):
    """Train `spec` on split.fit, score it on split.test for each population; returns (rows, model).

    `options` override `core.classify.models.TRAIN_OPTIONS` (e.g. a smaller `hidden` or `epochs`).
    """
    has_image = feats.masks["image"]
    fit_rows = split.fit[has_image[split.fit]] if spec.images_only else split.fit
    model, train_s = _timed(fit_model, spec, feats, labels, fit_rows, tree=tree, seed=seed, device=device, **options)
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
        test = population_rows(feats, split, population)
        X, masks = inputs(feats, model.modalities, test)
        pred, predict_s = _timed(model.predict, X, masks=masks)
        report = score(tree, [labels[i] for i in test], pred.nodes)
        rows.append(_row(name, population, report, train_s=train_s, predict_s=predict_s, n=len(test), **extra))
    return rows


def evaluate_baseline(cat: Catalogue, feats: Features, labels: list, split: Split, tree) -> list[dict]:
    """Rows of the flat TF-IDF + linear SVM baseline (titles only), trained on split.fit, per population."""
    titles = cat.titles
    model, train_s = _timed(TfidfSvmBaseline().fit, [titles[i] for i in split.fit], [labels[i] for i in split.fit])
    rows = []
    for population in POPULATIONS:
        test = population_rows(feats, split, population)
        paths, predict_s = _timed(model.predict_paths, [titles[i] for i in test])
        report = score(tree, [labels[i] for i in test], tree.encode(paths))
        rows.append(_row(BASELINE, population, report, train_s=train_s, predict_s=predict_s, n=len(test)))
    return rows


def evaluate_cascade(bundle: ModelBundle, feats: Features, labels: list, split: Split, tree) -> tuple[list[dict], dict]:
    """The production model (a `ModelBundle` fitted on split.fit, threshold chosen on split.calib) on split.test,
    for both populations: the same fit as `python -m core train`."""
    cascade = bundle.cascade
    rows = []
    for population in POPULATIONS:
        test = population_rows(feats, split, population)
        X, masks = inputs(feats, bundle.manifest.feature_keys, test)
        result, predict_s = _timed(cascade.predict, X, masks=masks)
        report = score(tree, [labels[i] for i in test], result.prediction.nodes)
        extra = {"threshold": bundle.manifest.threshold, "share_stage2": float((result.stage == 2).mean())}
        rows.append(_row(CASCADE, population, report, train_s=bundle.manifest.train_s, predict_s=predict_s, n=len(test), **extra))
    return rows, dict(bundle.threshold_choice_)


def fit_production_bundle(cat: Catalogue, feats: Features, split: Split, *, seed: int, device, encoders: dict) -> tuple:
    """`ModelBundle.fit` on split.fit, on a copy of `feats` (it adds its own "tfidf", "joint" and "svm" blocks);
    returns (bundle, its features)."""
    own = feats.subset(np.arange(len(cat)))
    bundle = ModelBundle(seed=seed, device=device).fit(
        cat, own, encoder_choice={"text": encoders["text"], "image": encoders["image"]}, split=split, log=lambda *_: None
    )
    return bundle, own


def fit_learnt_blocks(cat: Catalogue, feats: Features, split: Split, plan: Plan, *, seed: int) -> LearntBlocks:
    """Fit what the catalogue's modalities allow (`plan`) on split.fit: the joint aligner (title-photo pairs), the
    TF-IDF projection and the TF-IDF SVM (text); adds their blocks to `feats`. A part not fitted is None (0 s)."""
    aligner, joint_s = _timed(add_joint, feats, split.fit, seed=seed) if plan.joint else (None, 0.0)
    projector, tfidf_s = _timed(add_tfidf, feats, cat.titles, split.fit, seed=seed) if plan.text else (None, 0.0)
    svm, svm_s = (
        _timed(add_svm, feats, cat.titles, cat.labels, split.fit, descriptions=cat.descriptions, seed=seed)
        if plan.text
        else (None, 0.0)
    )
    return LearntBlocks(aligner, projector, svm, {"joint": joint_s, "tfidf": tfidf_s, "svm": svm_s})


def runnable_specs(specs, feats: Features, plan: Plan) -> tuple[list, dict[str, str]]:
    """The specs whose input blocks the catalogue has; ({name: why} for the others)."""
    keep, skipped = [], {}
    for spec in specs:
        missing = [m for m in spec.modalities if m not in feats.blocks]
        if spec.images_only and not plan.image:
            missing.append("photos")
        if missing:
            skipped[spec.name] = f"no {', '.join(missing)} in this catalogue"
        else:
            keep.append(spec)
    return keep, skipped


def evaluate_models(
    specs, feats: Features, labels: list, split: Split, tree, *, seed: int, device=None, progress=None, total: int, **options
) -> tuple[list[dict], dict]:
    """`evaluate_model` for each spec in order; returns (rows, {name: fitted model}).

    `progress("evaluate", done, total)` is called after each model.
    """
    rows, models = [], {}
    for done, spec in enumerate(specs, start=1):
        spec_rows, models[spec.name] = evaluate_model(spec, feats, labels, split, tree, seed=seed, device=device, **options)
        rows += spec_rows
        if progress:
            progress("evaluate", done, total)
    return rows, models


def evaluate_stacked(models: dict, svm, feats: Features, labels: list, split: Split, tree, rows: list[dict], *, svm_s: float):
    """Rows of the two stacked models (`STACKED`), weights chosen on split.calib; adds them to `models`.

    Their training time is the base model's (from `rows`) + the SVM's + the weight search's.
    """
    out = []
    for base, name in STACKED.items():
        stacked, stack_s = _timed(stack_model, models[base], svm, feats, labels, split.calib)
        models[name] = stacked
        base_train = next(r["train_s"] for r in rows if r["model"] == base)
        train_s = base_train + svm_s + stack_s
        extra = {"temperature": stacked.temperature, "alpha": stacked.alpha}
        out += score_model(name, stacked, feats, labels, split, tree, train_s=train_s, **extra)
    return out


def speed_encoders(
    feats: Features, *, text_encoder: str = DEFAULT_ENCODERS["text"], image_encoder: str | None = DEFAULT_ENCODERS["image"]
) -> dict[str, str]:
    """{"text": name, "image": name} for `end_to_end_speed`, checked against the encoders `feats` was embedded with.

    Raises:
        ValueError: an encoder's id differs from the one recorded in `feats.encoder_ids` (the models would
            be timed on vectors of another encoder).
    """
    for modality, block, name in (("text", "title", text_encoder), ("image", "image", image_encoder)):
        if name is None:  # `embed --image none`: no photos to time
            continue
        recorded, wanted = feats.encoder_ids.get(block), get_encoder(name).id
        if recorded is not None and recorded != wanted:
            raise ValueError(
                f"the {block!r} features were embedded with {recorded}, but {modality}_encoder={name!r} is {wanted}; "
                f"pass the encoder the features were embedded with"
            )
    return {"text": text_encoder, "image": image_encoder}


def held_out_key(cat: Catalogue, split: Split) -> str:
    """Content key of the held-out products' ids (sorted): equal keys mean the same held-out products."""
    return content_key(sorted(int(pid) for pid in cat.product_ids[split.test]))


def _speed_sample(feats: Features, split: Split, seed: int) -> np.ndarray:
    """Up to 300 held-out products with a photo, seeded, sorted."""
    with_image_test = split.test[feats.masks["image"][split.test]]
    sample = np.random.default_rng(seed).choice(with_image_test, size=min(300, len(with_image_test)), replace=False)
    return np.sort(sample)


def evaluate(
    cat: Catalogue,
    feats: Features,
    *,
    seed: int = 0,
    device=None,
    specs=MODELS,
    progress=None,
    text_encoder: str = DEFAULT_ENCODERS["text"],
    image_encoder: str | None = DEFAULT_ENCODERS["image"],
    train_options: dict | None = None,
) -> dict[str, Any]:
    """The whole comparison on the hash split of model versions; see the module docstring.

    Args:
        cat, feats: labelled products and their features (aligned; "joint", "tfidf" and "svm" are fitted here
            on split.fit).
        seed: the split's seed (`fixed_split(cat, seed=seed)`) and every model's.
        specs: the models to compare (must include "text-only" and "late-fusion", the cascade's stages).
        progress: called as progress(stage, done, total) after each model.
        text_encoder, image_encoder: registry names of the encoders `feats` was embedded with (checked against
            `feats.encoder_ids`), used to time the end-to-end path.
        train_options: overrides of `core.classify.models.TRAIN_OPTIONS` for every model.

    Returns:
        {"rows": [...], "cascade": {...}, "split": sizes, seed and rule, "features": embedding stats, ...}.
    """
    encoders = speed_encoders(feats, text_encoder=text_encoder, image_encoder=image_encoder)
    labels = cat.labels
    split = fixed_split(cat, seed=seed)
    tree = TaxonomyTree.from_paths(labels)
    plan = plan_for(cat, feats, split)
    learnt = fit_learnt_blocks(cat, feats, split, plan, seed=seed)
    specs, skipped = runnable_specs(specs, feats, plan)
    rows = evaluate_baseline(cat, feats, labels, split, tree) if plan.text else []
    total = len(specs) + 2
    spec_rows, models = evaluate_models(
        specs, feats, labels, split, tree, seed=seed, device=device, progress=progress, total=total, **(train_options or {})
    )
    rows += spec_rows
    if plan.text:
        rows += evaluate_stacked(models, learnt.svm, feats, labels, split, tree, rows, svm_s=learnt.seconds["svm"])
    bundle, bundle_feats = fit_production_bundle(cat, feats, split, seed=seed, device=device, encoders=encoders)
    cascade_rows, cascade = evaluate_cascade(bundle, bundle_feats, labels, split, tree)
    rows += cascade_rows
    cascade["skipped_models"] = skipped
    cascade["modalities"] = plan.describe()
    if plan.stage2_inputs:  # with one modality there is nothing to route and no end-to-end comparison to make
        cascade["end_to_end"] = _end_to_end(cat, feats, split, seed, models, learnt, cascade, device, encoders)
    return _finish(rows, cascade, learnt, cat, feats, split, seed, progress, total)


def _end_to_end(cat, feats, split, seed: int, models: dict, learnt: LearntBlocks, cascade: dict, device, encoders) -> dict:
    return end_to_end_speed(
        cat,
        _speed_sample(feats, split, seed),
        models,
        aligner=learnt.aligner,
        projector=learnt.projector,
        svm=learnt.svm,
        threshold=cascade["chosen"]["threshold"],
        device=device,
        text_encoder=encoders["text"],
        image_encoder=encoders["image"],
    )


def _finish(rows, cascade, learnt: LearntBlocks, cat, feats, split, seed: int, progress, total: int) -> dict:
    if progress:
        progress("evaluate", total, total)
    return _result(rows, cascade, learnt, cat, feats, split, seed)


def _result(rows, cascade, learnt: LearntBlocks, cat: Catalogue, feats: Features, split: Split, seed: int) -> dict:
    sizes = {"fit": len(split.fit), "calibration": len(split.calib), "test": len(split.test)}
    return {
        "rows": rows,
        "cascade": cascade,
        "joint_fit_s": round(learnt.seconds["joint"], 2),
        "tfidf_fit_s": round(learnt.seconds["tfidf"], 2),
        "svm_fit_s": round(learnt.seconds["svm"], 2),
        "split": {**sizes, "seed": seed, "rule": SPLIT_RULE, "test_key": held_out_key(cat, split)},
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


def _text_blocks(c: Catalogue, text_enc, projector, svm, device) -> dict[str, np.ndarray]:
    """The text-side blocks of `c`, embedded fresh: title, tfidf, svm (and text when a fusion reads it)."""
    blocks = {
        "title": text_enc.embed(c.titles, device=device),
        "tfidf": projector.transform(c.titles),
        "svm": svm.transform(c.titles, c.descriptions),
    }
    if "text" in FUSION_MODALITIES:
        blocks["text"] = text_enc.embed(c.texts, device=device)
    return blocks


def _full_blocks(c: Catalogue, blocks: dict, image_enc, aligner, device) -> tuple[dict, dict]:
    """`blocks` plus the photo and joint blocks of `c`, embedded fresh; returns (blocks, masks)."""
    image, ok = image_enc.embed_masked([p for p in c.images], device=device)
    blocks.update(image=image, joint=aligner.joint(blocks["title"], image, ok))
    return blocks, {m: (ok if m == "image" else np.ones(len(c), bool)) for m in blocks}


def _predict_with(model, blocks: dict, masks: dict | None = None):
    """`model.predict` on the blocks (and masks) of its own modalities."""
    ms = None if masks is None else {m: masks[m] for m in model.modalities}
    return model.predict({m: blocks[m] for m in model.modalities}, masks=ms)


def end_to_end_speed(
    cat: Catalogue,
    rows: np.ndarray,
    models: dict,
    *,
    aligner,
    projector,
    svm,
    threshold: float,
    device=None,
    text_encoder: str = DEFAULT_ENCODERS["text"],
    image_encoder: str | None = DEFAULT_ENCODERS["image"],
) -> dict:
    """Wall time from raw title/description/photo to a path for `rows`, embeddings computed fresh (no cache).

    Multimodal-for-all embeds every modality for every product; the cascade embeds the photo only for the
    products stage 1 is unsure of. `text_encoder` / `image_encoder` are registry names
    (`core.embed.encoders.ENCODERS`): those the models' features were embedded with.

    Returns:
        {"n", "multimodal_s", "cascade_s", "speedup", "share_stage2", "encoders"}.
    """
    text_enc, image_enc = get_encoder(text_encoder), get_encoder(image_encoder)
    sub = cat.subset(rows)
    stage1, stage2 = models[STACKED["text-only"]], models[STACKED["late-fusion"]]

    started = time.perf_counter()
    blocks, masks = _full_blocks(sub, _text_blocks(sub, text_enc, projector, svm, device), image_enc, aligner, device)
    _predict_with(stage2, blocks, masks)
    multimodal_s = time.perf_counter() - started

    started = time.perf_counter()
    blocks = _text_blocks(sub, text_enc, projector, svm, device)
    first = _predict_with(stage1, blocks)
    routed = np.flatnonzero(first.path_conf < threshold)
    if len(routed):
        part_blocks, part_masks = _full_blocks(
            sub.subset(routed), {m: b[routed] for m, b in blocks.items()}, image_enc, aligner, device
        )
        _predict_with(stage2, part_blocks, part_masks)
    cascade_s = time.perf_counter() - started
    return {
        "n": len(rows),
        "multimodal_s": round(multimodal_s, 2),
        "cascade_s": round(cascade_s, 2),
        "speedup": round(multimodal_s / cascade_s, 2),
        "share_stage2": round(len(routed) / len(rows), 4),
        "encoders": {"text": text_enc.id, "image": image_enc.id},
    }
