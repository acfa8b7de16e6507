"""Integrity of the hand-made H&M -> master reference mapping (tests/data/hm_reference_mapping.csv) against the
real data: the H&M articles (`$HM_CATALOG_DIR`, else ../shared/data/hm-catalog beside the repository) and the
master taxonomy of the default catalogue (`core.config.catalog_dir()`). The mapping's entries are hand judgements;
these tests check only what the data can decide: coverage, existence of the paths, kinds and counts."""

from __future__ import annotations

import collections
import csv
import re
from pathlib import Path

import pytest

from core import config

DATA = Path(__file__).resolve().parents[1] / "data"
MAPPING = DATA / "hm_reference_mapping.csv"
HEADER = ["hm_path", "master_path", "kind", "products", "note"]
SEP = " > "


@pytest.fixture(scope="module")
def mapping() -> tuple[list[str], list[dict[str, str]]]:
    with MAPPING.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def hm_counts() -> collections.Counter:
    """Articles per H&M `group > type`, counted from the parquet."""
    import pandas as pd

    frame = pd.read_parquet(config.hm_catalog_dir() / "articles.parquet", columns=["product_group_name", "product_type_name"])
    return collections.Counter(frame["product_group_name"] + SEP + frame["product_type_name"])


@pytest.fixture(scope="module")
def master_nodes() -> tuple[set[str], set[str]]:
    """(leaves, internal nodes) of the master taxonomy, as ' > '-joined paths."""
    import pandas as pd

    frame = pd.read_parquet(
        config.catalog_dir() / "products.parquet", columns=["master_category", "sub_category", "article_type"]
    )
    leaves, internal = set(), set()
    for top, sub, leaf in frame.drop_duplicates().itertuples(index=False):
        leaves.add(SEP.join([top, sub, leaf]))
        internal.update({top, SEP.join([top, sub])})
    return leaves, internal


def test_file_has_the_documented_header_and_is_sorted_by_hm_path(mapping):
    header, rows = mapping
    assert header == HEADER
    paths = [row["hm_path"] for row in rows]
    assert paths == sorted(paths)


def test_every_hm_type_appears_exactly_once_and_nothing_else(mapping, hm_counts):
    _, rows = mapping
    seen = collections.Counter(row["hm_path"] for row in rows)
    assert [path for path, n in seen.items() if n > 1] == []
    assert set(seen) - set(hm_counts) == set(), "rows for H&M categories that do not exist"
    assert set(hm_counts) - set(seen) == set(), "H&M categories missing from the mapping"


def test_every_master_path_exists_in_the_master_taxonomy(mapping, master_nodes):
    _, rows = mapping
    leaves, internal = master_nodes
    unknown = [row["master_path"] for row in rows if row["master_path"] and row["master_path"] not in leaves | internal]
    assert unknown == []


def test_kind_agrees_with_the_master_path(mapping, master_nodes):
    _, rows = mapping
    leaves, internal = master_nodes

    def expected(path: str) -> str:
        if not path:
            return "none"
        if path.count(SEP) == 2 and path in leaves:
            return "leaf"
        if path.count(SEP) < 2 and path in internal:
            return "ancestor"
        return "invalid"

    wrong = [(row["hm_path"], row["kind"]) for row in rows if row["kind"] != expected(row["master_path"])]
    assert wrong == []


def test_product_counts_equal_the_articles_of_each_type(mapping, hm_counts):
    _, rows = mapping
    wrong = [(row["hm_path"], row["products"]) for row in rows if row["products"] != str(hm_counts[row["hm_path"]])]
    assert wrong == []
    assert sum(int(row["products"]) for row in rows) == sum(hm_counts.values())


def test_readme_states_the_files_counts_by_kind(mapping):
    _, rows = mapping
    text = (DATA / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"leaf: (\d+), ancestor: (\d+), none: (\d+)", text)
    assert stated, "README.md must state 'leaf: N, ancestor: N, none: N'"
    kinds = collections.Counter(row["kind"] for row in rows)
    assert [int(n) for n in stated.groups()] == [kinds["leaf"], kinds["ancestor"], kinds["none"]]
