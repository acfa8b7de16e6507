"""`python -m core train`: labels and taxonomy from the database -> a fitted `ModelBundle` -> a model version.

Idempotent: with the same labelled products, labels and encoders as the active version, nothing is trained.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import select

from core.classify.bundle import STAGE2, ModelBundle, check_enough, data_key
from core.config import data_dir
from core.data.dataset import Catalogue
from core.embed.choice import EncoderChoice, chosen_encoders
from core.embed.features import encoder_ids
from core.steps.catalogue import load_catalogue
from core.steps.embed import catalogue_features
from db import predictions as preds
from db.models import TaxonomyNode
from db.repo import taxonomy_version
from db.session import get_sessionmaker, transaction

Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]


def load_products(factory, *, labelled_only: bool) -> Catalogue:
    """Every product of the database (or only those labelled at a leaf) with its current effective label.

    `labelled_only` leaves out the products labelled at an inner node (`Catalogue.at_inner_node`: their platform
    category maps onto a common ancestor): they are predicted like unlabelled ones."""
    with factory() as s:
        cat = load_catalogue(s)
    return cat.subset(np.flatnonzero(cat.trainable)) if labelled_only else cat


def fit_bundle(
    factory,
    cat: Catalogue,
    *,
    seed: int = 0,
    device=None,
    progress: Progress | None = None,
    log: Log = print,
    choice: EncoderChoice | None = None,
):
    """Embed `cat` (labelled products) with `choice` (default: the chosen encoders) and fit a bundle on it; returns
    (bundle, feats).

    The manifest gets the database node id of every path the bundle can predict and the taxonomy version as it was
    when the labels were read (renames during training are fine: node ids survive them).
    """
    with factory() as s:
        path_ids = dict(s.execute(select(TaxonomyNode.path, TaxonomyNode.id)).all())
        taxonomy_at_load = taxonomy_version(s) or None
    choice = choice or chosen_encoders()
    log(f"encoders: {choice.describe()}")
    started = time.perf_counter()
    feats = catalogue_features(cat, choice=choice, device=device, progress=progress)
    embed_s = round(time.perf_counter() - started, 1)
    bundle = ModelBundle(seed=seed, device=device).fit(
        cat, feats, encoder_choice={"text": choice.text, "image": choice.image}, progress=progress, log=log
    )
    bundle.manifest.step_s["features"] = embed_s  # the embeddings (cached vectors read, new ones computed)
    bundle.manifest.node_ids = node_ids_of(path_ids, bundle.tree)
    bundle.manifest.taxonomy_version = taxonomy_at_load
    return bundle, feats


def node_ids_of(path_ids: dict[str, int], tree) -> dict[str, int]:
    """Database node id of every path prefix the model can predict (ids survive later renames)."""
    prefixes = {" > ".join(p[: i + 1]) for p in tree.decode(tree.leaf_paths()) for i in range(len(p))}
    return {path: path_ids[path] for path in prefixes}


def save_bundle(bundle: ModelBundle) -> str:
    """Save under data/models/<time>-<data key>; returns the folder."""
    folder = data_dir() / "models" / f"{time.strftime('%Y%m%d-%H%M%S')}-{bundle.manifest.data_key[:8]}"
    return str(bundle.save(folder))


def register(session, bundle: ModelBundle, artifact: str, *, extra_params: dict[str, Any] | None = None):
    """Record a saved bundle as a model version (a candidate until activated)."""
    photos = bool(bundle.manifest.encoder_choice.get("image"))
    return preds.register_model_version(
        session,
        name=f"cascade text-only -> {STAGE2} (+ tfidf-svm)" + ("" if photos else ", titles only"),
        metrics=bundle.manifest.metrics,
        params={**bundle.manifest.params(), **(extra_params or {})},
        artifact=artifact,
        taxonomy_version_id=bundle.manifest.taxonomy_version,
    )


def unchanged(factory, cat: Catalogue, log: Log, *, choice: EncoderChoice | None = None) -> bool:
    """True when the active version was trained on these labelled products, labels and encoders (`choice`, default
    the chosen ones)."""
    with factory() as s:
        active = preds.active_model_version(s)
    if active is None:
        return False
    key = data_key(cat, encoder_ids(cat, **(choice or chosen_encoders()).kwargs()))
    if active.params.get("data_key") == key:
        log(f"model version #{active.id} was trained on these labels and features: nothing to do")
        return True
    return False


def train(
    db_url: str,
    *,
    seed: int = 0,
    force: bool = False,
    activate: bool | None = None,
    device=None,
    progress: Progress | None = None,
    log: Log = print,
    choice: EncoderChoice | None = None,
    extra_params: dict[str, Any] | None = None,
) -> int | None:
    """Train and register a model version; returns its id (None when nothing changed and not `force`).

    Args:
        activate: make it the active model (default: when no model is active yet).
        choice: the encoders to train on (default: the chosen ones, `chosen_encoders`).
        extra_params: added to the version's params (a first start's text-only model is marked so).
    """
    factory = get_sessionmaker(db_url)
    cat = load_products(factory, labelled_only=True)
    check_enough(cat)
    if not force and unchanged(factory, cat, log, choice=choice):
        return None
    bundle, _ = fit_bundle(factory, cat, seed=seed, device=device, progress=progress, log=log, choice=choice)
    artifact = save_bundle(bundle)
    with transaction(factory) as s:
        had_active = preds.active_model_version(s) is not None
        version = register(s, bundle, artifact, extra_params=extra_params)
        if activate or (activate is None and not had_active):
            preds.activate_model_version(s, version_id=version.id, actor="train")
        version_id = version.id
    _log_version(log, version_id, bundle.manifest.metrics, bundle.manifest)
    return version_id


def _log_version(log: Log, version_id: int, metrics: dict[str, Any], manifest) -> None:
    log(
        f"model version #{version_id}: hF1 {metrics['hf1']:.4f} on {manifest.n_test} held-out products, "
        f"threshold {manifest.threshold:.3f}, trained in {manifest.train_s}s"
    )
