"""`discover` on a real slice of Footwear > Shoes: proposals stored under the node; the benchmark scores
discovery and the plain pipeline against the hidden article types."""

from __future__ import annotations

import pytest

from core import config
from core.ingest import ingest
from core.recategorize import benchmark, debrand, discover
from db import proposals as props
from db import repo
from db.models import Product


def test_debrand_removes_whole_word_brand_names():
    assert debrand("Nike Men Air Max Sports Shoes", "Nike") == "Men Air Max Sports Shoes"
    assert debrand("Puma Puma-Cat Flats", "puma") == "-Cat Flats"
    assert debrand("Catwalk Women Heels", "Cat") == "Catwalk Women Heels"
    assert debrand("Nike", "Nike") == "Nike"  # never an empty title
    assert debrand("Red Heels", None) == "Red Heels"


@pytest.fixture
def shoes_db(tmp_path, monkeypatch, catalog_frame):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    shoes = catalog_frame[catalog_frame.sub_category == "Shoes"]
    sample = shoes.groupby("article_type").head(40).sort_values("id")
    path = tmp_path / "shoes.parquet"
    sample.to_parquet(path)
    url = f"sqlite:///{tmp_path / 'shoes.db'}"
    from db.session import upgrade

    upgrade(url)
    ingest(path, platform="myntra", db_url=url, images_root=config.catalog_dir())
    return url, len(sample)


def test_discover_stores_open_proposals_under_the_node(shoes_db):
    from db.session import get_sessionmaker

    url, n = shoes_db
    count = discover(url, node_path="Footwear > Shoes", log=lambda *_: None)
    factory = get_sessionmaker(url)
    with factory() as s:
        node = repo.node_by_path(s, "Footwear > Shoes")
        proposals = props.list_proposals(s, parent_node_id=node.id, status="open")
        under = {p.id for p in s.query(Product).all()}
    assert count == len(proposals) >= 2
    members = [m for p in proposals for m in p.members]
    assert len(members) == len(set(members)) and set(members) <= under and len(members) >= 0.5 * n
    assert all(p.name and p.scores["size"] == len(p.members) for p in proposals)
    assert all(isinstance(n, str) for p in proposals for n in p.suggested_names)
    assert discover(url, node_path="Footwear > Shoes", log=lambda *_: None) == count  # seeded, replaced not added
    with factory() as s:
        assert len(props.list_proposals(s, parent_node_id=node.id)) == count
    with pytest.raises(ValueError, match="no active category"):
        discover(url, node_path="Footwear > Nothing", log=lambda *_: None)


def test_benchmark_scores_both_pipelines_against_the_hidden_level(shoes_db):
    url, n = shoes_db
    result = benchmark(url, node_path="Footwear > Shoes")
    assert result["n_products"] == n and set(result["hidden_types"]) >= {"Heels", "Flats", "Casual Shoes"}
    for run in result["runs"].values():
        assert 0.0 < run["purity"] <= 1.0 and 0.0 <= run["share_unassigned"] < 1.0 and run["n_clusters"] >= 1
