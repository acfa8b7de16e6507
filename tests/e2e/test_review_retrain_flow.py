"""Real browser: relabel a product on the Review page, press Retrain on the Models page, follow the job (a
background process) until the new version is active, and see the product's new prediction."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect
from sqlalchemy import select

from core.data.split import fixed_split
from core.steps.catalogue import load_catalogue
from core.steps.predict import predict
from core.steps.train import train
from db import predictions as preds
from db import repo, review
from db.jobs import HEARTBEAT_S
from db.models import Job, Prediction, Product, TaxonomyNode
from db.session import get_sessionmaker, transaction
from tests.e2e.conftest import screenshot

RETRAIN_DEADLINE_S = 420  # the retrain job, from Retrain pressed to done (about a minute on 2 cores today)
QUIET_S = 60  # the longest the page may show the same progress line before the job's own row is checked
# the test's own limit: the first model (real encoders, ~2-4 min cold), the app, the job's deadline, the steps
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(RETRAIN_DEADLINE_S + 480)]

SHOWN = """([prefix, last]) => {
  const line = document.body.innerText.split('\\n').find((l) => l.includes(prefix));
  return line !== undefined && line !== last ? line : null;
}"""


@pytest.fixture
def first_model(app_db, app_data_dir, monkeypatch):
    """Model version #1 trained and predicted with the real encoders (its embeddings fill the app's cache)."""
    monkeypatch.setenv("DATA_DIR", str(app_data_dir))
    version = train(app_db, log=lambda *_: None)
    predict(app_db, log=lambda *_: None)
    return version


def queue_one_product(app_db, tree) -> dict:
    """Put a training-split product of the biggest leaf in the review queue, suggesting its biggest sibling leaf."""
    leaves = tree.leaves()
    big = max(leaves, key=tree.products)
    parent = big.rsplit(" > ", 1)[0]
    sibling = max((p for p in leaves if p.rsplit(" > ", 1)[0] == parent and p != big), key=tree.products)
    factory = get_sessionmaker(app_db)
    with factory() as s:
        cat = load_catalogue(s)
        ids = {path: repo.node_by_path(s, path).id for path in (big, sibling)}
    row = next(i for i in fixed_split(cat).fit if " > ".join(cat.labels[i]) == big)
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
                    "label_node_id": ids[big],
                    "suggested_node_id": ids[sibling],
                    "suggested_confidence": 0.9,
                    "levels": [],
                }
            ],
        )
        title = s.get(Product, product_id).title
    return {"product_id": product_id, "title": title, "old": big, "new": sibling}


def job_state(factory, job_id: int) -> dict:
    with factory() as s:
        job = s.get(Job, job_id)
        beat = job.heartbeat_at or job.started_at or job.created_at
        beat = beat.replace(tzinfo=UTC) if beat.tzinfo is None else beat  # SQLite hands back naive UTC
        return {
            "status": job.status,
            "progress": job.progress or 0.0,
            "message": job.message,
            "error": job.error,
            "log": (job.log or "")[-1500:],
            "quiet_s": (datetime.now(UTC) - beat).total_seconds(),
        }


def stuck(state: dict, elapsed: float) -> str:
    """Why the job cannot be waited on any longer ('' while it may still finish in time)."""
    if state["status"] == "failed":
        return f"failed: {state['error']}"
    if state["status"] == "queued" and elapsed > QUIET_S:
        return f"was claimed by no process in {QUIET_S}s"
    if state["status"] == "running" and state["quiet_s"] > 3 * HEARTBEAT_S:
        return f"has a process silent for {state['quiet_s']:.0f}s"
    if state["status"] != "done" and elapsed > RETRAIN_DEADLINE_S:
        return f"is not done {RETRAIN_DEADLINE_S}s after it started"
    return ""


def follow_job(page, factory, job_id: int) -> dict:
    """Wait, following the progress line the Models page shows, until the job is done; returns its last state.

    Fails with the job's state, its log and the lines the page showed when it fails, when its process stops
    beating, when no process claims it within QUIET_S, or when it is not done RETRAIN_DEADLINE_S after it started.
    """
    started, shown, seen = time.monotonic(), None, []
    while True:
        state, elapsed = job_state(factory, job_id), time.monotonic() - started
        if why := stuck(state, elapsed):
            pytest.fail(
                f"retrain job #{job_id} {why} ({state['status']} at {state['progress']:.0%}: {state['message']})\n"
                f"the page showed: {seen}\nlog: {state['log']}"
            )
        if state["status"] == "done":
            return state
        wait_s = max(1.0, min(QUIET_S, RETRAIN_DEADLINE_S - elapsed + 1))
        try:
            line = page.wait_for_function(SHOWN, arg=[f"retrain job #{job_id} ", shown], timeout=wait_s * 1000, polling=250)
        except PlaywrightTimeout:
            continue  # nothing new on the page: the job's row decides
        shown = line.json_value()
        seen.append((round(elapsed), shown))


def test_relabel_on_review_then_retrain_and_see_the_new_prediction(app_page, app_db, app_tree, first_model):
    page, factory = app_page.page, get_sessionmaker(app_db)
    item = queue_one_product(app_db, app_tree)
    app_page.open("review")
    expect(page.get_by_role("heading", name="Review")).to_be_visible()
    expect(page.get_by_role("heading", name=item["title"])).to_be_visible()
    expect(page.get_by_text(f"Suggested: {item['new']}")).to_be_visible()
    screenshot(page, "review_item")
    with app_page.rerun():
        page.get_by_role("button", name="Accept suggestion").click()
    expect(page.get_by_text(f"labelled '{item['new']}'")).to_be_visible()
    with factory() as s:
        assert repo.product_label(s, item["product_id"])[0].path == item["new"]

    with app_page.rerun():
        page.get_by_role("link", name="Models").click()
    expect(page.get_by_role("heading", name="Models")).to_be_visible()
    with app_page.rerun():
        page.get_by_role("button", name="Retrain").click()
    with factory() as s:
        (job_id,) = s.scalars(select(Job.id).where(Job.kind == "retrain")).all()  # one job, queued by the button
    expect(page.get_by_text(re.compile(rf"retrain job #{job_id} "))).to_be_visible()
    app_page.reload()  # the job is not tied to the browser session
    follow_job(page, factory, job_id)
    new_version = first_model + 1
    finished = re.compile(rf"retrain job #{job_id} .*finished: .*model version #{new_version} active")
    expect(page.get_by_text(finished)).to_be_visible(timeout=30_000)  # the page refreshes the job's state every 2 s
    screenshot(page, "models_after_retrain")

    with factory() as s:
        active = preds.active_model_version(s)
        assert active.id == new_version and active.params["predicted_key"]
        leaf = s.scalars(
            select(TaxonomyNode.path)
            .join(Prediction, Prediction.node_id == TaxonomyNode.id)
            .where(Prediction.model_version_id == active.id, Prediction.product_id == item["product_id"])
            .order_by(Prediction.level.desc())
        ).first()
    assert leaf == item["new"], f"the retrained model predicts {leaf!r} for the relabelled product"
    with app_page.rerun():
        page.get_by_role("link", name="Predictions").click()
    expect(page.get_by_text(re.compile(rf"^Model version #{new_version} · "))).to_be_visible()
    page.get_by_label("Category (label or prediction)").click()
    page.keyboard.type(item["new"])
    with app_page.rerun():
        page.keyboard.press("Enter")
    expect(page.get_by_text(item["title"]).first).to_be_visible()
    expect(page.get_by_text(re.compile(rf"predicted: {re.escape(item['new'])} · agrees")).first).to_be_visible()
    screenshot(page, "predictions_after_retrain")
