"""The scale catalogue generator (`core.data.scale`): deterministic, distinct titles, source paths only, ingests."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlalchemy import func, select

from core.cli import main
from core.data import scale
from core.steps.ingest import ingest
from db.models import Label, Platform, Product, TaxonomyNode


def myntra_frame() -> pd.DataFrame:
    """Two Myntra leaves with brand / colour variety, and a one-product leaf that has none (its titles must collide)."""
    rows = []
    for i in range(12):
        brand, colour = ["Nike", "Puma", "Roadster"][i % 3], ["Blue", "Black", "Red", "Green"][i % 4]
        rows.append(
            (
                i,
                f"{brand} Men {colour} Round Neck T-shirt",
                f"{colour} cotton t-shirt.\nMachine wash.\nBy {brand}.",
                brand,
                colour,
            )
            + (
                "Men",
                "Apparel",
                "Topwear",
                "Tshirts",
                json.dumps({"Fit": ["Slim Fit", "Regular Fit"][i % 2], "Pattern": "Solid"}),
            )
        )
        rows.append(
            (100 + i, f"{brand} Women {colour} Running Shoes", f"A {colour} running shoe.\nRubber sole.", brand, colour)
            + ("Women", "Footwear", "Shoes", "Sports Shoes", json.dumps({"Type": "Lace-ups"}))
        )
    rows.append((999, "Lone Lamp", "A lamp.", "", "", "Unisex", "Home", "Decor", "Lamps", ""))
    cols = ["id", "title", "description", "brand", "base_colour", "gender"]
    return pd.DataFrame(rows, columns=[*cols, "master_category", "sub_category", "article_type", "attributes"])


def hm_frame() -> pd.DataFrame:
    rows = [
        (
            f"0{700 + i:09d}",
            ["Strap top", "Tank", "Basic vest"][i % 3],
            "Jersey top with narrow straps.",
            ["Black", "White"][i % 2],
        )
        + ("Ladieswear", "Garment Upper body", "Vest top", ["Solid", "Stripe"][i % 2])
        for i in range(10)
    ]
    cols = ["article_id", "prod_name", "detail_desc", "colour_group_name", "index_group_name", "product_group_name"]
    return pd.DataFrame(rows, columns=[*cols, "product_type_name", "graphical_appearance_name"])


@pytest.fixture
def sources(tmp_path):
    myntra, hm = tmp_path / "myntra.parquet", tmp_path / "hm.parquet"
    myntra_frame().to_parquet(myntra)
    hm_frame().to_parquet(hm)
    return myntra, hm


def source_paths() -> set[tuple[str, ...]]:
    m, h = myntra_frame(), hm_frame()
    paths = {tuple(r) for r in m[["master_category", "sub_category", "article_type"]].itertuples(index=False)}
    return paths | {tuple(r) for r in h[["product_group_name", "product_type_name"]].itertuples(index=False)}


def make(tmp_path, sources, size: int, seed: int, name: str) -> tuple[pd.DataFrame, scale.ScaleReport]:
    src = scale.load_sources(*sources)
    report = scale.write(tmp_path / name, size, seed=seed, src=src, chunk=97)  # several chunks, one not full
    return pd.read_parquet(tmp_path / name), report


def test_same_seed_gives_the_same_file_and_another_seed_other_titles(tmp_path, sources):
    a, _ = make(tmp_path, sources, 400, 0, "a.parquet")
    b, _ = make(tmp_path, sources, 400, 0, "b.parquet")
    c, _ = make(tmp_path, sources, 400, 1, "c.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 400 and list(a.columns) == list(scale.COLUMNS)
    assert (a.title != c.title).mean() > 0.5


def test_titles_are_distinct_from_each_other_and_from_every_source_title(tmp_path, sources):
    out, report = make(tmp_path, sources, 400, 0, "a.parquet")
    normalised = out.title.map(lambda t: " ".join(t.lower().split()))
    assert normalised.is_unique
    originals = {" ".join(t.lower().split()) for t in [*myntra_frame().title, *hm_frame().prod_name]}
    assert not set(normalised) & originals
    # the one-product "Lamps" leaf has a brand-less, colour-less title and no attribute words: every copy of it
    # collides with the source title "Lone Lamp" and gets the style suffix; 400 rows over 35 templates: 11 or 12 copies
    lamps = out[out.article_type == "Lamps"]
    assert len(lamps) in (11, 12) and lamps.title.str.startswith("Lone Lamp Style ").all()
    assert report.suffixed >= len(lamps)


def test_every_path_is_a_source_path_ids_unique_and_templates_of_the_same_leaf(tmp_path, sources):
    out, _ = make(tmp_path, sources, 300, 0, "a.parquet")
    assert out.id.is_unique
    paths = {
        tuple(x for x in row if x) for row in out[["master_category", "sub_category", "article_type"]].itertuples(index=False)
    }
    assert paths <= source_paths() and len(paths) == len(source_paths())
    m = myntra_frame().assign(source_id=lambda d: d.id.astype(str)).set_index("source_id")
    mine = out[out.source == "myntra"]
    np_paths = m.loc[mine.source_id, ["master_category", "sub_category", "article_type"]].to_numpy()
    assert (np_paths == mine[["master_category", "sub_category", "article_type"]].to_numpy()).all()
    assert set(out.platform) == {"scale"}


def test_brands_and_colours_come_from_the_same_leaf(tmp_path, sources):
    out, _ = make(tmp_path, sources, 300, 0, "a.parquet")
    shoes = out[out.article_type == "Sports Shoes"]
    assert set(shoes.brand) <= {"Nike", "Puma", "Roadster"} and set(shoes.base_colour) <= {"Blue", "Black", "Red", "Green"}
    assert set(out[out.source == "hm"].base_colour) <= {"Black", "White"}


def test_the_output_ingests_as_a_platform_with_the_source_taxonomy(db_url, factory, tmp_path, sources):
    out, _ = make(tmp_path, sources, 250, 0, "a.parquet")
    report = ingest(tmp_path / "a.parquet", platform="scale", db_url=db_url)
    assert report.inserted == 250 and report.labels_added == 250
    with factory() as s:
        assert s.scalar(select(func.count(Product.id)).join(Platform).where(Platform.name == "scale")) == 250
        assert s.scalar(select(func.count(Label.id))) == 250
        stored = {tuple(p.split(" > ")) for p in s.scalars(select(TaxonomyNode.path))}
    leaves = {p for p in stored if not any(q[: len(p)] == p and q != p for q in stored)}
    assert leaves == source_paths()
    assert ingest(tmp_path / "a.parquet", platform="scale", db_url=db_url).unchanged == 250


def test_cli_writes_the_catalogue_from_the_configured_sources(tmp_path, sources, monkeypatch, capsys):
    monkeypatch.setenv("CATALOG_DIR", str(sources[0]))
    monkeypatch.setenv("HM_CATALOG_DIR", str(sources[1]))
    out = tmp_path / "cli.parquet"
    assert main(["scale-catalogue", "--size", "120", "--out", str(out), "--seed", "3"]) == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 120 and set(frame.source) == {"myntra", "hm"}
    assert json.loads(capsys.readouterr().out.splitlines()[0])["size"] == 120


def test_a_size_below_one_is_refused(tmp_path, sources):
    with pytest.raises(ValueError, match="at least 1"):
        scale.write(tmp_path / "x.parquet", 0, src=scale.load_sources(*sources))
