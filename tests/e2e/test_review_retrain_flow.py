"""Real browser: relabel a product on the Review page, press Retrain on the Models page, wait for the new
version to be trained (in a background process) and active, and see the product's new prediction."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from core.data.split import fixed_split
from core.steps.catalogue import load_catalogue
from core.steps.predict import predict
from core.steps.train import train
from db import predictions as preds
from db import repo, review
from db.models import Prediction, Product, TaxonomyNode
from db.session import get_sessionmaker, transaction
from tests.e2e.conftest import screenshot
from tests.e2e.test_taxonomy_flow import busy_done

pytestmark = pytest.mark.e2e


@pytest.fixture
def first_model(app_db, app_data_dir, monkeypatch):
    """Model version #1 trained and predicted with the real encoders (its embeddings fill the app's cache)."""
    monkeypatch.setenv("DATA_DIR", str(app_data_dir))
    version = train(app_db, log=lambda *_: None)
    predict(app_db, log=lambda *_: None)
    return version


def queue_one_product(app_db) -> dict:
    """Put a training-split product of the biggest leaf in the review queue, suggesting a sibling leaf."""
    factory = get_sessionmaker(app_db)
    with factory() as s:
        cat = load_catalogue(s)
        rows = repo.taxonomy_rows(s)
    split = fixed_split(cat)
    leaves = [r for r in rows if r["children"] == 0 and r["products"]]
    big = max(leaves, key=lambda r: r["products"])
    sibling = max((r for r in leaves if r["parent_id"] == big["parent_id"] and r["id"] != big["id"]), key=lambda r: r["products"])
    row = next(i for i in split.fit if " > ".join(cat.labels[i]) == big["path"])
    product_id = int(cat.product_ids[row])
    with transaction(factory) as s:
        review.replace_open_items(
            s,
            run_key="e2e",
            rows=[
                {
                    "product_id": product_id,
                    "score": 0.95,
                    "self_confidence": 0.05,
                    "margin": -0.8,
                    "flagged": True,
                    "label_node_id": big["id"],
                    "suggested_node_id": sibling["id"],
                    "suggested_confidence": 0.9,
                    "levels": [],
                }
            ],
        )
        title = s.get(Product, product_id).title
    return {"product_id": product_id, "title": title, "old": big["path"], "new": sibling["path"]}


def test_relabel_on_review_then_retrain_and_see_the_new_prediction(page, app_url, app_db, first_model):
    item = queue_one_product(app_db)
    page.goto(f"{app_url}/review")
    expect(page.get_by_role("heading", name="Review")).to_be_visible()
    busy_done(page)
    expect(page.get_by_role("heading", name=item["title"])).to_be_visible()
    expect(page.get_by_text(f"Suggested: {item['new']}")).to_be_visible()
    screenshot(page, "review_item")
    page.get_by_role("button", name="Accept suggestion").click()
    expect(page.get_by_text(f"labelled '{item['new']}'")).to_be_visible()
    busy_done(page)
    with get_sessionmaker(app_db)() as s:
        assert repo.product_label(s, item["product_id"])[0].path == item["new"]

    page.get_by_role("link", name="Models").click()
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    busy_done(page)
    page.get_by_role("button", name="Retrain").click()
    expect(page.get_by_text(re.compile(r"retrain job #\d+"))).to_be_visible(timeout=30_000)
    page.reload()  # the job is not tied to the browser session
    expect(page.get_by_text(re.compile(rf"finished: .*model version #{first_model + 1} active"))).to_be_visible(timeout=240_000)
    busy_done(page)
    screenshot(page, "models_after_retrain")
    expect(page.get_by_role("heading", name="Compare")).to_be_visible()

    factory = get_sessionmaker(app_db)
    with factory() as s:
        active = preds.active_model_version(s)
        assert active.id == first_model + 1 and active.params["predicted_key"]
        leaf = s.scalars(
            select(TaxonomyNode.path)
            .join(Prediction, Prediction.node_id == TaxonomyNode.id)
            .where(Prediction.model_version_id == active.id, Prediction.product_id == item["product_id"])
            .order_by(Prediction.level.desc())
        ).first()
    assert leaf == item["new"], f"the retrained model predicts {leaf!r} for the relabelled product"
    page.get_by_role("link", name="Predictions").click()
    expect(page.get_by_role("heading", name="Predictions")).to_be_visible()
    busy_done(page)
    expect(page.get_by_text(re.compile(rf"^Model version #{active.id} · "))).to_be_visible()
    page.get_by_label("Category (label or prediction)").click()
    page.keyboard.type(item["new"])
    page.keyboard.press("Enter")
    busy_done(page)
    card = page.get_by_text(item["title"]).first
    expect(card).to_be_visible()
    expect(page.get_by_text(re.compile(rf"predicted: {re.escape(item['new'])} · agrees")).first).to_be_visible()
    screenshot(page, "predictions_after_retrain")
