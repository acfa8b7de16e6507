"""`python -m core fill-in` (what `make run` starts behind the served app): the model with photos after a first
start's model of the titles alone, discovery on the default node, the catalogue map and the label scores, each only
when missing, inline or as one background job of kind "fill"; on test_cli_steps' synthetic shop (trained and
predicted: what `make models` leaves; or ingested and embedded, then started: what `core start` leaves)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from core import jobs
from core.steps import fill, start
from core.steps.fill import WEIGHTS, Overall, fill_in, missing, photo_model, up_to_date
from db import predictions as preds
from db import proposals as props
from db import review as db_review
from db.models import AuditEvent, Job, ModelVersion, Product, ReviewItem
from db.repo import node_by_path
from db.session import transaction
from tests.core import test_cli_steps as cli_steps
from tests.core.test_cli_steps import MAPPING, SHOES, STAND_INS, N, leaf_predictions, run_cli, session, versions

base, workspace = cli_steps.base, cli_steps.workspace  # the synthetic shop, trained and predicted (fixtures)


def filled(url: str) -> tuple[int, int]:
    """(open proposals under Shoes, open review items)."""
    with session(url) as s:
        node = node_by_path(s, SHOES)
        return len(props.list_proposals(s, parent_node_id=node.id)), db_review.counts(s).get("open", 0)


def test_fill_in_runs_what_is_missing_once_and_then_only_the_cached_map(workspace):
    assert missing(workspace) == ["discover", "map", "review"] and filled(workspace) == (0, 0)
    status, _ = run_cli(["fill-in", "--db", workspace])
    proposals, queued = filled(workspace)
    assert status == 0 and proposals > 0 and queued > 0
    assert missing(workspace) == ["map"]  # the map checks its own cache: listed, but a re-run rebuilds nothing
    status, _ = run_cli(["fill-in", "--db", workspace])
    assert status == 0 and filled(workspace) == (proposals, queued)


def test_fill_in_background_queues_one_fill_job_that_does_the_work(workspace, monkeypatch):
    launched = []
    monkeypatch.setattr(jobs, "launch", lambda url, job_id: launched.append(job_id))  # run below, in this process
    status, out = run_cli(["fill-in", "--background", "--db", workspace])
    found = re.fullmatch(r"fill-in job #(\d+) started in the background \(discover, map, review\); .*", out.strip())
    assert status == 0 and found, out
    job_id = int(found[1])
    assert launched == [job_id] and filled(workspace) == (0, 0)  # nothing done before the job runs
    status, out = run_cli(["fill-in", "--background", "--db", workspace])  # a second start while the first is queued
    assert status == 0 and "already" in out and launched == [job_id]
    assert jobs.run_job(workspace, job_id)
    with session(workspace) as s:
        job = s.scalar(select(Job).where(Job.id == job_id))
    proposals, queued = filled(workspace)
    assert job.status == "done" and job.kind == "fill" and proposals > 0 and queued > 0
    assert job.params["result"]["discover"] == proposals and job.params["result"]["review"] == queued


def review_queue(url: str) -> list[tuple]:
    """The open review items: (product, suggested node, score), in a fixed order."""
    with session(url) as s:
        rows = s.execute(select(ReviewItem.product_id, ReviewItem.suggested_node_id, ReviewItem.score)).all()
    return sorted((p, n, round(float(sc), 6)) for p, n, sc in rows)


def test_label_scores_beside_discovery_and_the_map_give_what_one_process_gives(workspace, base, tmp_path_factory, monkeypatch):
    """The map runs in a second process beside discovery and the label scores: the same proposals, map and queue as
    all one after the other in one process, one progress bar that never moves back and ends full, both processes'
    stages on it; this process's threads as they were."""
    import numba
    import torch

    threads = numba.get_num_threads(), torch.get_num_threads()
    reports, lines = [], []
    done = fill_in(workspace, parallel=True, progress=lambda *a: reports.append(a), log=lines.append)
    assert "map: starting in a second process" in lines
    fractions = [d / t for _, d, t in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and reports[-1][0] == "finishing"
    texts = " ".join(text for text, _, _ in reports)
    assert "discover " in texts and "review " in texts  # (the map of so small a shop reports no stages)
    assert (numba.get_num_threads(), torch.get_num_threads()) == threads
    assert done["review"] == filled(workspace)[1] > 0 and done["discover"] == filled(workspace)[0] > 0

    folder = tmp_path_factory.mktemp("alone")
    alone = cli_steps.copy_base(base, folder)  # the same start, every step in this process
    monkeypatch.setenv("DATA_DIR", str(folder / "data"))
    assert fill_in(alone, parallel=False, log=lambda line: None) == done
    assert review_queue(alone) == review_queue(workspace)


def test_a_failure_in_the_second_process_fails_the_fill_in_after_the_other_steps(workspace, monkeypatch):
    monkeypatch.delenv("PYTHONPATH")  # the second process does not get the stand-in encoders: the map cannot start
    with pytest.raises(RuntimeError, match=r"map \(in the second process\) failed: map: ValueError: unknown encoder 'stand-in"):
        fill_in(workspace, parallel=True, log=lambda line: None)
    proposals, queued = filled(workspace)
    assert proposals > 0 and queued > 0  # discovery and the label scores, here, ran and kept what they made
    assert missing(workspace) == ["map"] and not up_to_date(workspace)  # no record of a finished fill-in


def test_overall_progress_weighs_steps_and_never_moves_back():
    reports = []
    overall = Overall(["discover", "review"], lambda *a: reports.append(a))
    discover, review_ = overall.step("discover"), overall.step("review")
    discover("embed titles", 5, 5)  # cached: complete when first seen, it takes no share
    assert reports[-1] == ("discover embed titles: 5/5", 0, 1000)
    discover("embed", 1, 2)  # the first stage with work to do: half of discover's half of the bar
    share = WEIGHTS["discover"] / (WEIGHTS["discover"] + WEIGHTS["review"])
    assert reports[-1] == ("discover embed: 1/2", round(1000 * share * 0.25), 1000)
    discover("embed", 2, 2)
    discover("umap", 0, 2)  # a new stage starts where the last ended
    review_("out-of-fold", 1, 4)
    assert reports[-1][0] == "discover umap: 0/2 · review out-of-fold: 1/4"
    overall.finished("discover")
    overall.finished("review")
    fractions = [d for _, d, _ in reports]
    assert fractions == sorted(fractions) and reports[-1] == ("finishing", 1000, 1000)


# ----------------------------------------------------------------------------------------------
# a first start: the model of the titles alone, then the model with photos behind the app


@pytest.fixture
def ingested(base, tmp_path, monkeypatch) -> str:
    """A new database of the synthetic shop, ingested and embedded (the stand-in encoders recorded); its URL."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    for name, encoder in STAND_INS.items():
        monkeypatch.setitem(cli_steps.ENCODERS, name, encoder)
    monkeypatch.setenv("PYTHONPATH", cli_steps.child_pythonpath(tmp_path))
    url = f"sqlite:///{tmp_path / 'first.db'}"
    mapping = [arg for spec in MAPPING for arg in ("--map", spec)]
    for argv in (["db", "upgrade"], ["ingest", "--catalog", str(base["catalogue"]), "--platform", "shop", *mapping]):
        status, out = run_cli([*argv, "--db", url])
        assert status == 0, out
    status, out = run_cli(["embed", "--text", "stand-in-text", "--image", "stand-in-image", "--db", url])
    assert status == 0, out
    with session(url) as s:  # the embed step alone left no model
        assert s.query(ModelVersion).count() == 0
    return url


@pytest.fixture
def first_start(ingested) -> str:
    """`ingested`, then the model steps of `core start` (`start.models_step`): what a first `make run` serves."""
    url = ingested
    lines: list[str] = []
    record = start.models_step(url, log=lines.append)
    assert any(line.startswith("first model: text stand-in-text, image none") for line in lines), lines
    start.remember(record, "models", url, {"db": start.db_stamp(url), "encoders": ["stand-in-text", "stand-in-image"]})
    return url  # (the record as `start.prepare` writes it once every step ran)


def active(url: str) -> ModelVersion:
    with session(url) as s:
        return preds.active_model_version(s)


def test_a_first_start_serves_a_model_of_the_titles_and_the_fill_in_replaces_it_by_one_with_photos(first_start):
    url = first_start
    first = active(url)
    assert first.params["text_first"] is True and first.params["encoder_choice"] == {"text": "stand-in-text", "image": None}
    assert "image" not in first.params["encoders"] and first.name.endswith(", titles only")
    assert len(leaf_predictions(url, first.id)) == N  # every product predicted before the app serves
    assert missing(url) == ["model", "discover", "map", "review"]

    lines: list[str] = []
    done = fill_in(url, parallel=False, log=lines.append)
    starts = [line.split(":")[0] for line in lines if line.endswith(": starting")]
    assert starts == ["model", "discover", "map", "review"]  # the photos first: discovery and the map read them
    second = active(url)
    assert done["model"] == second.id != first.id and "text_first" not in second.params
    assert second.params["encoder_choice"] == {"text": "stand-in-text", "image": "stand-in-image"}
    assert set(second.params["encoders"]) == {"title", "image"}
    assert versions(url) == {first.id: "archived", second.id: "active"}
    assert len(leaf_predictions(url, second.id)) == N
    with session(url) as s:
        event = s.query(AuditEvent).filter_by(action="activate_model").order_by(AuditEvent.id.desc()).first()
    assert event.actor == "fill-in" and event.after == {"version_id": second.id}
    assert missing(url) == ["map"] and up_to_date(url)
    # the next start finds the model steps done: the records followed what the fill-in changed itself
    encoders = ["stand-in-text", "stand-in-image"]
    assert start.unchanged("models", url, {"db": start.db_stamp(url), "encoders": encoders})


def test_the_model_with_photos_is_not_activated_over_a_model_someone_activated(first_start):
    url = first_start
    first = active(url)
    with transaction(fill.get_sessionmaker(url)) as s:  # someone trains and activates a model of their own
        own = preds.register_model_version(s, name="mine", metrics={}, params={}, artifact=first.artifact)
        preds.activate_model_version(s, version_id=own.id, actor="alice")
    assert missing(url)[0] != "model"  # the active model is no first start's: nothing to replace
    with transaction(fill.get_sessionmaker(url)) as s:  # back to the first model, then it is replaced meanwhile
        preds.activate_model_version(s, version_id=first.id, actor="alice")
    real_train = fill.train

    def train_then_someone_activates(*args, **kwargs):
        version_id = real_train(*args, **kwargs)
        with transaction(fill.get_sessionmaker(url)) as s:
            preds.activate_model_version(s, version_id=own.id, actor="alice")
        return version_id

    lines: list[str] = []
    fill.train = train_then_someone_activates
    try:
        made = photo_model(url, log=lines.append)
    finally:
        fill.train = real_train
    assert made is not None and active(url).id == own.id
    assert any("not activated: another model was activated meanwhile" in line for line in lines)
    assert versions(url)[made] == "candidate"


def test_a_text_only_first_model_needs_photos_titles_no_model_yet_and_is_not_turned_off(ingested, monkeypatch):
    url = ingested
    choice = start.chosen_encoders()
    assert choice == start.EncoderChoice("stand-in-text", "stand-in-image")
    assert start.first_model_choice(url, choice) == start.EncoderChoice("stand-in-text", None)
    assert start.first_model_choice(url, start.EncoderChoice("stand-in-text", None)) is None  # no photos chosen
    monkeypatch.setenv(start.TEXT_FIRST_ENV, "0")
    assert start.first_model_choice(url, choice) is None
    monkeypatch.delenv(start.TEXT_FIRST_ENV)
    with transaction(fill.get_sessionmaker(url)) as s:  # a catalogue without a readable photo
        s.query(Product).update({"image_status": "missing"})
    assert start.first_model_choice(url, choice) is None
    with transaction(fill.get_sessionmaker(url)) as s:
        s.query(Product).update({"image_status": "ok", "title": " "})  # photos, no titles
    assert start.first_model_choice(url, choice) is None
    with transaction(fill.get_sessionmaker(url)) as s:
        s.query(Product).filter(Product.id == 1).update({"title": "Canvas Sneakers"})
        preds.register_model_version(s, name="old", metrics={}, params={}, artifact=None)
    assert start.first_model_choice(url, choice) is None  # a model was trained on this database before
