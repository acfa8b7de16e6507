"""`python -m core fill-in` (what `make run` starts behind the served app): discovery on the default node, the
catalogue map and the label scores, each only when missing, inline or as one background job of kind "fill"; on
test_cli_steps' synthetic shop (trained and predicted: what `make models` leaves)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from core import jobs
from core.steps.fill import Overall, fill_in, missing, up_to_date
from db import proposals as props
from db import review as db_review
from db.models import Job, ReviewItem
from db.repo import node_by_path
from tests.core import test_cli_steps as cli_steps
from tests.core.test_cli_steps import SHOES, run_cli, session

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
    assert reports[-1] == ("discover embed: 1/2", round(1000 * 0.5 / 0.7 * 0.25), 1000)
    discover("embed", 2, 2)
    discover("umap", 0, 2)  # a new stage starts where the last ended
    review_("out-of-fold", 1, 4)
    assert reports[-1][0] == "discover umap: 0/2 · review out-of-fold: 1/4"
    overall.finished("discover")
    overall.finished("review")
    fractions = [d for _, d, _ in reports]
    assert fractions == sorted(fractions) and reports[-1] == ("finishing", 1000, 1000)
