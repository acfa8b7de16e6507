"""Integrity of the hand-made master -> Google Product Taxonomy reference mapping
(tests/data/google_reference_mapping.csv) against the real data: the master taxonomy of the default catalogue
(`core.config.catalog_dir()`) and Google's taxonomy file (`$GOOGLE_TAXONOMY_FILE`, else
../shared/data/google-product-taxonomy/taxonomy-with-ids.en-US.txt beside the repository). The mapping's entries are
hand judgements; these tests check only what the data can decide: coverage, ids and paths, kinds and counts."""

from __future__ import annotations

import collections
import csv
import re
from pathlib import Path

import pytest

from core import config

DATA = Path(__file__).resolve().parents[1] / "data"
MAPPING = DATA / "google_reference_mapping.csv"
HEADER = ["master_path", "google_id", "google_path", "kind", "products", "note"]
KINDS = ("exact", "broader", "none")
MIN_PRODUCTS = 10
SEP = " > "


@pytest.fixture(scope="module")
def mapping() -> tuple[list[str], list[dict[str, str]]]:
    with MAPPING.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def leaf_counts() -> collections.Counter:
    """Products per master leaf `master > sub > article`, counted from the parquet."""
    import pandas as pd

    frame = pd.read_parquet(
        config.catalog_dir() / "products.parquet", columns=["master_category", "sub_category", "article_type"]
    )
    paths = frame["master_category"] + SEP + frame["sub_category"] + SEP + frame["article_type"]
    return collections.Counter(paths)


@pytest.fixture(scope="module")
def google() -> dict[str, str]:
    """Google category id -> full path, parsed from the taxonomy file (`ID - Level 1 > Level 2`, one header line)."""
    lines = config.google_taxonomy_file().read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#"), "the taxonomy file must start with its version header"
    categories = {}
    for line in lines[1:]:
        gid, path = line.split(" - ", 1)
        categories[gid] = path
    return categories


def test_file_has_the_documented_header_and_is_sorted_by_master_path(mapping):
    header, rows = mapping
    assert header == HEADER
    paths = [row["master_path"] for row in rows]
    assert paths == sorted(paths)


def test_every_master_leaf_with_enough_products_appears_exactly_once_and_nothing_else(mapping, leaf_counts):
    _, rows = mapping
    seen = collections.Counter(row["master_path"] for row in rows)
    expected = {path for path, n in leaf_counts.items() if n >= MIN_PRODUCTS}
    assert [path for path, n in seen.items() if n > 1] == []
    assert set(seen) - expected == set(), "rows for paths that are not master leaves with >= 10 products"
    assert expected - set(seen) == set(), "master leaves missing from the mapping"


def test_every_google_id_exists_and_its_path_equals_google_path(mapping, google):
    _, rows = mapping
    unknown = [row["google_id"] for row in rows if row["google_id"] and row["google_id"] not in google]
    assert unknown == []
    wrong = [
        (row["master_path"], row["google_path"])
        for row in rows
        if row["google_id"] in google and google[row["google_id"]] != row["google_path"]
    ]
    assert wrong == []


def test_kind_agrees_with_the_google_id(mapping):
    _, rows = mapping

    def expected(row: dict[str, str]) -> str:
        if not row["google_id"] and not row["google_path"]:
            return "none"
        if row["google_id"] and row["google_path"]:
            return row["kind"] if row["kind"] in ("exact", "broader") else "exact or broader"
        return "invalid: id and path must both be set or both be empty"

    wrong = [(row["master_path"], row["kind"], expected(row)) for row in rows if row["kind"] != expected(row)]
    assert wrong == []


def test_broader_and_none_rows_say_why_in_note(mapping):
    _, rows = mapping
    silent = [row["master_path"] for row in rows if row["kind"] in ("broader", "none") and not row["note"].strip()]
    assert silent == []


def test_product_counts_equal_the_products_of_each_leaf(mapping, leaf_counts):
    _, rows = mapping
    wrong = [(row["master_path"], row["products"]) for row in rows if row["products"] != str(leaf_counts[row["master_path"]])]
    assert wrong == []


def test_readme_states_the_files_counts_by_kind(mapping):
    _, rows = mapping
    text = (DATA / "README.md").read_text(encoding="utf-8")
    stated_rows = re.search(r"exact: (\d+), broader: (\d+), none: (\d+)\.", text)
    assert stated_rows, "README.md must state 'exact: N, broader: N, none: N.'"
    kinds = collections.Counter(row["kind"] for row in rows)
    assert [int(n) for n in stated_rows.groups()] == [kinds[kind] for kind in KINDS]
    assert f"{len(rows)} rows" in text

    stated_products = re.search(r"By products: exact ([\d,]+), broader ([\d,]+), none ([\d,]+) of ([\d,]+)\.", text)
    assert stated_products, "README.md must state the product counts by kind"
    products = collections.Counter()
    for row in rows:
        products[row["kind"]] += int(row["products"])
    expected = [products[kind] for kind in KINDS] + [sum(products.values())]
    assert [int(n.replace(",", "")) for n in stated_products.groups()] == expected
