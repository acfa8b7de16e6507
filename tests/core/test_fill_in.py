"""`python -m core fill-in` (what `make run` starts behind the served app): discovery on the default node, the
catalogue map and the label scores, each only when missing, inline or as one background job of kind "fill"; on
test_cli_steps' synthetic shop (trained and predicted: what `make models` leaves)."""

from __future__ import annotations

import re

from sqlalchemy import select

from core import jobs
from core.steps.fill import missing
from db import proposals as props
from db import review as db_review
from db.models import Job
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
