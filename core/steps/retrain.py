"""`python -m core retrain` (and the Retrain button's job): train on today's taxonomy and labels, predict every
product, and activate the new version in one transaction."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from core.classify.bundle import check_enough, data_key
from core.steps.embed import catalogue_features
from core.steps.predict import prediction_rows
from core.steps.train import fit_bundle, load_products, register, save_bundle
from db import predictions as preds
from db.session import get_sessionmaker, transaction

Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]


def retrain(
    db_url: str,
    *,
    seed: int = 0,
    actor: str = "retrain",
    device=None,
    progress: Progress | None = None,
    log: Log = print,
) -> int:
    """Train on the database's current taxonomy and labels, predict every product, then in ONE transaction
    register the version, store its predictions and make it active. Until that commit the previous version
    stays active with its predictions, so a failed or killed retrain changes nothing.

    Returns:
        the new version's id.
    """
    started = time.perf_counter()
    factory = get_sessionmaker(db_url)
    everyone = load_products(factory, labelled_only=False)
    labelled = np.flatnonzero(everyone.trainable)
    check_enough(everyone.subset(labelled))
    bundle, fit_feats = fit_bundle(factory, everyone.subset(labelled), seed=seed, device=device, progress=progress, log=log)
    feats = (
        fit_feats
        if len(labelled) == len(everyone)
        else catalogue_features(
            everyone, titles=bool(bundle.manifest.modalities["text"]) or None, device=device, progress=progress
        )
    )
    if progress:
        progress("predict", 0, 2)
    result = bundle.predict(everyone, feats)
    rows = prediction_rows(factory, bundle.manifest.node_ids, bundle.tree, everyone.product_ids, result)
    log(f"predicted {len(everyone)} products ({(result.stage == 2).mean():.1%} by stage 2); storing them")
    if progress:
        progress("predict", 1, 2)
    artifact = save_bundle(bundle)
    with transaction(factory) as s:
        version = register(s, bundle, artifact)
        preds.replace_predictions(s, model_version_id=version.id, rows=rows)
        preds.mark_predicted(s, model_version_id=version.id, key=data_key(everyone, bundle.manifest.encoders))
        preds.activate_model_version(s, version_id=version.id, actor=actor)
        version_id = version.id
    log(
        f"model version #{version_id} active: hF1 {bundle.manifest.metrics['hf1']:.4f} on {bundle.manifest.n_test} "
        f"held-out products; {len(everyone)} products predicted; retrain took {time.perf_counter() - started:.0f}s"
    )
    return version_id
