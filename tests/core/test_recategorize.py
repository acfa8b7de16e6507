"""`discover` on a real slice of Footwear > Shoes: proposals stored under the node; the benchmark scores
discovery and the plain pipeline against the hidden article types."""

from __future__ import annotations

from collections import Counter

import pytest

from core import config
from core.bench.discovery import HEAD_ONLY, benchmark
from core.discover.features import colour_pattern, colour_vocabulary, debrand, feature_texts, without_care_sentences
from core.steps.discover import NodeSearch, discover
from core.steps.ingest import ingest
from core.steps.maps import load_map, load_run, slug_for
from db import proposals as props
from db import repo
from db.models import Product


def test_debrand_removes_whole_word_brand_names():
    assert debrand("Nike Men Air Max Sports Shoes", "Nike") == "Men Air Max Sports Shoes"
    assert debrand("Puma Puma-Cat Flats", "puma") == "-Cat Flats"
    assert debrand("Catwalk Women Heels", "Cat") == "Catwalk Women Heels"
    assert debrand("Nike", "Nike") == "Nike"  # never an empty title
    assert debrand("Red Heels", None) == "Red Heels"


def test_colour_vocabulary_reads_colour_attributes_that_enough_products_share():
    attrs = [{"base_colour": "Navy Blue", "attributes": {"Strap Colour": "Black"}}] * 3 + [
        {"base_colour": "Red", "usage": "Casual"},
        {"base_colour": "#FF0000", "Colour Shade Name": "Black"},
    ]
    vocab = colour_vocabulary(attrs, min_count=3)
    assert vocab == ["navy blue", "black", "blue", "navy"]  # longest first; "red" (1 product) and the hex code left out
    assert "casual" not in colour_vocabulary(attrs, min_count=1) and "red" in colour_vocabulary(attrs, min_count=1)
    assert colour_pattern([]) is None


def test_care_sentences_are_dropped_and_the_rest_kept():
    desc = "Black running shoes with a mesh upper. Wipe with a clean, dry cloth to remove dust. Cushioned sole"
    assert without_care_sentences(desc) == "Black running shoes with a mesh upper. Cushioned sole"
    assert without_care_sentences("") == ""


def test_feature_texts_leave_out_brand_colour_and_care_text():
    colours = colour_pattern(["navy blue", "silver", "blue", "navy"])
    title, text = feature_texts(
        "Puma Men Navy Blue Silver-Toned Running Shoes",
        "Machine wash cold.  A pair of navy blue running shoes from Puma, cushioned sole",
        "Puma",
        colours,
    )
    assert title == "Men Running Shoes"
    assert text == "Men Navy Blue Silver-Toned Running Shoes. A pair of navy blue running shoes from , cushioned sole"
    assert feature_texts("Blue", "", None, colours)[0] == "Blue"  # never an empty title
    long_title, long_text = feature_texts("Heels", "x" * 2000, None, None)
    assert long_title == "Heels" and len(long_text) == len("Heels. ") + 600


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

    saved = load_map(slug_for(node.id))
    assert saved["meta"]["unassigned"] == pytest.approx((saved["clusters"] < 0).mean(), abs=1e-4)
    assert saved["meta"]["unclear_groups"] >= 0 and len(saved["product_ids"]) == n
    run = load_run(slug_for(node.id))  # the run record, beside the map and in its meta
    assert run.step == "discover" and run.inputs["products"] == n and run.inputs["node"] == "Footwear > Shoes"
    assert run.inputs["encoders"]["text"].startswith("text:minilm:") and saved["meta"]["run"]["inputs"] == run.inputs
    assert set(run.timings) >= {"load", "features", "head", "reduce", "cluster", "name", "store"}
    assert run.outputs["proposals"] == count and run.settings["min_cluster_size"] == 10
    assert run.settings["head"]["blocks"] == [384, 384]  # the head's views: two of the text encoder's 384-d blocks
    assert discover(url, node_path="Footwear > Shoes", log=lambda *_: None) == count  # seeded, replaced not added
    with factory() as s:
        assert len(props.list_proposals(s, parent_node_id=node.id)) == count
    with pytest.raises(ValueError, match="no active category"):
        discover(url, node_path="Footwear > Nothing", log=lambda *_: None)


def test_benchmark_scores_both_pipelines_against_the_hidden_level(shoes_db):
    url, n = shoes_db
    result = benchmark(url, node_path="Footwear > Shoes", bertopic=False)  # BERTopic: tests/core/test_cli_steps.py
    hidden = result["hidden_types"]
    assert result["n_products"] == n and set(hidden) >= {"Heels", "Flats", "Casual Shoes"}
    assert result["settings"]["max_unassigned"] == 0.2 and result["settings"]["min_cluster_size"] == 10
    discovery = result["runs"]["discovery (SimCLR + UMAP + cascade + tree)"]
    expected = ["discovery (SimCLR + UMAP + cascade + tree)", "plain (UMAP + HDBSCAN + the same tree)"]
    expected += [HEAD_ONLY] if discovery["space"] == "raw" else []  # the head's run is scored too when it was set aside
    assert discovery["space"] in ("head", "raw") and sorted(result["runs"]) == sorted(expected)
    for run in result["runs"].values():
        leaves, default, level = run["leaves"], run["default"], run["hidden_level"]
        assert 0.0 < leaves["purity"] <= 1.0 and 0.0 <= leaves["share_unassigned"] < 1.0 and leaves["n_clusters"] >= 1
        assert 1 <= default["proposals"] <= leaves["n_clusters"]
        assert level["k"] == len(hidden) and -1.0 <= level["ari"] <= 1.0 and 0.0 <= level["nmi"] <= 1.0
    cascade = result["runs"][HEAD_ONLY] if discovery["space"] == "raw" else discovery  # the raw space: HDBSCAN only
    assert cascade["leaves"]["share_unassigned"] <= 0.2 + 1e-9  # the cascade's cap on what it leaves out


def test_discover_command_options_reach_the_pipeline():
    from core.cli import _discovery_options, build_parser

    parse = build_parser().parse_args
    assert _discovery_options(parse(["discover"]))["max_unassigned"] == 0.2
    opts = _discovery_options(parse(["discover", "--max-unassigned", "-1", "--min-cluster-size", "25", "--seed", "3"]))
    assert opts == {"seed": 3, "device": None, "min_cluster_size": 25, "max_unassigned": None}


def test_node_search_matches_every_word_of_the_query_and_neighbours_leave_the_product_out(shoes_db):
    from db.session import get_sessionmaker

    url, n = shoes_db
    search = NodeSearch(url, "Footwear > Shoes")
    with get_sessionmaker(url)() as s:
        products = {p.id: (p.title, (p.attributes or {}).get("base_colour")) for p in s.query(Product).all()}
    assert len(search.product_ids) == n
    colour, _ = Counter(c for _, c in products.values() if c).most_common(1)[0]
    found = search.search(f"{colour.lower()} shoes", k=10)
    assert sum(products[i][1] == colour for i in found) >= 8  # colour words count (the discovery features drop them)
    # every product's own title finds it (or a product with the same title) first; through the discovery
    # features, which leave brand and colour out, 0.78 of them did
    assert all(products[search.search(title, k=1)[0]][0] == title for title, _ in products.values())
    near = search.neighbours(next(iter(products)), k=5)
    assert len(near) == 5 and next(iter(products)) not in near
