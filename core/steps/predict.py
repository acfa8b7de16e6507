"""`python -m core predict`: the active model version's cascade over every product -> predictions in the database.

Idempotent: when the active version has predicted exactly these products with these encoders, nothing is done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from core.classify.bundle import ModelBundle, data_key
from core.classify.cascade import CascadeResult
from core.embed.choice import EncoderChoice, chosen_encoders
from core.steps.embed import catalogue_features
from core.steps.train import load_products
from db import predictions as preds
from db.models import TaxonomyNode
from db.repo import follow_redirects
from db.session import get_sessionmaker, transaction

Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]


def bundle_choice(bundle: ModelBundle, log: Log) -> EncoderChoice:
    """The encoders the bundle was trained on: new products are embedded with them, whatever is chosen now."""
    trained = EncoderChoice(**bundle.manifest.encoder_choice)
    if trained != chosen_encoders():
        log(f"this model version was trained with {trained.describe()}; predicting with those (train again to switch)")
    return trained


def predict(
    db_url: str, *, force: bool = False, device=None, progress: Progress | None = None, log: Log = print, engine=None
) -> int:
    """Predict every product with the active model version and store the predictions; returns how many.

    `engine`: None (here) or a `core.engine` engine that embeds the missing vectors and runs the cascade in batches
    (`engine.predict`); the predictions are stored here either way."""
    factory = get_sessionmaker(db_url)
    with factory() as s:
        version = preds.active_model_version(s)
        if version is None:
            raise ValueError("no active model version: run `python -m core train` first")
        version_id, params, artifact = version.id, version.params, version.artifact
        done = preds.prediction_count(s, model_version_id=version_id)
    cat = load_products(factory, labelled_only=False)
    if done == len(cat) and params.get("predicted_key") == data_key(cat, params["encoders"]) and not force:
        log(f"model version #{version_id} already predicted all {done} products: nothing to do")
        return 0
    bundle = ModelBundle.load(artifact, device=device if engine is None else "cpu", params=params)  # Ray: CPU actors
    reads_text = bool(bundle.manifest.modalities.get("text", True))  # then every product gets a title block
    feats = catalogue_features(
        cat, choice=bundle_choice(bundle, log), titles=reads_text or None, device=device, progress=progress, engine=engine
    )
    result = bundle.predict(cat, feats) if engine is None else engine.predict(bundle, cat, feats)
    rows = prediction_rows(factory, bundle.manifest.node_ids, bundle.tree, cat.product_ids, result)
    with transaction(factory) as s:
        preds.replace_predictions(s, model_version_id=version_id, rows=rows)
        preds.mark_predicted(s, model_version_id=version_id, key=data_key(cat, params["encoders"]))
    log(f"model version #{version_id}: {len(cat)} products predicted, {(result.stage == 2).mean():.1%} by stage 2")
    return len(cat)


def prediction_rows(
    factory, node_ids: dict[str, int], tree, product_ids: np.ndarray, result: CascadeResult
) -> list[dict[str, Any]]:
    """Database rows (one per product and level) of a cascade result.

    Node indices map to the node ids recorded at training time; a node merged or retired since then
    maps to where its products went.
    """
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
