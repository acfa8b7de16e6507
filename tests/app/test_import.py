"""The Import page (AppTest cannot upload, so the page is driven through its path-on-server box), its helpers
(app/imports.py) and the import job (core/steps/import_job.py, run in this process with the embedding stubbed:
tests/e2e/test_import_flow.py runs the real one)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sqlalchemy import func, select

from app import imports
from core import jobs
from core.data.ingest import IngestError
from core.embed.features import Features
from core.steps import import_job
from db import platforms, repo
from db import predictions as preds
from db.models import Job, Label, Platform, Product
from db.session import get_sessionmaker, transaction, upgrade
from tests.app.helpers import add_people, run_page
from tests.app.shown import shown

MONTH_1 = """sku,name,category,colour
A1,Blue running shoe,Footwear >> Shoes,blue
A2,Red sandal,Footwear >> Sandals,red
A3,Steel watch,Accessories >> Watches,grey
A4,Leather belt,Accessories >> Belts,brown
"""
# A1 unchanged, A2 retitled, A3 moved to another category, A4 left out of the file, A5 new
MONTH_2 = """sku,name,category,colour
A1,Blue running shoe,Footwear >> Shoes,blue
A2,Red summer sandal,Footwear >> Sandals,red
A3,Steel watch,Accessories >> Jewellery,grey
A5,Canvas sneaker,Footwear >> Shoes,white
"""
PHOTOS = {"Z1": (200, 30, 30), "Z2": (30, 200, 30), "Z3": (30, 30, 200)}  # a photo-only catalogue, Fashion-MNIST's shape
PHOTO_ONLY = """id,file,category
Z1,img/Z1.png,Trouser
Z2,img/Z2.png,Sneaker
Z3,img/Z3.png,Bag
"""
BAD = """sku,name,category
B1,Blue shoe,Footwear > Shoes
,Red shoe,Footwear > Shoes
B3,,Footwear > Shoes
B4,Watch,Accessories >  > Watches
"""


@pytest.fixture
def import_env(tmp_path, monkeypatch) -> str:
    """An empty, migrated SQLite database as DATABASE_URL, DATA_DIR in the test's folder; returns the URL."""
    url = f"sqlite:///{tmp_path / 'import.db'}"
    upgrade(url)
    add_people(url)  # the page runs signed in (run_page)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return url


@pytest.fixture
def stub_embed(monkeypatch) -> list:
    """The import job's embed step, recorded instead of run (no encoders in page tests)."""
    calls = []

    def fake_embed(db_url, *, progress=None):
        with get_sessionmaker(db_url)() as s:
            n = s.scalar(select(func.count(Product.id)))
        calls.append(n)
        return Features(np.arange(n), masks={"title": np.ones(n, dtype=bool)})

    monkeypatch.setattr(import_job, "embed", fake_embed)
    return calls


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def write_photos(folder, colours: dict[str, tuple[int, int, int]]) -> None:
    """A real 8x8 PNG of each colour, as img/<id>.png."""
    (folder / "img").mkdir(exist_ok=True)
    for pid, colour in colours.items():
        Image.new("RGB", (8, 8), colour).save(folder / "img" / f"{pid}.png")


def open_file(path):
    at = run_page("import_page")
    at.text_input(key="import_path").set_value(str(path)).run()
    assert not at.exception, at.exception
    return at


def products(url: str) -> dict[str, tuple[str, str | None]]:
    """{external id: (title, platform label path)} of every product."""
    with get_sessionmaker(url)() as s:
        rows = s.execute(select(Product.id, Product.external_id, Product.title)).all()
        labels = {
            pid: repo.get_node(s, node).path
            for pid, node in s.execute(select(Label.product_id, Label.node_id).where(Label.source == "platform"))
        }
    return {ext: (title, labels.get(pid)) for pid, ext, title in rows}


def press_import(at, url: str) -> int:
    """Press Import; the job is queued (its process not started: `no_spawn`) and run here; returns its id."""
    at.button(key="import_btn").click().run()
    assert not at.exception, at.exception
    with get_sessionmaker(url)() as s:
        job_id = s.scalar(select(func.max(Job.id)).where(Job.kind == "import"))
    ok = jobs.run_job(url, job_id)
    with get_sessionmaker(url)() as s:
        assert ok, s.get(Job, job_id).error
    return job_id


# ---------------------------------------------------------------- helpers


def test_server_file_accepts_only_an_existing_csv_or_parquet_file(tmp_path):
    good = write(tmp_path, "shop.csv", "id,title\n1,a\n")
    write(tmp_path, "notes.txt", "hello")
    assert imports.server_file("  ") == (None, None)
    assert imports.server_file(str(good)) == (good.resolve(), None)
    assert imports.server_file(str(tmp_path / "gone.csv")) == (None, "No such file on the server.")
    assert imports.server_file(str(tmp_path)) == (None, "That is not a file (a folder?).")
    assert imports.server_file(str(tmp_path / "notes.txt")) == (None, "Not a .csv or .parquet file.")


def test_an_upload_is_kept_under_the_data_folder_by_content_hash(import_env, tmp_path):
    first = imports.save_upload("Shop Export.CSV", b"id,title\n1,a\n")
    assert first.parent == tmp_path / "data" / "imports" and first.suffix == ".csv" and len(first.stem) == 64
    assert first.read_bytes() == b"id,title\n1,a\n"
    assert imports.save_upload("again.csv", b"id,title\n1,a\n") == first  # the same content: the same file
    assert imports.save_upload("next.csv", b"id,title\n2,b\n") != first
    assert [p.name for p in first.parent.iterdir() if p.name.startswith(".")] == []  # no half-written file left
    with pytest.raises(ValueError, match="not a .csv or .parquet file"):
        imports.save_upload("shop.xlsx", b"PK")


def test_the_mapping_is_guessed_from_column_names_and_a_remembered_one_is_found_by_its_columns():
    columns = ["SKU", "Product_Name", "Category", "brand", "photo"]
    guess = imports.guess_mapping(columns)
    assert (guess["id"], guess["title"], guess["path"], guess["brand"], guess["image"]) == (
        "SKU",
        "Product_Name",
        "Category",
        "brand",
        "photo",
    )
    assert guess["levels"] == [] and guess["description"] is None
    levels = imports.guess_mapping(["id", "title", "master_category", "sub_category", "article_type", "category"])
    assert levels["levels"] == ["master_category", "sub_category", "article_type"] and levels["path"] is None
    remembered = {
        "shop2": {"id": "SKU", "title": "Product_Name", "path": "Category", "levels": []},
        "shop3": {"id": "SKU", "title": "Product_Name", "path": "Category", "brand": "brand", "levels": []},
        "shop4": {"id": "code", "title": "Product_Name", "levels": []},
    }
    assert imports.fitting_platform(columns, remembered) == "shop3"  # the most specific of those that fit
    assert imports.fitting_platform(["SKU", "Product_Name", "Category"], remembered) == "shop2"
    assert imports.fitting_platform(["code", "title"], remembered) is None
    tie = {"a": remembered["shop2"], "b": remembered["shop2"]}
    assert imports.fitting_platform(columns, tie) is None


def test_check_frame_lists_every_problem_and_catches_a_name_the_separator_would_split_again():
    df = pd.DataFrame({"id": ["1", "2", "3"], "title": ["a", "b", "c"], "cat": ["A >> B", "A > X >> B", "A >> >> C"]})
    mapping = import_job.mapping_from_dict({"id": "id", "title": "title", "path": "cat", "path_sep": ">>"})
    problems = import_job.check_frame(df, mapping=mapping, file="f.csv")
    assert [(p.row, p.column) for p in problems] == [(2, "cat"), (3, "cat")]
    assert "contains '>'" in problems[0].message and "empty level" in problems[1].message
    assert import_job.mapping_to_dict(mapping)["path_sep"] == ">>"


# ---------------------------------------------------------------- the page


def test_the_page_shows_the_upload_limit_and_checks_a_typed_path(import_env, tmp_path):
    at = run_page("import_page")
    assert "200 MB" in at.caption[0].value and "server.maxUploadSize" in at.caption[0].value
    at.text_input(key="import_path").set_value(str(tmp_path / "missing.csv")).run()
    assert [e.value for e in at.error] == ["No such file on the server."]
    assert str(tmp_path / "missing.csv") in [t.value for t in at.text]  # what was typed, as text
    assert not at.get("dataframe")


def test_every_problem_is_listed_by_row_and_column_before_anything_is_written(import_env, tmp_path, no_spawn):
    at = open_file(write(tmp_path, "bad.csv", BAD))
    preview = at.dataframe[0].value
    assert list(preview.columns) == ["sku", "name", "category"] and len(preview) == 4
    assert (at.selectbox(key="map_id").value, at.selectbox(key="map_title").value) == ("sku", "name")
    assert at.radio(key="map_mode").value == "one path column" and at.selectbox(key="map_path").value == "category"
    at.text_input(key="import_new_platform").set_value("shop2").run()
    report = at.dataframe[1].value
    assert report[["row", "column"]].values.tolist() == [[2, "sku"], [3, "name"], [4, "category"]]
    assert "empty product id" in report["problem"][0] and "empty title" in report["problem"][1]
    assert "3 problem(s)" in at.error[0].value
    assert at.button(key="import_btn").disabled
    with get_sessionmaker(import_env)() as s:
        assert s.scalar(select(func.count(Product.id))) == 0 and s.scalar(select(func.count(Platform.id))) == 0
    assert no_spawn == []


def test_import_remembers_the_mapping_and_next_months_file_reimports_in_two_steps(import_env, tmp_path, no_spawn, stub_embed):
    at = open_file(write(tmp_path, "month1.csv", MONTH_1))
    at.text_input(key="map_sep").set_value(">>").run()
    at.text_input(key="import_new_platform").set_value("shop2").run()
    assert at.success[0].value == "4 rows checked: no problems."
    assert "Into platform shop2: 4 new products, 0 already there (updated where they changed)." in [t.value for t in at.text]
    job_id = press_import(at, import_env)
    assert no_spawn == [job_id] and stub_embed == [4]
    assert products(import_env) == {
        "A1": ("Blue running shoe", "Footwear > Shoes"),
        "A2": ("Red sandal", "Footwear > Sandals"),
        "A3": ("Steel watch", "Accessories > Watches"),
        "A4": ("Leather belt", "Accessories > Belts"),
    }
    with get_sessionmaker(import_env)() as s:
        job = s.get(Job, job_id)
        remembered = platforms.column_map(s, platform="shop2")
    assert job.status == "done" and job.params["platform"] == "shop2" and job.params["result"]["inserted"] == 4
    assert "predict: skipped, no model is active yet" in job.log
    assert (remembered["id"], remembered["title"], remembered["path"], remembered["path_sep"]) == (
        "sku",
        "name",
        "category",
        ">>",
    )
    at.run()
    assert "finished" in at.success[0].value  # and the job's outcome, on the page:
    assert at.text[1].value.startswith("imported into 'shop2': 4 new, 0 updated, 0 unchanged products; 4 embedded;")

    again = open_file(write(tmp_path, "month2.csv", MONTH_2))  # a new session: the file alone finds its platform
    assert again.selectbox(key="import_platform").value == "shop2"
    assert again.text_input(key="map_sep").value == ">>" and again.selectbox(key="map_id").value == "sku"
    assert "Into platform shop2: 1 new products, 3 already there (updated where they changed)." in [t.value for t in again.text]
    press_import(again, import_env)
    assert products(import_env) == {
        "A1": ("Blue running shoe", "Footwear > Shoes"),
        "A2": ("Red summer sandal", "Footwear > Sandals"),
        "A3": ("Steel watch", "Accessories > Jewellery"),
        "A4": ("Leather belt", "Accessories > Belts"),  # not in this month's file: kept
        "A5": ("Canvas sneaker", "Footwear > Shoes"),
    }
    with get_sessionmaker(import_env)() as s:
        result = s.scalar(select(Job).order_by(Job.id.desc())).params["result"]
        assert s.scalar(select(func.count(Product.id))) == 5 and s.scalar(select(func.count(Label.id))) == 5
    # A2's title changed and A3 moved to another of its platform's categories (both updated; A3's label changed),
    # A1 as it was, A4 not in the file
    assert (result["inserted"], result["updated"], result["unchanged"], result["not_in_file"]) == (1, 2, 1, 1)
    assert result["labels_changed"] == 1


def test_a_photo_only_catalogue_maps_without_a_title_imports_and_its_mapping_is_remembered(
    import_env, tmp_path, no_spawn, stub_embed
):
    write_photos(tmp_path, PHOTOS)
    at = open_file(write(tmp_path, "no_photo.csv", PHOTO_ONLY.replace("img/Z2.png", "")))
    assert at.selectbox(key="map_title").value is None and at.selectbox(key="map_image").value is None  # not guessable
    at.selectbox(key="map_image").set_value("file").run()
    at.text_input(key="import_new_platform").set_value("zalando2").run()
    assert imports.PHOTO_ONLY in [i.value for i in at.info]  # what happens, in the report
    assert at.dataframe[1].value[["row", "column"]].values.tolist() == [[2, "file"]]  # a photo-only row needs its photo
    assert "nothing to classify" in at.dataframe[1].value["problem"][0] and at.button(key="import_btn").disabled

    at.text_input(key="import_path").set_value(str(write(tmp_path, "zalando.csv", PHOTO_ONLY))).run()  # the fixed file
    assert at.success[0].value == "3 rows checked: no problems." and imports.PHOTO_ONLY in [i.value for i in at.info]
    press_import(at, import_env)
    with get_sessionmaker(import_env)() as s:
        rows = s.execute(select(Product.external_id, Product.title, Product.image_status)).all()
        remembered = platforms.column_map(s, platform="zalando2")
    assert sorted(rows) == [("Z1", "", "ok"), ("Z2", "", "ok"), ("Z3", "", "ok")]
    assert products(import_env) == {"Z1": ("", "Trouser"), "Z2": ("", "Sneaker"), "Z3": ("", "Bag")}
    assert (remembered["id"], remembered["title"], remembered["image"], remembered["path"]) == ("id", None, "file", "category")

    again = open_file(tmp_path / "zalando.csv")  # a new session: the platform and its photo-only mapping come back
    assert again.selectbox(key="import_platform").value == "zalando2"
    assert again.selectbox(key="map_title").value is None and again.selectbox(key="map_image").value == "file"
    assert "Into platform zalando2: 0 new products, 3 already there (updated where they changed)." in [
        t.value for t in again.text
    ]


def test_a_mapping_with_neither_title_nor_image_is_refused_saying_what_is_needed(import_env, tmp_path, no_spawn):
    write_photos(tmp_path, PHOTOS)
    at = open_file(write(tmp_path, "shop.csv", "sku,name,photo,category\nZ1,Red bag,img/Z1.png,Bag\n"))
    at.text_input(key="import_new_platform").set_value("shop2").run()
    assert at.success[0].value == "1 rows checked: no problems."  # title and image guessed from the names
    at.selectbox(key="map_title").set_value(None).run()
    at.selectbox(key="map_image").set_value(None).run()
    assert [i.value for i in at.info][0] == f"Still to pick: {imports.TITLE_OR_IMAGE}."
    assert "Image column for a photo-only catalogue" in imports.TITLE_OR_IMAGE
    assert not at.success and "import_btn" not in [b.key for b in at.button]  # no report, nothing to press
    at.selectbox(key="map_image").set_value("photo").run()  # a photo alone is enough
    assert at.success[0].value == "1 rows checked: no problems." and not at.button(key="import_btn").disabled
    with get_sessionmaker(import_env)() as s:
        assert s.scalar(select(func.count(Product.id))) == 0 and no_spawn == []


def test_the_form_survives_a_run_without_a_file(import_env, tmp_path):
    """Replacing an uploaded file runs the page once without a file; Streamlit may then forget the values of the widgets
    that run did not draw, and the browser redraws them empty (tests/e2e/test_import_flow.py met it; AppTest keeps
    them, so the forgetting is done here): the mapping and the platform typed stay."""
    path = write(tmp_path, "month1.csv", MONTH_1)
    at = open_file(path)
    at.text_input(key="map_sep").set_value(">>").run()
    at.selectbox(key="map_description").set_value("colour").run()
    at.text_input(key="import_new_platform").set_value("shop2").run()
    at.text_input(key="import_path").set_value("").run()
    assert not at.get("selectbox")  # no file: no form
    for key in imports.FORM_KEYS:
        if key in at.session_state:
            del at.session_state[key]
    at.text_input(key="import_path").set_value(str(path)).run()
    assert at.text_input(key="map_sep").value == ">>" and at.selectbox(key="map_description").value == "colour"
    assert at.text_input(key="import_new_platform").value == "shop2"
    assert at.success[0].value == "4 rows checked: no problems."


def test_a_remembered_mapping_fills_the_form_when_its_platform_is_picked(import_env, tmp_path):
    with transaction(get_sessionmaker(import_env)) as s:
        platforms.remember_column_map(s, platform="shop2", mapping={"id": "code", "title": "label", "brand": "maker"})
        platforms.remember_column_map(s, platform="shop3", mapping={"id": "code", "title": "label", "levels": ["l1", "l2"]})
    path = write(tmp_path, "f.csv", "code,label,maker,l1,l2\n1,Shoe,Acme,Footwear,Shoes\n")
    at = open_file(path)
    assert at.selectbox(key="import_platform").value == "shop3"  # its mapping names more of the file's columns
    assert at.radio(key="map_mode").value == "level columns" and at.multiselect(key="map_levels").value == ["l1", "l2"]
    at.selectbox(key="import_platform").set_value("shop2").run()
    assert at.selectbox(key="map_brand").value == "maker" and at.radio(key="map_mode").value == "no category"
    assert at.success[0].value == "1 rows checked: no problems."


def test_what_the_file_holds_is_shown_as_text_never_as_markdown(import_env, tmp_path):
    sneaky = "**bold** [click](http://example.com) :red[alarm]"
    path = write(tmp_path, "md.csv", f'id,title,category\n,"{sneaky}",Footwear\n')
    at = open_file(path)
    at.text_input(key="import_new_platform").set_value("# shop *2*").run()
    assert sneaky in at.dataframe[0].value["title"].tolist()
    markdown = [e.value for kind in ("markdown", "caption", "error", "success", "info", "warning") for e in at.get(kind)]
    assert all(sneaky not in m and "shop *2*" not in m for m in markdown)


def test_a_second_import_waits_for_the_running_one(import_env, tmp_path, no_spawn):
    at = open_file(write(tmp_path, "month1.csv", MONTH_1))
    at.text_input(key="map_sep").set_value(">>").run()
    at.text_input(key="import_new_platform").set_value("shop2").run()
    at.button(key="import_btn").click().run()
    assert not at.exception, at.exception
    at.run()
    assert at.button(key="import_btn").disabled and len(no_spawn) == 1
    assert "import job #1" in shown(at.get("progress")[0].proto.text)


def test_a_file_changed_after_checking_fails_the_job_and_writes_nothing(import_env, tmp_path, no_spawn, stub_embed):
    path = write(tmp_path, "month1.csv", MONTH_1)
    at = open_file(path)
    at.text_input(key="map_sep").set_value(">>").run()
    at.text_input(key="import_new_platform").set_value("shop2").run()
    at.button(key="import_btn").click().run()
    path.write_text(BAD.replace(">", ">>"))  # before the job's process reads it
    with get_sessionmaker(import_env)() as s:
        job_id = s.scalar(select(Job.id))
    assert not jobs.run_job(import_env, job_id)
    with get_sessionmaker(import_env)() as s:
        job = s.get(Job, job_id)
        assert s.scalar(select(func.count(Product.id))) == 0 and platforms.column_map(s, platform="shop2") is None
    assert job.status == "failed" and "empty product id" in job.error and stub_embed == []
    at.run()
    assert "failed: nothing was imported." in shown(at.error[0].value)


# ---------------------------------------------------------------- the job's steps


def test_the_job_predicts_with_the_active_model_and_says_what_each_step_did(import_env, tmp_path, monkeypatch, stub_embed):
    predicted = []
    monkeypatch.setattr(import_job, "predict", lambda url, *, progress, log: predicted.append(url) or 7)
    with transaction(get_sessionmaker(import_env)) as s:
        version = preds.register_model_version(s, name="m", metrics={}, params={}, artifact=None)
        preds.activate_model_version(s, version_id=version.id, actor="test")
    lines: list[str] = []
    mapping = {"id": "sku", "title": "name", "path": "category", "path_sep": ">>"}
    result = import_job.run_import(
        import_env, file=str(write(tmp_path, "m.csv", MONTH_1)), platform="shop2", mapping=mapping, name="m.csv", log=lines.append
    )
    assert predicted == [import_env] and stub_embed == [4]
    assert result == {
        "platform": "shop2",
        "inserted": 4,
        "updated": 0,
        "unchanged": 0,
        "not_in_file": 0,
        "labels_changed": 0,
        "embedded": 4,
        "predicted": 7,
    }
    assert lines[0].startswith("ingest: m.csv: 4 rows -> 4 new, 0 updated, 0 unchanged products")
    assert lines[1] == "the column mapping is remembered for platform 'shop2'"
    assert lines[2].startswith("embed: 4 products (title: 4)")
    assert lines[-1] == "imported into 'shop2': 4 new, 0 updated, 0 unchanged products; 4 embedded; 7 predicted"


def test_the_job_refuses_a_bad_file_before_writing(import_env, tmp_path, stub_embed):
    with pytest.raises(IngestError, match="3 problem"):
        import_job.run_import(
            import_env,
            file=str(write(tmp_path, "bad.csv", BAD)),
            platform="shop2",
            mapping={"id": "sku", "title": "name", "path": "category"},
        )
    with get_sessionmaker(import_env)() as s:
        assert s.scalar(select(func.count(Platform.id))) == 0
    assert stub_embed == []
