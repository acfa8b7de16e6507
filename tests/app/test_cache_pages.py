"""The page caches added for speed (app/cache.py: node_products, prediction_csv) follow a curation action, a cache
hit runs no query beyond the version checks, and the review queue's reads do not grow with the number of items."""

from __future__ import annotations

import csv
import io
from contextlib import contextmanager

import pandas as pd
from sqlalchemy import event

from app import cache
from db import actions
from db import review as db_review
from db.session import get_sessionmaker, transaction
from db.users import operator
from tests.app.helpers import node_id


def perform(url: str, name: str, **kwargs) -> None:
    with transaction(get_sessionmaker(url)) as s:
        actions.perform(s, name, user=operator("tester"), **kwargs)


@contextmanager
def counted(factory):
    """The SQL statements run on `factory`'s engine inside the block (a list, filled as they run)."""
    engine = factory.kw["bind"]
    statements: list[str] = []
    listener = lambda conn, cursor, statement, *rest: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def test_node_products_follow_a_relabel_out_of_the_category(app_env, tree):
    leaf, other = tree.leaves()[0], tree.leaves()[1]
    shown = cache.node_products(node_id(app_env, leaf), limit=100)
    assert len(shown) == tree.products(leaf)  # from the slice file
    moved = shown[0]["id"]
    perform(app_env, "relabel_product", product_id=moved, node_id=node_id(app_env, other))
    after = [c["id"] for c in cache.node_products(node_id(app_env, leaf), limit=100)]
    assert moved not in after and len(after) == tree.products(leaf) - 1
    assert moved in [c["id"] for c in cache.node_products(node_id(app_env, other), limit=100)]


def test_a_node_products_cache_hit_runs_only_the_version_queries(app_env, tree):
    leaf = node_id(app_env, tree.leaves()[0])
    first = cache.node_products(leaf, limit=100)
    with counted(cache.factory()) as statements:
        again = cache.node_products(leaf, limit=100)
    assert again == first
    assert len(statements) == 1  # data_version: the last audit event id and the audit event count, in one query


def csv_rows(**filters) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(cache.prediction_csv(**filters).decode("utf-8"))))


def test_prediction_csv_follows_a_relabel_of_the_misplaced_product(app_env, with_predictions):
    wrong = with_predictions
    disagreeing = csv_rows(agreement="disagrees with label")
    assert [r["external_id"] for r in disagreeing] == [wrong.external_id]
    assert disagreeing[0]["label"] == wrong.label and disagreeing[0]["predicted"] == wrong.predicted
    perform(app_env, "relabel_product", product_id=wrong.product_id, node_id=node_id(app_env, wrong.predicted))
    assert csv_rows(agreement="disagrees with label") == []  # its label is now the predicted path
    relabelled = {r["external_id"]: r for r in csv_rows()}[wrong.external_id]
    assert relabelled["label"] == wrong.predicted and relabelled["agrees"] == "True"


def test_prediction_csv_is_keyed_by_its_filters(app_env, with_predictions, app_slice):
    every = csv_rows()
    assert len(every) == len(pd.read_parquet(app_slice))
    agreeing = csv_rows(agreement="agrees with label")
    assert len(agreeing) == len(every) - 1 and with_predictions.external_id not in {r["external_id"] for r in agreeing}


def test_the_review_queue_runs_as_many_queries_for_three_items_as_for_one(app_env, with_review):
    factory = cache.factory()
    with factory() as s, counted(factory) as one:
        assert len(db_review.queue(s, limit=1)) == 1
    with factory() as s, counted(factory) as three:
        assert len(db_review.queue(s, limit=3)) == len(with_review) == 3
    assert len(three) == len(one)


def test_the_job_status_poll_writes_only_while_a_job_is_queued_or_running(app_env, monkeypatch):
    import subprocess
    import sys

    from core import jobs as core_jobs
    from db import jobs as db_jobs

    reaped = []
    real_reap = db_jobs.reap
    monkeypatch.setattr(cache.jobs, "reap", lambda s: reaped.append(1) or real_reap(s))
    assert cache.latest_job("review") is None and reaped == []  # no job: a read only
    job_id = core_jobs.start(app_env, kind="review", user=operator("ann"), spawn=False)
    reaped.clear()  # starting a job reaps too
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid whose process has ended
    with transaction(get_sessionmaker(app_env)) as s:
        db_jobs.claim(s, job_id=job_id, pid=gone.pid)
    job = cache.latest_job("review")  # running, its process dead: reaped
    assert reaped == [1] and job.id == job_id and job.status == "failed" and "ended without finishing" in job.error
    assert cache.latest_job("review").status == "failed" and reaped == [1]  # finished: read only again
