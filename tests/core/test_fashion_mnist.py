"""Fashion-MNIST as a catalogue: the IDX reader on the Debian package's real files (installed by .ci/system-deps),
the catalogue it writes, and its ingest as a photo-only, one-level platform."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sqlalchemy import func, select

from core.data import fashion_mnist
from core.steps.catalogue import load_catalogue
from core.steps.ingest import ingest
from db.models import Product, TaxonomyNode


def test_the_real_files_hold_70000_images_of_10_classes():
    parts = fashion_mnist.load()
    (train_x, train_y), (test_x, test_y) = parts["train"], parts["test"]
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert train_x.dtype == np.uint8 and set(np.unique(train_y)) == set(range(10))
    assert np.bincount(test_y).tolist() == [1000] * 10  # the published test set is balanced


def test_a_file_that_is_not_idx_is_refused(tmp_path):
    bad = tmp_path / "bad-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(b"\x01\x02\x03\x04not idx"))
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        fashion_mnist.read_idx(bad)


def test_the_catalogue_is_photo_only_with_one_level_and_ingests(tmp_path, db_url, factory):
    parquet = fashion_mnist.write_catalogue(tmp_path / "fm", limit=30)
    frame = pd.read_parquet(parquet)
    images, labels = fashion_mnist.load()["train"]
    assert frame["id"].tolist()[:2] == ["train-00000", "train-00001"] and len(frame) == 30
    assert frame["category"].tolist() == [fashion_mnist.CLASSES[k] for k in labels[:30]]
    first = np.asarray(Image.open(tmp_path / "fm" / frame["image"][0]))
    assert np.array_equal(first, images[0])  # the PNG is the image, pixel for pixel
    report = ingest(parquet, platform="zalando", db_url=db_url, mapping=fashion_mnist.MAPPING)
    assert report.inserted == 30 and report.image_status == {"ok": 30}
    with factory() as s:
        cat = load_catalogue(s)
        titles = s.scalars(select(Product.title)).all()
        categories = s.scalar(select(func.count()).select_from(TaxonomyNode))
    assert all(t == "" for t in titles) and cat.has_image.all()
    assert all(len(p) == 1 for p in cat.labels)  # one level: each class is a root
    assert categories == len(set(frame["category"]))
