"""Catalogue ingest: the happy path on real catalogue slices, idempotence, and every bad-input case."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import func, select

from core.cli import main as cli_main
from core.data.ingest import ColumnMap, IngestError
from core.steps.ingest import ingest
from db import curation, repo
from db.models import AuditEvent, Label, PlatformCategory, Product, TaxonomyNode
from db.session import transaction
from tests.conftest import CATALOG


def count(factory, model, *where):
    with factory() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def write_csv(tmp_path, text: str, name="cat.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD_CSV = "sku,name,category,picture\nA1,Red shirt,Apparel > Topwear > Shirts,\nA2,Blue jeans,Apparel > Bottomwear > Jeans,\n"
PATH_MAP = ColumnMap.parse(["id=sku", "title=name", "path=category", "image=picture", "description=none", "brand=none"])


def test_ingest_real_slice_creates_products_labels_and_tree(db_url, factory, slice_file, catalog_frame):
    path = slice_file(60)
    report = ingest(path, platform="myntra", db_url=db_url, images_root=CATALOG)
    assert (report.rows, report.inserted, report.labels_added) == (60, 60, 60)
    assert report.image_status == {"ok": 60} and report.images_checked == 60
    assert count(factory, Product) == 60 and count(factory, Label, Label.source == "platform") == 60
    with factory() as s:
        product = s.scalar(select(Product).order_by(Product.id).limit(1))
        row = catalog_frame[catalog_frame.id.astype(str) == product.external_id].iloc[0]
        node, source = repo.product_label(s, product.id)
        assert node.path == f"{row.master_category} > {row.sub_category} > {row.article_type}"
        assert source == "platform" and product.title == row.title
        assert product.attributes["gender"] == row.gender
        assert isinstance(product.attributes["attributes"], dict)  # JSON column parsed, not a string


def test_reingest_changes_nothing_and_skips_unchanged_images(db_url, factory, slice_file):
    path = slice_file(40)
    ingest(path, platform="myntra", db_url=db_url, images_root=CATALOG)
    events = count(factory, AuditEvent)
    again = ingest(path, platform="myntra", db_url=db_url, images_root=CATALOG)
    assert (again.inserted, again.updated, again.unchanged, again.labels_added, again.labels_changed) == (0, 0, 40, 0, 0)
    assert again.images_checked == 0 and again.image_status == {"ok": 40}
    assert count(factory, AuditEvent) == events  # a no-op ingest writes nothing, not even an audit row


def test_changed_rows_are_updated_and_relabelled(db_url, factory, tmp_path):
    ingest(write_csv(tmp_path, GOOD_CSV), platform="shop", db_url=db_url, mapping=PATH_MAP)
    changed = GOOD_CSV.replace("Red shirt", "Dark red shirt").replace("Bottomwear > Jeans", "Bottomwear > Denim")
    report = ingest(write_csv(tmp_path, changed), platform="shop", db_url=db_url, mapping=PATH_MAP)
    # A1's title changed, A2's category: both rows are updated (A2's platform category), one label moves
    assert (report.updated, report.unchanged, report.labels_changed, report.nodes_created) == (2, 0, 1, 1)
    with factory() as s:
        assert s.scalar(select(Product.title).where(Product.external_id == "A1")) == "Dark red shirt"
        pid = s.scalar(select(Product.id).where(Product.external_id == "A2"))
        assert repo.product_label(s, pid)[0].path == "Apparel > Bottomwear > Denim"
        category = s.get(PlatformCategory, s.get(Product, pid).platform_category_id)
        assert category.path == "Apparel > Bottomwear > Denim"


def test_same_ids_on_two_platforms_are_two_products(db_url, factory, tmp_path):
    ingest(write_csv(tmp_path, GOOD_CSV), platform="shop-a", db_url=db_url, mapping=PATH_MAP)
    ingest(write_csv(tmp_path, GOOD_CSV), platform="shop-b", db_url=db_url, mapping=PATH_MAP)
    assert count(factory, Product) == 4
    assert count(factory, TaxonomyNode) == 5  # one shared tree: Apparel, Topwear, Shirts, Bottomwear, Jeans


def test_reingest_after_merge_follows_the_curated_taxonomy(db_url, factory, tmp_path):
    ingest(write_csv(tmp_path, GOOD_CSV), platform="shop", db_url=db_url, mapping=PATH_MAP)
    with transaction(factory) as s:
        jeans = repo.node_by_path(s, "Apparel > Bottomwear > Jeans")
        shirts = repo.node_by_path(s, "Apparel > Topwear > Shirts")
        curation.merge_node(s, source_id=jeans.id, target_id=shirts.id, actor="t")
    report = ingest(write_csv(tmp_path, GOOD_CSV), platform="shop", db_url=db_url, mapping=PATH_MAP)
    assert report.labels_changed == 0 and report.nodes_created == 0
    with factory() as s:
        pid = s.scalar(select(Product.id).where(Product.external_id == "A2"))
        assert repo.product_label(s, pid)[0].path == "Apparel > Topwear > Shirts"


def test_limit_takes_the_first_rows(db_url, factory, slice_file):
    report = ingest(slice_file(30, with_images=False), platform="myntra", db_url=db_url, images_root=CATALOG, limit=7)
    assert report.rows == 7 and count(factory, Product) == 7


# ------------------------------------------------------------------ images


def test_broken_missing_and_remote_images_keep_the_product_text_only(db_url, factory, tmp_path):
    good = sorted((CATALOG / "images").glob("*.jpg"))[0]
    shutil.copy(good, tmp_path / "good.jpg")
    (tmp_path / "truncated.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "text.jpg").write_text("this is not an image")
    csv = (
        "sku,name,category,picture\n"
        "1,Good,A > B,good.jpg\n2,Cut,A > B,truncated.jpg\n3,Text,A > B,text.jpg\n"
        "4,Gone,A > B,nowhere.jpg\n5,Web,A > B,https://cdn.example/5.jpg\n6,None,A > B,\n"
    )
    report = ingest(write_csv(tmp_path, csv), platform="shop", db_url=db_url, mapping=PATH_MAP)
    assert report.inserted == 6
    assert report.image_status == {"ok": 1, "unreadable": 2, "missing": 1, "remote": 1, "none": 1}
    problems = "\n".join(report.image_problems)
    for name in ("truncated.jpg", "text.jpg", "nowhere.jpg"):
        assert name in problems
    with factory() as s:
        status = dict(s.execute(select(Product.external_id, Product.image_status)).all())
    assert status == {"1": "ok", "2": "unreadable", "3": "unreadable", "4": "missing", "5": "remote", "6": "none"}


def test_a_repaired_image_is_checked_again(db_url, factory, tmp_path):
    good = sorted((CATALOG / "images").glob("*.jpg"))[0]
    (tmp_path / "p.jpg").write_text("broken")
    csv = "sku,name,category,picture\n1,Shirt,A > B,p.jpg\n"
    ingest(write_csv(tmp_path, csv), platform="shop", db_url=db_url, mapping=PATH_MAP)
    shutil.copy(good, tmp_path / "p.jpg")
    report = ingest(write_csv(tmp_path, csv), platform="shop", db_url=db_url, mapping=PATH_MAP)
    assert report.images_checked == 1 and report.image_status == {"ok": 1} and report.updated == 1


# ------------------------------------------------------------------ bad input: clear errors, nothing written


def assert_rejected(db_url, factory, path, mapping, *fragments):
    with pytest.raises(IngestError) as err:
        ingest(path, platform="shop", db_url=db_url, mapping=mapping)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, message
    assert count(factory, Product) == 0 and count(factory, TaxonomyNode) == 0 and count(factory, AuditEvent) == 0
    return err.value


def test_missing_required_columns(db_url, factory, tmp_path):
    path = write_csv(tmp_path, "sku,name\n1,Shirt\n")
    assert_rejected(db_url, factory, path, PATH_MAP, "cat.csv", "missing required columns ['category']", "--map")


def test_duplicate_ids_name_both_rows(db_url, factory, tmp_path):
    path = write_csv(tmp_path, GOOD_CSV + "A1,Another,Apparel > Topwear > Shirts,\n")
    err = assert_rejected(db_url, factory, path, PATH_MAP, "row 3", "column 'sku'", "duplicate id 'A1' (first at row 1)")
    assert len(err.problems) == 1


def test_empty_titles(db_url, factory, tmp_path):
    path = write_csv(tmp_path, GOOD_CSV + "A3,  ,Apparel > Topwear > Shirts,\n")
    expected = "empty title and no photo: nothing to classify (id 'A3')"
    assert_rejected(db_url, factory, path, PATH_MAP, "row 3", "column 'name'", expected)


def test_malformed_paths(db_url, factory, tmp_path):
    path = write_csv(tmp_path, GOOD_CSV + "A3,Hat,Accessories >  > Hats,\n")
    assert_rejected(db_url, factory, path, PATH_MAP, "row 3", "column 'category'", "malformed category path")


def test_level_columns_with_a_gap(db_url, factory, tmp_path):
    path = write_csv(tmp_path, "id,title,l1,l2,l3\n1,Hat,Accessories,,Hats\n")
    mapping = ColumnMap.parse(["levels=l1,l2,l3", "description=none", "brand=none", "image=none"])
    assert_rejected(db_url, factory, path, mapping, "row 1", "column 'l2'", "deeper level is set")


def test_every_problem_is_listed_at_once(db_url, factory, tmp_path):
    path = write_csv(tmp_path, GOOD_CSV + "A1,,Apparel > Topwear > Shirts,\n,Cap,A > > B,\n")
    err = assert_rejected(db_url, factory, path, PATH_MAP, "4 problem(s); nothing was imported")
    assert [(p.row, p.column) for p in err.problems] == [(3, "sku"), (3, "name"), (4, "sku"), (4, "category")]


def test_non_utf8_text_names_row_and_column(db_url, factory, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("sku,name,category,picture\nA1,Caf\xe9 shirt,Apparel > Topwear,\n".encode("latin-1"))
    assert_rejected(db_url, factory, path, PATH_MAP, "latin1.csv", "row 1", "column 'name'", "invalid UTF-8 byte 0xe9")


def test_malformed_csv(db_url, factory, tmp_path):
    path = write_csv(tmp_path, "sku,name,category,picture\nA1,Shirt,A > B,,extra,fields\n")
    assert_rejected(db_url, factory, path, PATH_MAP, "cat.csv, row 1", "malformed CSV: 6 fields, the header has 4")


def test_unsupported_and_missing_files(db_url, factory, tmp_path):
    assert_rejected(db_url, factory, write_csv(tmp_path, "x", name="cat.xlsx"), PATH_MAP, "unsupported file type '.xlsx'")
    assert_rejected(db_url, factory, tmp_path / "nope.csv", PATH_MAP, "no such file")
    assert_rejected(db_url, factory, tmp_path, PATH_MAP, "no products.parquet or products.csv")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    assert_rejected(db_url, factory, tmp_path / "bad.parquet", PATH_MAP, "not a readable Parquet file")


def test_a_failed_reingest_leaves_earlier_data_untouched(db_url, factory, tmp_path):
    ingest(write_csv(tmp_path, GOOD_CSV), platform="shop", db_url=db_url, mapping=PATH_MAP)
    bad = GOOD_CSV.replace("Red shirt", "Changed") + "A9,,A > B,\n"
    with pytest.raises(IngestError):
        ingest(write_csv(tmp_path, bad), platform="shop", db_url=db_url, mapping=PATH_MAP)
    with factory() as s:
        assert sorted(s.scalars(select(Product.title))) == ["Blue jeans", "Red shirt"]
    assert count(factory, Product) == 2


def test_bad_column_mapping_is_explained():
    with pytest.raises(IngestError, match="Bad column mapping 'colour=x'"):
        ColumnMap.parse(["colour=x"])


def test_cli_reports_errors_with_exit_code_2(db_url, tmp_path, capsys):
    bad = write_csv(tmp_path, "sku,name\n1,Shirt\n")
    code = cli_main(
        [
            "--db",
            db_url,
            "ingest",
            "--catalog",
            str(bad),
            "--map",
            "id=sku",
            "--map",
            "title=name",
            "--map",
            "path=category",
            "--platform",
            "shop",
        ]
    )
    assert code == 2 and "missing required columns" in capsys.readouterr().err
    good = write_csv(tmp_path, GOOD_CSV, name="good.csv")
    code = cli_main(
        [
            "--db",
            db_url,
            "ingest",
            "--catalog",
            str(good),
            "--map",
            "id=sku",
            "--map",
            "title=name",
            "--map",
            "path=category",
            "--map",
            "image=picture",
            "--platform",
            "shop",
        ]
    )
    assert code == 0 and "2 new" in capsys.readouterr().out
