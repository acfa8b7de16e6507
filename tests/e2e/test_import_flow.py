"""Real browser: upload a shop's CSV on the Import page, map its columns, see the validation report name the bad
row, upload the corrected file, import it (a background job: ingest, embed, predict with the active model), and
find the products on the Predictions page with their predictions."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from core.steps.predict import predict
from core.steps.train import train
from db import predictions as preds
from db.models import Job, Platform, Prediction, Product
from db.session import get_sessionmaker
from tests.e2e.conftest import screenshot

IMPORT_DEADLINE_MS = 120_000  # the import job: 5 new titles embedded, every product predicted (about 30 s on 2 cores)
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]  # the first model (real encoders) takes most of it
LEAVES = ("Footwear > Shoes > Casual Shoes", "Accessories > Watches > Watches", "Footwear > Shoes > Sports Shoes")


@pytest.fixture(scope="module")
def app_frame(catalog_frame):
    """This module's app products (replacing the harness's 150): 20 with photos from each of three big leaves, so the
    first model trains in well under a minute."""
    path = catalog_frame.master_category + " > " + catalog_frame.sub_category + " > " + catalog_frame.article_type
    df = catalog_frame[(catalog_frame.image != "") & path.isin(LEAVES)]
    return df.groupby("article_type", group_keys=False).sample(n=20, random_state=1).sort_values("id")


@pytest.fixture
def first_model(app_db, app_data_dir, monkeypatch):
    """An active model version trained and predicted on the app's products with the real encoders (as in
    test_review_retrain_flow.py): the import's predict step needs one."""
    monkeypatch.setenv("DATA_DIR", str(app_data_dir))
    version = train(app_db, log=lambda *_: None)
    predict(app_db, log=lambda *_: None)
    return version


def shop_csv(folder, *, fixed: bool):
    """A small shop export (id, title, category) in the app's categories; row 3 has an empty id unless `fixed`."""
    rows = [
        ("S-100", "Men Brown Leather Casual Shoes", LEAVES[0]),
        ("S-101", "Women White Canvas Casual Shoes", LEAVES[0]),
        ("S-102" if fixed else "", "Men Navy Suede Casual Shoes", LEAVES[0]),
        ("S-103", "Men Black Analog Watch", LEAVES[1]),
        ("S-104", "Women Rose Gold Chronograph Watch", LEAVES[1]),
    ]
    path = folder / ("shop-fixed.csv" if fixed else "shop.csv")
    path.write_text("id,title,category\n" + "".join(f'{i},"{t}","{c}"\n' for i, t, c in rows), encoding="utf-8")
    return path, rows


def whole_page(page, name: str) -> None:
    """A screenshot of the whole page: the app scrolls its main area itself, so the window is made tall enough."""
    page.set_viewport_size({"width": 1400, "height": 2000})
    screenshot(page, name)
    page.set_viewport_size({"width": 1400, "height": 1000})


def upload(app_page, path) -> None:
    with app_page.rerun():
        app_page.page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))


def test_upload_map_validate_fix_import_and_see_the_predictions(app_page, app_db, app_frame, first_model, tmp_path):
    page, factory = app_page.page, get_sessionmaker(app_db)
    bad, _ = shop_csv(tmp_path, fixed=False)
    app_page.open("import")
    expect(page.get_by_role("heading", name="Import")).to_be_visible()
    expect(page.get_by_text("Uploads are limited to 200 MB")).to_be_visible()
    upload(app_page, bad)
    expect(page.get_by_text("shop.csv: 5 rows, 3 columns; the first 5:")).to_be_visible()
    expect(page.get_by_role("combobox", name="Product id (required)")).to_have_value("id")  # mapped from the names
    expect(page.get_by_role("combobox", name="Path column (e.g. 'Footwear > Shoes')")).to_have_value("category")
    platform_box = page.get_by_label("New platform name")
    platform_box.fill("shop2")
    with app_page.rerun():
        platform_box.press("Enter")
    expect(page.get_by_text("1 problem(s), nothing will be imported")).to_be_visible()
    expect(page.get_by_text("row 3, column 'id': empty product id")).to_be_visible()
    expect(page.get_by_role("button", name="Import", exact=True)).to_be_disabled()
    whole_page(page, "import_validation_report")
    with factory() as s:
        assert s.scalar(select(Platform).where(Platform.name == "shop2")) is None  # nothing written

    fixed, rows = shop_csv(tmp_path, fixed=True)
    upload(app_page, fixed)
    expect(page.get_by_text("5 rows checked: no problems.")).to_be_visible()
    expect(page.get_by_text("Into platform shop2: 5 new products, 0 already there")).to_be_visible()
    expect(page.get_by_role("button", name="Import", exact=True)).to_be_enabled()
    with app_page.rerun():
        page.get_by_role("button", name="Import", exact=True).click()
    said = page.get_by_text(re.compile(r"import job #\d+")).first  # the page names the job it queued (under load the
    expect(said).to_be_visible()  # run that writes it can end after the rerun waited on above)
    shown_id = int(re.search(r"import job #(\d+)", said.inner_text()).group(1))
    with factory() as s:
        (job_id,) = s.scalars(select(Job.id).where(Job.kind == "import")).all()
    assert job_id == shown_id
    expect(page.get_by_text(re.compile(rf"import job #{job_id} .*finished"))).to_be_visible(timeout=IMPORT_DEADLINE_MS)
    app_page.settle()
    expect(
        page.get_by_text(
            re.compile(rf"^imported into 'shop2': 5 new, 0 updated, 0 unchanged products; .* {len(app_frame) + 5} predicted$")
        )
    ).to_be_visible()
    whole_page(page, "import_done")

    with factory() as s:
        active = preds.active_model_version(s)
        ids = dict(s.execute(select(Product.external_id, Product.id).join(Platform).where(Platform.name == "shop2")).all())
        predicted = set(s.scalars(select(Prediction.product_id).where(Prediction.model_version_id == active.id)))
    assert active.id == first_model and sorted(ids) == [r[0] for r in rows]
    assert set(ids.values()) <= predicted

    with app_page.rerun():
        page.get_by_role("link", name="Predictions").click()
    expect(page.get_by_role("heading", name="Predictions")).to_be_visible()
    page.get_by_label("Platforms").click()
    page.keyboard.type("shop2")
    with app_page.rerun():
        page.keyboard.press("Enter")
    for _, title, _ in rows:
        expect(page.get_by_text(title, exact=True)).to_be_visible()
    expect(page.get_by_text(re.compile(r"^predicted: ")).first).to_be_visible()
    page.keyboard.press("Escape")  # close the platform list
    screenshot(page, "predictions_after_import")
