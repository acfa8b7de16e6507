"""The pages' database reads (db/repo.py node_counts, taxonomy_rows, catalogue_stats, products_in_node) on a
catalogue where the effective label matters: two platforms (one labels by its own categories, one by category
mappings), a person's labels over the platform's and a mapping's, a model's label under a mapping's and over a
platform's, products without a label, a retired category, products with and without a photo.

Every expected value below is worked out by hand from `PRODUCTS` (the comment on each row says where its
effective label is and why), never read back from the code under test. SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db import repo
from db.models import Label, Product, TaxonomyNode
from db.session import transaction

NODES = {"A": ("A",), "A1": ("A", "A1"), "A2": ("A", "A2"), "Old": ("A", "Old"), "B": ("B",), "B1": ("B", "B1")}
# name: (platform, image status, {source: node}); inserted in this order, so product ids ascend down the list
PRODUCTS = {
    "p1": ("shop", "ok", {"platform": "A1"}),  # A1
    "p2": ("shop", "none", {"platform": "A1", "human": "B1"}),  # B1: a person's label wins over the platform's
    "p3": ("shop", "ok", {"platform": "A2"}),  # A2
    "p4": ("shop", "none", {"platform": "A2", "human": "A1"}),  # A1: a person's label
    "p5": ("shop", "ok", {}),  # no label
    "p7": ("shop", "none", {"platform": "B", "model": "A1"}),  # A1: the model's label wins over the platform's
    "q1": ("other", "ok", {"mapping": "A2"}),  # A2
    "q2": ("other", "none", {"mapping": "B1", "human": "A2"}),  # A2: a person's label wins over a mapping's
    "q3": ("other", "remote", {}),  # no label
    "q4": ("other", "ok", {"model": "B1", "mapping": "A1"}),  # A1: a mapping's label wins over the model's
    "q5": ("other", "none", {"model": "B1"}),  # B1
}


@pytest.fixture
def shop(factory) -> dict[str, int]:
    """The catalogue above; returns {node or product name: id}. "Old" is retired (its products went to A2)."""
    with transaction(factory) as s:
        ids = {name: repo.ensure_path(s, path)[0].id for name, path in NODES.items()}
        platforms = {name: repo.get_or_create_platform(s, name=name).id for name in ("other", "shop")}
        for name, (platform, status, labels) in PRODUCTS.items():
            product = Product(platform_id=platforms[platform], external_id=name, title=name, content_hash="h")
            product.image_status = status
            s.add(product)
            s.flush()
            ids[name] = product.id
            s.add_all(Label(product_id=product.id, node_id=ids[node], source=src) for src, node in labels.items())
        old = s.get(TaxonomyNode, ids["Old"])
        old.status, old.redirect_id = "retired", ids["A2"]
    order = [ids[name] for name in PRODUCTS]
    assert order == sorted(order)  # the expected orders below rely on ids ascending in insertion order
    return ids


def names(ids: dict[str, int], product_ids) -> list[str]:
    by_id = {v: k for k, v in ids.items() if k in PRODUCTS}
    return [by_id[i] for i in product_ids]


def test_node_counts_count_each_labelled_product_once_at_its_effective_label(factory, shop):
    with factory() as s:
        counts = repo.node_counts(s)
    # direct: A1 p1 p4 p7 q4; A2 p3 q1 q2; B1 p2 q5. Including descendants: A = 4 + 3, B = 2.
    expected = {"A": (0, 7), "A1": (4, 4), "A2": (3, 3), "Old": (0, 0), "B": (0, 2), "B1": (2, 2)}
    assert {name: counts[shop[name]] for name in NODES} == expected
    assert set(counts) == {shop[name] for name in NODES}


def test_taxonomy_rows_list_the_tree_in_order_with_counts_and_leave_out_the_retired_category(factory, shop):
    with factory() as s:
        rows = repo.taxonomy_rows(s)
        with_retired = repo.taxonomy_rows(s, include_retired=True)
    seen = [(r["name"], r["depth"], r["status"], r["direct"], r["products"], r["children"]) for r in rows]
    assert seen == [  # roots by name, each followed by its children by name; A's live children: A1 and A2
        ("A", 1, "active", 0, 7, 2),
        ("A1", 2, "active", 4, 4, 0),
        ("A2", 2, "active", 3, 3, 0),
        ("B", 1, "active", 0, 2, 1),
        ("B1", 2, "active", 2, 2, 0),
    ]
    assert [r["name"] for r in with_retired] == ["A", "A1", "A2", "Old", "B", "B1"]
    old = with_retired[3]
    assert (old["status"], old["direct"], old["products"], old["parent_id"]) == ("retired", 0, 0, shop["A"])


def test_catalogue_stats_count_products_labelled_products_and_photos_per_platform(factory, shop):
    with factory() as s:
        stats = {row["platform"]: row for row in repo.catalogue_stats(s)}
    assert stats == {
        # p1 p2 p3 p4 p5 p7: p5 has no label; photos p1 p3 p5
        "shop": {"platform": "shop", "products": 6, "labelled": 5, "images_ok": 3, "images_none": 3},
        # q1..q5: q3 has no label; photos q1 q4, q3 remote
        "other": {"platform": "other", "products": 5, "labelled": 4, "images_ok": 2, "images_none": 2, "images_remote": 1},
    }


# photos first (p1 p3 q1 q4 by id), then the rest by id (p4 p7 q2); p2 is in B1 by a person's label, p7's
# platform label at B is outranked by its model label at A1.
IN_A = ["p1", "p3", "q1", "q4", "p4", "p7", "q2"]


@pytest.mark.parametrize(
    "node, descendants, expected",
    [
        ("A", True, IN_A),
        ("A1", True, ["p1", "q4", "p4", "p7"]),
        ("B", True, ["p2", "q5"]),
        ("B", False, []),  # p7's platform label is at B, but its effective label is at A1
        ("Old", True, []),
    ],
)
def test_products_in_node_are_the_effective_labels_there_photos_first(factory, shop, node, descendants, expected):
    with factory() as s:
        page, total = repo.products_in_node(s, node_id=shop[node], limit=24, descendants=descendants)
        assert (names(shop, [p.id for p in page]), total) == (expected, len(expected))
        page, total = repo.products_in_node(s, node_id=shop[node], limit=24, descendants=descendants, total=99)
        assert (names(shop, [p.id for p in page]), total) == (expected, 99)  # a total the caller has is not counted again


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 7, 8])
def test_keyset_and_offset_pages_return_every_product_once_in_order(factory, shop, limit):
    """Page by page through A: by keyset (`after` the last product's `page_key`) and by offset, the same pages,
    whose concatenation is every product of A exactly once, photos first; limit 2 and 4 end a page exactly where
    the photos end, 3 inside a page."""
    keyset, offset, after = [], [], None
    with factory() as s:
        for start in range(0, len(IN_A) + limit, limit):
            page, _ = repo.products_in_node(s, node_id=shop["A"], limit=limit, after=after)
            keyset.append([p.id for p in page])
            if page:
                after = repo.page_key(page[-1].image_status, page[-1].id)
            offset.append([p.id for p in repo.products_in_node(s, node_id=shop["A"], limit=limit, offset=start)[0]])
    assert keyset == offset
    assert all(len(page) == limit for page in keyset[: len(IN_A) // limit])
    assert names(shop, [i for page in keyset for i in page]) == IN_A


def test_page_key_puts_photos_first_then_ids(shop):
    assert repo.page_key("ok", 9) == (0, 9)
    assert repo.page_key("missing", 2) == (1, 2)
    assert repo.page_key("ok", 9) < repo.page_key("none", 1)


def test_effective_node_is_the_best_label_of_each_product(factory, shop):
    with factory() as s:
        got = dict(s.execute(select(Product.external_id, repo.effective_node(Product.id))).all())
    expected = {"p1": "A1", "p2": "B1", "p3": "A2", "p4": "A1", "p7": "A1", "q1": "A2", "q2": "A2", "q4": "A1", "q5": "B1"}
    assert got == {**{name: shop[node] for name, node in expected.items()}, "p5": None, "q3": None}


def test_the_app_pages_a_node_by_keyset_after_the_first_page_and_by_offset_when_jumping(db_url, factory, shop, monkeypatch):
    """`app.cache.node_products` (what the Taxonomy page shows): reading pages 1, 2, 3 in turn, each after the
    last product of the one before, gives the same cards as jumping straight to page 3 (by offset); together the
    pages hold every product of A once, photos first."""
    from app import cache

    monkeypatch.setenv("DATABASE_URL", db_url)
    in_turn = [[c["id"] for c in cache.node_products(shop["A"], limit=3, offset=start)] for start in (0, 3, 6)]
    version = cache.data_version()
    starts = cache._page_starts(cache.db_url(), version, shop["A"], 3)  # noqa: SLF001 - the keys the pages left
    assert starts == {3: (0, shop["q1"]), 6: (1, shop["p7"])}
    cache._node_products.clear()  # noqa: SLF001 - read page 3 afresh, by offset
    cache._page_starts.clear()  # noqa: SLF001
    jumped = [c["id"] for c in cache.node_products(shop["A"], limit=3, offset=6)]
    assert names(shop, [i for page in in_turn for i in page]) == IN_A
    assert jumped == in_turn[2]
