"""Background jobs: one at a time per kind, progress and log in the jobs table, failures recorded, dead
processes reaped; and the retrain job's contract: the previous model stays active unless it succeeds.

The retrain tests run on the synthetic catalogue of test_cli_steps (no label word in a title) with its stand-in
encoders recorded as the choice. The killed-retrain test starts a real `python -m core job run ID` process the
way `core.jobs.launch` does; a `sitecustomize.py` on the child's PYTHONPATH gives it the same stand-ins and
holds it at one point (training, saving the bundle, inside the final transaction) until the test sends SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import jobs
from core.data.ingest import ColumnMap
from core.embed.choice import EncoderChoice, record_encoders
from core.embed.encoders import ENCODERS
from core.steps.ingest import ingest
from core.steps.predict import predict
from core.steps.retrain import retrain
from core.steps.train import train
from db import curation, repo
from db import jobs as db_jobs
from db import predictions as preds
from db.models import Job, ModelVersion, Prediction, Product, TaxonomyNode
from db.repo import CurationError
from db.session import transaction
from db.users import operator
from tests.core.conftest import quiet
from tests.core.test_cli_steps import LEAVES, MAPPING, PER_LEAF, STAND_INS, child_pythonpath, make_catalogue
from tests.core.test_cli_steps import install_in_child as install_stand_ins

N_PRODUCTS = PER_LEAF * len(LEAVES)


@pytest.fixture
def stand_in_db(db_url, tmp_path, monkeypatch):
    """The synthetic catalogue of test_cli_steps (no label word in a title) in `db_url`; the stand-in encoders
    registered and recorded as the choice, so train and retrain embed through the real cache path."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    for name, encoder in STAND_INS.items():
        monkeypatch.setitem(ENCODERS, name, encoder)
    catalogue = make_catalogue(tmp_path / "catalogue")
    ingest(catalogue, platform="shop", db_url=db_url, mapping=ColumnMap.parse(MAPPING))
    record_encoders(EncoderChoice(text="stand-in-text", image="stand-in-image"))
    return db_url


def prediction_snapshot(factory) -> set[tuple]:
    with factory() as s:
        cols = (Prediction.model_version_id, Prediction.product_id, Prediction.level, Prediction.node_id, Prediction.confidence)
        return set(s.execute(select(*cols)).all())


def level3_predictions(factory, version_id: int) -> dict[str, str]:
    """{external id: predicted leaf path} of a model version."""
    with factory() as s:
        rows = s.execute(
            select(Product.external_id, TaxonomyNode.path)
            .join(Prediction, Prediction.product_id == Product.id)
            .join(TaxonomyNode, TaxonomyNode.id == Prediction.node_id)
            .where(Prediction.model_version_id == version_id, Prediction.level == 3)
        ).all()
    return dict(rows)


def test_only_one_job_of_a_kind_at_a_time(factory, db_url):
    first = jobs.start(db_url, kind="retrain", user=operator("ann"), spawn=False)
    with pytest.raises(CurationError, match=f"#{first}.*already running"):
        jobs.start(db_url, kind="retrain", user=operator("bob"), spawn=False)
    other_kind = jobs.start(db_url, kind="review", user=operator("bob"), spawn=False)
    with factory() as s:
        assert s.scalar(select(func.count(Job.id))) == 2 and s.get(Job, other_kind).params["actor"] == "bob"
    with transaction(factory) as s:
        db_jobs.finish(s, job_id=first)
    assert jobs.start(db_url, kind="retrain", user=operator("bob"), spawn=False) > first
    with pytest.raises(ValueError, match="unknown job kind"):
        jobs.start(db_url, kind="mine bitcoin", user=operator("x"), spawn=False)


def test_run_job_records_progress_log_and_result(factory, db_url):
    def runner(url, params, *, progress, log):
        log(f"hello from {params['actor']}")
        progress("train", 3, 6)
        return {"model_version_id": 7}

    job_id = jobs.start(db_url, kind="retrain", user=operator("ann"), spawn=False)
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

    job_id = jobs.start(db_url, kind="retrain", user=operator("ann"), spawn=False)
    assert not jobs.run_job(db_url, job_id, runners={"retrain": runner})
    with factory() as s:
        job = s.get(Job, job_id)
        assert job.status == "failed" and "ValueError: the taxonomy has no products" in job.error
        assert job.progress == pytest.approx(0.1 + 0.8 * 0.5)  # where it stopped
    assert jobs.start(db_url, kind="retrain", user=operator("ann"), spawn=False) > job_id  # a failed job does not block


def test_reap_marks_a_job_whose_process_died_as_failed(factory, db_url):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    job_id = jobs.start(db_url, kind="retrain", user=operator("ann"), spawn=False)
    with transaction(factory) as s:
        db_jobs.claim(s, job_id=job_id, pid=dead.pid)
    with transaction(factory) as s:
        assert db_jobs.reap(s) == [job_id]
    with factory() as s:
        job = s.get(Job, job_id)
        assert job.status == "failed" and f"pid {dead.pid}" in job.error


def test_retrain_activates_a_new_version_that_learnt_the_relabelling(stand_in_db, factory):
    url = stand_in_db
    first = train(url, log=quiet)
    predict(url, log=quiet)
    heels, flats = "Footwear > Shoes > Heels", "Footwear > Shoes > Flats"
    moved = [f"p{i}" for i in range(LEAVES.index(heels), N_PRODUCTS, len(LEAVES))]  # every Heels product
    assert heels in level3_predictions(factory, first).values()  # the first version predicts Heels
    with transaction(factory) as s:
        flats_id = repo.node_by_path(s, flats).id
        for product in s.scalars(select(Product).where(Product.external_id.in_(moved))):
            curation.relabel_product(s, product_id=product.id, node_id=flats_id, actor="t")
    second = retrain(url, actor="ann", log=quiet)
    assert second == first + 1
    with factory() as s:
        assert preds.active_model_version(s).id == second and s.get(ModelVersion, first).status == "archived"
        assert preds.prediction_count(s, model_version_id=second) == N_PRODUCTS
        version = s.get(ModelVersion, second)
        assert version.params["predicted_key"] and version.params["split"].startswith("hash")
        assert set(version.metrics["test_product_ids"]) == set(s.get(ModelVersion, first).metrics["test_product_ids"])
    after = level3_predictions(factory, second)
    assert len(after) == N_PRODUCTS and heels not in after.values()  # no label says Heels any more
    assert {after[e] for e in moved} == {flats}  # the relabelled products are predicted where they were moved
    # the label-free parts were fitted on the same products: reused from the cache, not refitted
    assert any("reused" in line for line in _log_of_retrain(url))


def _log_of_retrain(url) -> list[str]:
    lines: list[str] = []
    retrain(url, log=lines.append)
    return lines


def test_a_failed_retrain_leaves_the_previous_version_active(stand_in_db, factory, monkeypatch):
    url = stand_in_db
    first = train(url, log=quiet)
    predict(url, log=quiet)
    before = prediction_snapshot(factory)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr("core.classify.bundle.fit_model", broken)  # where the model set is fitted
    job_id = jobs.start(url, kind="retrain", user=operator("ann"), spawn=False)
    assert not jobs.run_job(url, job_id)
    with factory() as s:
        assert preds.active_model_version(s).id == first
        assert s.scalar(select(func.count(ModelVersion.id))) == 1
        assert "out of memory" in s.get(Job, job_id).error
    assert prediction_snapshot(factory) == before and len(before) == 3 * N_PRODUCTS


PAUSE_S = 180  # how long a child waits at its pause point for the test's SIGKILL before it gives up


def pause_here(point: str) -> None:
    """In the child: say where it stopped (the file of $CURATOR_TEST_PAUSED), then wait for the test's SIGKILL."""
    Path(os.environ["CURATOR_TEST_PAUSED"]).write_text(point)
    time.sleep(PAUSE_S)
    raise RuntimeError(f"paused at {point} for {PAUSE_S}s and the test did not kill the job")


def install_in_child() -> None:
    """Run by the child's sitecustomize: the stand-in encoders, and a pause at $CURATOR_TEST_PAUSE_AT.

    training: after the TF-IDF projection and the title-photo aligner are fitted, before the stacked stages;
    saving: the bundle folder half-written (every member but stage 2, no manifest);
    storing: inside the final transaction, the version row and its predictions written but not committed.
    """
    from core.classify import bundle, stacking
    from db import predictions

    install_stand_ins()
    point = os.environ.get("CURATOR_TEST_PAUSE_AT")
    if point == "training":
        fit_stages = bundle.ModelBundle._fit_stages

        def paused_fit_stages(self, *args, **kwargs):
            pause_here(point)
            return fit_stages(self, *args, **kwargs)

        bundle.ModelBundle._fit_stages = paused_fit_stages
    elif point == "saving":
        save = stacking.StackedFusion.save

        def paused_save(self, folder):
            if Path(folder).name == bundle.MEMBERS["stage2"].filename:
                pause_here(point)
            return save(self, folder)

        stacking.StackedFusion.save = paused_save
    elif point == "storing":
        replace = predictions.replace_predictions

        def paused_replace(*args, **kwargs):
            stored = replace(*args, **kwargs)
            pause_here(point)
            return stored

        predictions.replace_predictions = paused_replace


def wait_until_paused(factory, job_id: int, paused: Path, process, needed: list[str], deadline_s: float = 240) -> str:
    """Wait until the child says it is paused and the job's log shows each of `needed`; fail at the deadline."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with factory() as s:
            job = s.get(Job, job_id)
            status, log = job.status, job.log or ""
        if paused.exists() and all(line in log for line in needed):
            return log
        if status in ("done", "failed") or process.poll() is not None:
            break
        time.sleep(0.2)
    child_output = jobs.job_log_file(job_id).read_text() if jobs.job_log_file(job_id).exists() else ""
    pytest.fail(
        f"the job never reached its pause point with {needed} in its log (status {status}, "
        f"paused: {paused.exists()}):\n{log}\n--- child output ---\n{child_output[-3000:]}"
    )


# every pause point on SQLite; on PostgreSQL the one inside the transaction (the server must roll it back)
KILL_POINTS = [("sqlite", "training"), ("sqlite", "saving"), ("sqlite", "storing"), ("postgresql", "storing")]


@pytest.mark.parametrize(("db_url", "point"), KILL_POINTS, indirect=["db_url"])
def test_a_retrain_killed_after_it_made_progress_changes_nothing_and_is_reaped(
    stand_in_db, factory, tmp_path, monkeypatch, point
):
    url = stand_in_db
    first = train(url, log=quiet)
    predict(url, log=quiet)
    before = prediction_snapshot(factory)
    with factory() as s:
        first_artifact = s.get(ModelVersion, first).artifact
    assert len(before) == 3 * N_PRODUCTS  # three levels for every product
    paused = tmp_path / "paused"
    monkeypatch.setenv("PYTHONPATH", child_pythonpath(tmp_path, module=__name__))  # stand-ins and the pause
    monkeypatch.setenv("CURATOR_TEST_PAUSE_AT", point)
    monkeypatch.setenv("CURATOR_TEST_PAUSED", str(paused))
    job_id = jobs.start(url, kind="retrain", user=operator("ann"), spawn=False)
    process = jobs.launch(url, job_id)  # a real `python -m core job run ID` process, as the Retrain button starts it
    try:
        needed = ["tfidf projection and title-photo aligner:"]  # the training step past "features"
        needed += [] if point == "training" else [f"predicted {N_PRODUCTS} products"]
        wait_until_paused(factory, job_id, paused, process, needed)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert paused.read_text() == point
    with factory() as s:
        job = s.get(Job, job_id)
        assert job.status == "running" and job.pid == process.pid  # nobody finished it: it was killed mid-way
        assert preds.active_model_version(s).id == first
        assert s.scalars(select(ModelVersion.id)).all() == [first]  # no new version row
        artifacts = set(s.scalars(select(ModelVersion.artifact)).all())
    assert prediction_snapshot(factory) == before  # the previous version's predictions, untouched
    folders = {p for p in (Path(os.environ["DATA_DIR"]) / "models").iterdir() if p.name != "cache"}
    assert artifacts == {first_artifact} and Path(first_artifact) in folders
    if point != "training":  # the killed retrain had written a folder: on disk, referenced by no version
        (written,) = folders - {Path(first_artifact)}
        assert (written / "manifest.json").exists() == (point == "storing")
    next_job = jobs.start(url, kind="retrain", user=operator("bob"), spawn=False)  # the next start reaps the dead one
    with factory() as s:
        job = s.get(Job, job_id)
        assert job.status == "failed" and f"pid {process.pid}" in job.error and "ended without finishing" in job.error
    if point != "storing":
        return
    assert jobs.run_job(url, next_job)  # a retrain after the kill works: no lock or open transaction left behind
    with factory() as s:
        active = preds.active_model_version(s)
        assert active.id != first and Path(active.artifact, "manifest.json").exists()
        assert preds.prediction_count(s, model_version_id=active.id) == N_PRODUCTS


def test_reap_uses_the_heartbeat_for_other_hosts_and_fails_jobs_that_never_started(factory, db_url):
    from datetime import UTC, datetime, timedelta

    running = jobs.start(db_url, kind="retrain", user=operator("ann"), spawn=False)
    queued = jobs.start(db_url, kind="review", user=operator("ann"), spawn=False)
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
        jobs.start(db_url, kind="retrain", user=operator("ann"))
    with factory() as s:
        job = s.scalars(select(Job)).one()
        assert job.status == "failed" and "no such interpreter" in job.error
    monkeypatch.undo()
