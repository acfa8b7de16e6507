"""`python -m core review`: score every labelled product for label issues (`core.review.scores`) and replace the
open review queue in the database; the run record (settings, inputs, stage timings, outputs) is kept in
data/review.run.json."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from core.classify.models import TRAIN_OPTIONS
from core.config import data_dir
from core.embed.choice import EncoderChoice, chosen_encoders
from core.keys import content_key
from core.review.scores import Progress, queue_rows, review_features, score_catalogue
from core.runs import RunRecord
from core.steps.catalogue import load_catalogue
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


def run_review(
    db_url: str,
    *,
    folds: int = 4,
    seed: int = 0,
    choice: EncoderChoice | None = None,
    device=None,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Score every labelled product of the database and replace the open review queue; returns its length.

    The title and photo features come from the encoders of `choice` (default: the recorded choice).
    """
    choice = choice or chosen_encoders()
    record = RunRecord("review", settings={"folds": folds, "seed": seed, "model": TRAIN_OPTIONS, "tfidf_dim": 256})
    factory = get_sessionmaker(db_url)
    with factory() as s:
        cat = load_catalogue(s)
        node_ids = dict(s.execute(select(TaxonomyNode.path, TaxonomyNode.id)).all())
    record.stage("load")
    features = review_features(cat, seed=seed, choice=choice, device=device, progress=progress)
    encoder_ids = features[2]
    record.stage("features")
    rows, scores = score_catalogue(cat, folds=folds, seed=seed, device=device, progress=progress, features=features)
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
        f"features: {choice.describe()}"
    )
    return stored
