"""`python -m core review`: score every labelled product for label issues (`core.review.scores`) and replace the
open review queue in the database; the run record (settings, inputs, stage timings, outputs) is kept in
data/review.run.json."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from core.classify.bundle import ModelBundle
from core.classify.models import TRAIN_OPTIONS
from core.config import data_dir
from core.embed.choice import EncoderChoice, chosen_encoders
from core.keys import content_key
from core.review.scores import Progress, queue_rows, review_features, score_catalogue
from core.runs import RunRecord
from core.steps.catalogue import load_catalogue
from db import predictions as preds
from db import review
from db.models import TaxonomyNode
from db.session import get_sessionmaker, transaction

RUN_FILE = "review.run.json"


def review_run_file() -> Path:
    """Where the last review run's record is written."""
    return data_dir() / RUN_FILE


def last_review_run() -> RunRecord | None:
    """The record of the last review run, or None."""
    return RunRecord.read(review_run_file())


def review_inputs(factory, *, choice: EncoderChoice | None = None, device=None) -> tuple[EncoderChoice, object, str]:
    """(encoder choice, TF-IDF projector or None, what they come from) for scoring labels.

    With an active model version, the review model reads the same features as that version: its encoders (from the
    manifest) and its fitted TF-IDF projection (from the bundle). Without one, the recorded encoder choice and a
    projection fitted on every title. An explicit `choice` overrides the encoders.
    """
    with factory() as s:
        version = preds.active_model_version(s)
        found = (version.id, version.artifact, version.params) if version is not None else None
    if found is None:
        choice = choice or chosen_encoders()
        return choice, None, f"{choice.describe()}; TF-IDF projection fitted on every title (no active model version)"
    version_id, artifact, params = found
    bundle = ModelBundle.load(artifact, device=device, params=params)
    trained = EncoderChoice(**bundle.manifest.encoder_choice)
    choice = choice or trained
    projector = bundle.members.get("projector") if choice == trained else None
    source = f"model version #{version_id}'s " + ("TF-IDF projection; " if projector else "encoders; ") + choice.describe()
    return choice, projector, source


def run_review(
    db_url: str,
    *,
    folds: int = 4,
    seed: int = 0,
    choice: EncoderChoice | None = None,
    device=None,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
    engine=None,
) -> int:
    """Score every labelled product of the database and replace the open review queue; returns its length.

    The title and photo features come from the encoders of `choice` (default: the recorded choice). `engine`: None
    (here) or a `core.engine` engine that embeds the missing vectors and fits the out-of-fold models.
    """
    factory = get_sessionmaker(db_url)
    choice, projector, source = review_inputs(factory, choice=choice, device=device)
    settings = {"folds": folds, "seed": seed, "model": TRAIN_OPTIONS, "tfidf_dim": 256, "features": source}
    record = RunRecord("review", settings=settings)
    with factory() as s:
        cat = load_catalogue(s)
        node_ids = dict(s.execute(select(TaxonomyNode.path, TaxonomyNode.id)).all())
    record.stage("load")
    features = review_features(
        cat, seed=seed, choice=choice, projector=projector, device=device, progress=progress, engine=engine
    )
    encoder_ids = features[2]
    record.stage("features")
    rows, scores = score_catalogue(
        cat, folds=folds, seed=seed, device=device, progress=progress, features=features, engine=engine
    )
    items = queue_rows(cat, rows, scores, node_ids)
    record.stage("scores")
    key = content_key(cat.product_ids, cat.labels, encoder_ids, record.settings)
    with transaction(factory) as s:
        stored = review.replace_open_items(s, run_key=key, rows=items)
    record.stage("store")
    record.inputs = {"products": len(cat), "labelled": len(rows), "encoders": encoder_ids, "key": key}
    record.outputs = {"queued": len(items), "flagged": int(scores.flagged.sum()), "stored": stored}
    record.write(review_run_file())
    log(
        f"scored {len(rows)} labelled products in {record.timings['features'] + record.timings['scores']:.0f}s: "
        f"{len(items)} to review "
        f"({int(scores.flagged.sum())} flagged by confident learning), {stored} stored as open; "
        f"features: {source}"
    )
    return stored
