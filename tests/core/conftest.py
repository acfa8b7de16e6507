"""Fixtures of the ML-step tests: a small leak-free catalogue in a database, embedded through stand-in encoders.

`small_catalogue` builds products whose hidden class only the test knows (see `ml_helpers.SmallCatalogue`): no
title holds a label word, and the title and photo vectors overlap between classes, so a model can be wrong. The
stand-in encoders are registered in `core.embed.encoders.ENCODERS` and recorded as the encoder choice, so every
step runs the real `embed_catalogue` and embedding-cache path; they look each title / photo file up in the tables
the fixture built (they never read a label); they exist in this process only (a `python -m core` child process
would refuse the recorded choice as an unknown encoder). The models train with a smaller hidden layer
(`FAST_TRAINING`, patched into `TRAIN_OPTIONS` for the test only) so that each test takes seconds.
"""

from __future__ import annotations

import csv
import os

import pytest
from sqlalchemy import select

from core.classify.models import TRAIN_OPTIONS
from core.data.ingest import ColumnMap
from core.embed.choice import EncoderChoice, record_encoders
from core.embed.encoders import ENCODERS
from core.steps.ingest import ingest
from db import curation, repo
from db.models import Product, TaxonomyNode
from db.session import transaction
from tests.core.ml_helpers import STAND_INS, SmallCatalogue, make_small_catalogue, stand_in_factories

FAST_TRAINING = {"hidden": 64}  # production: 512; here the models fit in about half the time


@pytest.fixture
def small_catalogue(tmp_path, monkeypatch) -> SmallCatalogue:
    """240 products over 4 leaves (60 each), 60% with a PNG photo; stand-in encoders registered and chosen."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    cat = make_small_catalogue(tmp_path / "catalogue" / "photos", seed=1)
    for name, factory in stand_in_factories(cat).items():
        monkeypatch.setitem(ENCODERS, name, factory)
    for key, value in FAST_TRAINING.items():
        monkeypatch.setitem(TRAIN_OPTIONS, key, value)
    record_encoders(EncoderChoice(**STAND_INS))
    return cat


@pytest.fixture
def second_choice(small_catalogue, monkeypatch) -> EncoderChoice:
    """Another registered pair of stand-ins ("test-text-b", "test-image-b": other ids, the same tables)."""
    for name, factory in stand_in_factories(small_catalogue, variant="b").items():
        monkeypatch.setitem(ENCODERS, name, factory)
    return EncoderChoice(text=STAND_INS["text"] + "-b", image=STAND_INS["image"] + "-b")


def write_catalogue_csv(cat: SmallCatalogue, path, labels: list[str]) -> None:
    """sku, name, category (`labels`, in sku order), photo (relative to the file's folder, empty without one)."""
    root = path.parent.resolve()
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sku", "name", "category", "photo"])
        for sku, title, label, photo in zip(cat.skus, cat.titles, labels, cat.photos):
            writer.writerow([sku, title, label, os.path.relpath(photo, root) if photo else ""])


@pytest.fixture
def small_db(db_url, small_catalogue, tmp_path):
    """`small_catalogue` ingested with its hidden leaves as the platform's labels; returns the database URL."""
    path = tmp_path / "catalogue" / "cat.csv"
    write_catalogue_csv(small_catalogue, path, small_catalogue.labels())
    mapping = ColumnMap.parse(["id=sku", "title=name", "path=category", "image=photo", "description=none", "brand=none"])
    ingest(path, platform="shop", db_url=db_url, mapping=mapping)
    return db_url


def quiet(*_):
    pass


def relabel(factory, labels_by_sku: dict[str, str], *, actor: str = "t") -> int:
    """Give products a person's label (`{sku: leaf path}`; products already on that leaf are left alone), in one
    transaction; returns how many changed."""
    changed = 0
    with transaction(factory) as s:
        nodes = {path: repo.node_by_path(s, path).id for path in set(labels_by_sku.values())}
        products = {p.external_id: p.id for p in s.scalars(select(Product).where(Product.external_id.in_(list(labels_by_sku))))}
        current = current_labels(s)
        for sku, path in labels_by_sku.items():
            if current[sku] != path:
                curation.relabel_product(s, product_id=products[sku], node_id=nodes[path], actor=actor)
                changed += 1
    return changed


def current_labels(session) -> dict[str, str]:
    """{sku: effective label path} read from the database."""
    eff = repo.effective_labels_subquery()
    rows = session.execute(
        select(Product.external_id, TaxonomyNode.path)
        .join(eff, eff.c.product_id == Product.id)
        .join(TaxonomyNode, TaxonomyNode.id == eff.c.node_id)
    )
    return dict(rows.all())
