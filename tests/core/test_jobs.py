"""Background jobs: one at a time per kind, progress and log in the jobs table, failures recorded, dead
processes reaped; and the retrain job's contract: the previous model stays active unless it succeeds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from core import jobs
from core.steps.predict import predict
from core.steps.retrain import retrain
from core.steps.train import train
from db import curation, repo
from db import jobs as db_jobs
from db import predictions as preds
from db.models import Job, ModelVersion, Prediction, Product
from db.repo import CurationError
from db.session import transaction
from tests.core.conftest import quiet


def test_only_one_job_of_a_kind_at_a_time(factory, db_url):
    first = jobs.start(db_url, kind="retrain", actor="ann", spawn=False)
    with pytest.raises(CurationError, match=f"#{first}.*already running"):
        jobs.start(db_url, kind="retrain", actor="bob", spawn=False)
    other_kind = jobs.start(db_url, kind="review", actor="bob", spawn=False)
    with factory() as s:
        assert s.scalar(select(func.count(Job.id))) == 2 and s.get(Job, other_kind).params["actor"] == "bob"
    with transaction(factory) as s:
        db_jobs.finish(s, job_id=first)
    assert jobs.start(db_url, kind="retrain", actor="bob", spawn=False) > first
    with pytest.raises(ValueError, match="unknown job kind"):
        jobs.start(db_url, kind="mine bitcoin", actor="x", spawn=False)


def test_run_job_records_progress_log_and_result(factory, db_url):
    def runner(url, params, *, progress, log):
        log(f"hello from {params['actor']}")
        progress("train", 3, 6)
        return {"model_version_id": 7}

    job_id = jobs.start(db_url, kind="retrain", actor="ann", spawn=False)
    assert jobs.run_job(db_url, job_id, runners={"retrain": runner})
    with factory() as s:
        job = s.get(Job, job_id)
        assert job.status == "done" and job.progress == 1.0 and job.error is None
        assert "hello from ann" in job.log and job.params["result"] == {"model_version_id": 7}
        assert job.pid == os.getpid() and job.finished_at is not None


def test_a_failing_job_is_marked_failed_with_its_error(factory, db_url):
    def runner(url, params, *, progress, log):
        progress("train", 1, 2)
        raise ValueError("the taxonomy has no products")

    job_id = jobs.start(db_url, kind="retrain", actor="ann", spawn=False)
    assert not jobs.run_job(db_url, job_id, runners={"retrain": runner})
    with factory() as s:
        job = s.get(Job, job_id)
        assert job.status == "failed" and "ValueError: the taxonomy has no products" in job.error
        assert job.progress == pytest.approx(0.1 + 0.8 * 0.5)  # where it stopped
    assert jobs.start(db_url, kind="retrain", actor="ann", spawn=False) > job_id  # a failed job does not block


def test_reap_marks_a_job_whose_process_died_as_failed(factory, db_url):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    job_id = jobs.start(db_url, kind="retrain", actor="ann", spawn=False)
    with transaction(factory) as s:
        db_jobs.claim(s, job_id=job_id, pid=dead.pid)
    with transaction(factory) as s:
        assert db_jobs.reap(s) == [job_id]
    with factory() as s:
        job = s.get(Job, job_id)
        assert job.status == "failed" and f"pid {dead.pid}" in job.error


def test_retrain_activates_a_new_version_with_predictions_for_every_product(small_db, factory):
    first = train(small_db, log=quiet)
    with transaction(factory) as s:
        flats = repo.node_by_path(s, "Footwear > Shoes > Flats")
        for product in s.scalars(select(Product).where(Product.title.like("%Heels"))).all()[:40]:
            curation.relabel_product(s, product_id=product.id, node_id=flats.id, actor="t")
    second = retrain(small_db, actor="ann", log=quiet)
    assert second == first + 1
    with factory() as s:
        assert preds.active_model_version(s).id == second and s.get(ModelVersion, first).status == "archived"
        assert preds.prediction_count(s, model_version_id=second) == 240
        version = s.get(ModelVersion, second)
        assert version.params["predicted_key"] and version.params["split"].startswith("hash")
        assert set(version.metrics["test_product_ids"]) == set(s.get(ModelVersion, first).metrics["test_product_ids"])
    # the label-free parts were fitted on the same products: reused from the cache, not refitted
    assert any("reused" in line for line in _log_of_retrain(small_db))


def _log_of_retrain(url) -> list[str]:
    lines: list[str] = []
    retrain(url, log=lines.append)
    return lines


def test_a_failed_retrain_leaves_the_previous_version_active(small_db, factory, monkeypatch):
    first = train(small_db, log=quiet)
    predict(small_db, log=quiet)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr("core.classify.bundle.fit_model", broken)  # where the model set is fitted
    job_id = jobs.start(small_db, kind="retrain", actor="ann", spawn=False)
    assert not jobs.run_job(small_db, job_id)
    with factory() as s:
        assert preds.active_model_version(s).id == first
        assert s.scalar(select(func.count(ModelVersion.id))) == 1
        assert preds.prediction_count(s, model_version_id=first) == 240
        assert "out of memory" in s.get(Job, job_id).error


def test_a_killed_retrain_process_is_reaped_and_changes_nothing(small_db, factory):
    first = train(small_db, log=quiet)
    job_id = jobs.start(small_db, kind="retrain", actor="ann", spawn=False)
    process = jobs.launch(small_db, job_id)  # a real `python -m core job run` process
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with factory() as s:
            if s.get(Job, job_id).status == "running":
                break
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    with transaction(factory) as s:
        assert db_jobs.reap(s) == [job_id]
    with factory() as s:
        assert s.get(Job, job_id).status == "failed"
        assert preds.active_model_version(s).id == first
        assert s.scalar(select(func.count(ModelVersion.id))) == 1
        assert s.scalar(select(func.count(Prediction.id)).where(Prediction.model_version_id != first)) == 0


def test_reap_uses_the_heartbeat_for_other_hosts_and_fails_jobs_that_never_started(factory, db_url):
    from datetime import UTC, datetime, timedelta

    running = jobs.start(db_url, kind="retrain", actor="ann", spawn=False)
    queued = jobs.start(db_url, kind="review", actor="ann", spawn=False)
    with transaction(factory) as s:
        job = db_jobs.claim(s, job_id=running, pid=os.getpid())  # alive here, but pretend it runs elsewhere
        job.host = "another-host"
    with transaction(factory) as s:
        assert db_jobs.reap(s) == []  # fresh heartbeat, fresh queue entry
    old = datetime.now(UTC) - timedelta(minutes=10)
    with transaction(factory) as s:
        s.get(Job, running).heartbeat_at = old
        s.get(Job, queued).created_at = old
    with transaction(factory) as s:
        assert sorted(db_jobs.reap(s)) == sorted([running, queued])
    with factory() as s:
        assert "stopped reporting" in s.get(Job, running).error and "no process started it" in s.get(Job, queued).error


def test_a_job_whose_process_cannot_start_is_failed_at_once(factory, db_url, monkeypatch):
    def broken(url, job_id):
        raise OSError("no such interpreter")

    monkeypatch.setattr("core.jobs.launch", broken)
    with pytest.raises(OSError):
        jobs.start(db_url, kind="retrain", actor="ann")
    with factory() as s:
        job = s.scalars(select(Job)).one()
        assert job.status == "failed" and "no such interpreter" in job.error
    monkeypatch.undo()
