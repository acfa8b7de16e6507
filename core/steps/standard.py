"""`python -m core taxonomy import-google|export-feed` and `mapping suggest --target google`: the Google Product
Taxonomy as a standard target; the master taxonomy mapped onto it with the category-mapping machinery
(`core.mapping.suggest`); a shopping-feed file for every product.

Signals from each master node (rows) to each standard category (columns): the similarity of their names and paths
(text encoder), and the similarity of the mean text embedding of the node's labelled products to the standard
category's path. A standard has no products, so there is no vote.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from sqlalchemy import select

from core.config import database_url
from core.data.export import safe_cell
from core.data.google_taxonomy import PLATFORM, read_google_taxonomy
from core.embed.cache import cached_embed
from core.embed.choice import chosen_encoders
from core.embed.encoders import get_encoder
from core.mapping.suggest import NONE, Signals, Weights, cosine, suggest
from core.steps.mapping import SAMPLE, centroids, name_signal, node_members, product_inputs, subtree_members
from db import standards
from db.models import PATH_SEP, TaxonomyNode
from db.session import get_sessionmaker, transaction

Log = Callable[[str], None]
# Chosen by `fit_weights` on the hand-written reference mapping of the master leaves onto Google's taxonomy
# (tests/data/google_reference_mapping.csv); `python -m benchmarks.bench_mapping --part google` reproduces them.
STANDARD_WEIGHTS = Weights(vote=0.1, name=0.5, centroid=0.4, none_score=0.4, temperature=0.0275)  # no vote signal here
FEED_COLUMNS = (
    "platform",
    "id",
    "title",
    "master_path",
    "master_from",
    "google_product_category",
    "google_product_category_path",
)


def import_google(db_url: str | None, path: str | Path, *, name: str = PLATFORM, actor: str = "import") -> dict[str, int]:
    """Read the Google Product Taxonomy file and store it as the standard `name` (re-import updates it)."""
    categories = read_google_taxonomy(path)
    with transaction(get_sessionmaker(db_url or database_url())) as s:
        return standards.import_standard(s, name=name, categories=[(c.code, c.path) for c in categories], actor=actor)


def standard_problem(db_url: str, standard: str, *, sample: int = SAMPLE, seed: int = 0):
    """(master node ids, master paths, standard category ids, standard paths, Signals)."""
    choice = chosen_encoders()
    with get_sessionmaker(db_url)() as s:
        cats = standards.categories_of(s, standard)
        nodes = s.execute(
            select(TaxonomyNode.id, TaxonomyNode.path).where(TaxonomyNode.status == "active").order_by(TaxonomyNode.path)
        ).all()
        paths = {n.id: tuple(n.path.split(PATH_SEP)) for n in s.execute(select(TaxonomyNode.id, TaxonomyNode.path))}
        labelled = node_members(s, sample=sample, seed=seed)
        inputs = product_inputs(s, {p for ids in labelled.values() for p in ids})
    node_ids, node_paths = [n.id for n in nodes], [paths[n.id] for n in nodes]
    cat_paths = [tuple(c.path.split(PATH_SEP)) for c in cats]
    name = name_signal(node_paths, cat_paths, choice)
    text = centroids(subtree_members(node_ids, node_paths, labelled, paths), inputs, choice).get("text")
    encoder = get_encoder(choice.text)
    path_vectors = cached_embed(encoder, [PATH_SEP.join(p) for p in cat_paths], batch_size=64).vectors
    centroid = cosine(text, path_vectors) if text is not None else np.zeros_like(name)
    signals = Signals(vote=np.zeros_like(name), name=name, centroid=centroid)
    return node_ids, node_paths, [c.id for c in cats], cat_paths, signals


def suggest_standard(
    db_url: str | None, standard: str = PLATFORM, *, weights: Weights = STANDARD_WEIGHTS, store: bool = True, log: Log = print
) -> list[dict[str, Any]]:
    """Suggest (and store) the standard category of every active master node."""
    db_url = db_url or database_url()
    node_ids, node_paths, cat_ids, cat_paths, signals = standard_problem(db_url, standard)
    log(f"{len(node_ids)} master categories onto {len(cat_ids)} {standard!r} categories")
    rows = []
    for i, sug in enumerate(suggest(signals, weights)):
        candidates = [
            {
                "category_id": cat_ids[k] if k != NONE else None,
                "path": PATH_SEP.join(cat_paths[k]) if k != NONE else None,
                "confidence": round(conf, 4),
                **{key: round(v, 4) for key, v in detail.items() if key != "vote"},
            }
            for k, conf, detail in zip(sug.ranking, sug.confidence, sug.signals, strict=True)
        ]
        top = candidates[0]
        rows.append(
            {
                "node_id": node_ids[i],
                "master_path": PATH_SEP.join(node_paths[i]),
                "category_id": top["category_id"],
                "standard_path": top["path"],
                "confidence": top["confidence"],
                "ambiguous": sug.ambiguous,
                "candidates": candidates,
            }
        )
    if store:
        with transaction(get_sessionmaker(db_url)) as s:
            counts = standards.store_standard_suggestions(s, standard=standard, suggestions=rows, actor="mapping suggest")
        log(f"stored: {counts['new']} new, {counts['updated']} updated, {counts['kept']} already decided (kept)")
    return rows


def write_feed(f: TextIO, db_url: str | None, *, standard: str = PLATFORM) -> int:
    """Write the shopping feed (one row per shop product, cells made safe for spreadsheets) as CSV to the text file
    `f`; returns the number of products."""
    with get_sessionmaker(db_url or database_url())() as s:
        writer = csv.writer(f)
        writer.writerow(FEED_COLUMNS)
        n = 0
        for row in standards.feed_rows(s, standard=standard):
            writer.writerow([safe_cell(row[c]) for c in FEED_COLUMNS])
            n += 1
    return n


def export_feed(db_url: str | None, out: str | Path, *, standard: str = PLATFORM) -> int:
    """Write the shopping feed as the CSV file `out`; returns the number of products."""
    with open(out, "w", newline="", encoding="utf-8") as f:
        return write_feed(f, db_url, standard=standard)


def feed_csv(db_url: str | None, standard: str = PLATFORM) -> bytes:
    """The shopping feed as CSV bytes (UTF-8), what `export_feed` writes (for a download button)."""
    buffer = io.StringIO(newline="")
    write_feed(buffer, db_url, standard=standard)
    return buffer.getvalue().encode("utf-8")
