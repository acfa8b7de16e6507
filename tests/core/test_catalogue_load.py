"""`core.steps.catalogue.load_catalogue` (what every batch step reads first) streams the products in chunks and
ranks the labels itself: on a catalogue of two platforms with photos, products without a label, a person's label
over the platform's, a mapping's over a model's, and descriptions to shorten, every field of the `Catalogue` is
what the rows say (worked out by hand below), whatever the chunk size (1, 2, 3 and the default: the chunks then
end inside and between products). SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest

from core.steps import catalogue
from core.steps.catalogue import load_catalogue
from db import repo
from db.models import Label, Product
from db.session import transaction

NODES = {"A1": ("A", "A1"), "A2": ("A", "A2"), "B1": ("B", "B1")}
# external id: (platform, title, description, image, image status, {source: node}), inserted in this order
ROWS = {
    "p1": ("shop", "Red boot", "Warm  and\n dry", "p1.jpg", "ok", {"platform": "A1"}),
    "p2": ("shop", " Blue boot ", None, "p2.jpg", "missing", {"platform": "A1", "human": "B1"}),
    "q1": ("other", "Sandal", "x" * 12, "https://img/q1.jpg", "ok", {"model": "B1", "mapping": "A2"}),
    "q2": ("other", "Clog", "", None, "none", {}),
}


@pytest.fixture
def shop(factory):
    with transaction(factory) as s:
        nodes = {name: repo.ensure_path(s, path)[0].id for name, path in NODES.items()}
        roots = {"shop": "/photos/shop", "other": None}
        plats = {name: repo.get_or_create_platform(s, name=name, root=root).id for name, root in roots.items()}
        ids = {}
        for ext, (plat, title, desc, image, status, labels) in ROWS.items():
            product = Product(platform_id=plats[plat], external_id=ext, title=title, content_hash="h", image=image)
            product.description, product.image_status = desc or "", status
            s.add(product)
            s.flush()
            ids[ext] = product.id
            s.add_all(Label(product_id=product.id, node_id=nodes[n], source=src) for src, n in labels.items())
    return ids


@pytest.mark.parametrize("chunk", [1, 2, 3, catalogue.CHUNK])
def test_load_catalogue_reads_every_field_by_product_id_in_any_chunk_size(factory, shop, chunk, monkeypatch):
    monkeypatch.setattr(catalogue, "CHUNK", chunk)
    with factory() as s:
        cat = load_catalogue(s, max_description_chars=10)
    assert cat.product_ids.tolist() == [shop[e] for e in ROWS] and cat.product_ids.dtype.name == "int64"
    assert cat.external_ids == ["p1", "p2", "q1", "q2"]
    assert cat.platforms == ["shop", "shop", "other", "other"]
    assert cat.titles == ["Red boot", " Blue boot ", "Sandal", "Clog"]
    # descriptions: whitespace collapsed, cut at 10 characters; texts: the stripped title, ". ", that description
    assert cat.descriptions == ["Warm and d", "", "x" * 10, ""]
    assert cat.texts == ["Red boot. Warm and d", "Blue boot", "Sandal. " + "x" * 10, "Clog"]
    # a photo only where its status is ok: under the platform's root, or the URL as it is
    assert cat.images == ["/photos/shop/p1.jpg", None, "https://img/q1.jpg", None]
    # p2: a person's label over the platform's; q1: the mapping's over the model's; q2 has none
    assert cat.labels == [("A", "A1"), ("B", "B1"), ("A", "A2"), None]
    assert cat.label_sources == ["platform", "human", "mapping", None]


def test_load_catalogue_of_one_platform_reads_only_its_products(factory, shop):
    with factory() as s:
        other = load_catalogue(s, platform="other")
        nobody = load_catalogue(s, platform="no such shop")
    assert other.external_ids == ["q1", "q2"] and other.product_ids.tolist() == [shop["q1"], shop["q2"]]
    assert other.labels == [("A", "A2"), None] and other.label_sources == ["mapping", None]
    assert len(nobody) == 0 and nobody.labels == [] and nobody.product_ids.dtype.name == "int64"


def test_products_of_one_category_share_one_label_path(factory, shop):
    with transaction(factory) as s:  # p2 back under A1 (its person's label removed): p1 and p2 then share A1
        repo.set_label(s, product_id=shop["p2"], node_id=None, source="human", actor="ana")
    with factory() as s:
        cat = load_catalogue(s)
    assert cat.labels[0] == cat.labels[1] == ("A", "A1") and cat.labels[0] is cat.labels[1]
