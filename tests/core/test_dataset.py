"""The catalogue read from the database as aligned arrays, and the seeded stratified split."""

from __future__ import annotations

from collections import Counter

import numpy as np
from sqlalchemy import select

from core import config
from core.data.dataset import product_text
from core.data.split import stratified_split
from core.steps.catalogue import load_catalogue
from core.steps.ingest import ingest
from db import curation, repo
from db.models import Product
from db.session import transaction


def test_catalogue_follows_labels_images_and_curation(db_url, factory, slice_file, catalog_frame):
    ingest(slice_file(30), platform="myntra", db_url=db_url, images_root=config.catalog_dir())
    with factory() as s:
        cat = load_catalogue(s)
    assert len(cat) == 30 and list(cat.product_ids) == sorted(cat.product_ids)
    assert cat.has_image.all() and all(p.endswith(".jpg") for p in cat.images)
    row = catalog_frame[catalog_frame.id.astype(str) == cat.external_ids[0]].iloc[0]
    assert cat.labels[0] == (row.master_category, row.sub_category, row.article_type)
    assert cat.texts[0].startswith(row.title + ". ")
    with transaction(factory) as s:
        target = repo.ensure_path(s, ("Curated", "Picks"))[0]
        pid = s.scalar(select(Product.id).where(Product.external_id == cat.external_ids[0]))
        curation.relabel_product(s, product_id=pid, node_id=target.id, actor="t")
    with factory() as s:
        again = load_catalogue(s)
    assert again.labels[0] == ("Curated", "Picks") and again.label_sources[0] == "human"
    assert again.subset(np.array([0])).labels == [("Curated", "Picks")]


def test_product_text_truncates_the_description():
    assert product_text("Red Shirt ", "  cotton\n  shirt " * 100, max_description_chars=10) == "Red Shirt. cotton shi"
    assert product_text("Cap", "") == "Cap"


def test_stratified_split_is_seeded_and_keeps_proportions():
    labels = [("A", "x")] * 50 + [("A", "y")] * 30 + [("B", "z")] * 20 + [("C", "solo")]
    train, test = stratified_split(labels, test_size=0.2, seed=3)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(labels)
    counts = Counter(labels[i] for i in test)
    assert counts == {("A", "x"): 10, ("A", "y"): 6, ("B", "z"): 4}
    assert 100 in train  # a single-product path stays in train
    again = stratified_split(labels, test_size=0.2, seed=3)
    assert np.array_equal(again[1], test)
    assert not np.array_equal(stratified_split(labels, test_size=0.2, seed=4)[1], test)


def test_encoder_ids_match_what_embedding_reports(tmp_path, monkeypatch, slice_file):
    """`train` decides "nothing changed" from these ids without embedding: they must be the embedder's own."""
    from core.embed.features import embed_catalogue, encoder_ids
    from db.session import get_sessionmaker, upgrade

    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'ids.db'}"
    upgrade(url)
    ingest(slice_file(4), platform="myntra", db_url=url, images_root=config.catalog_dir())
    with get_sessionmaker(url)() as s:
        cat = load_catalogue(s)
    assert encoder_ids(cat) == embed_catalogue(cat).encoder_ids
