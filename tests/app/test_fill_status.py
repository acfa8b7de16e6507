"""While `make run`'s background "fill" job (discovery, the catalogue map, label scores) runs, the Clusters and Review
pages say so, with its progress, instead of "run this command"; once it has ended they say what to run again."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

from db import jobs
from db.session import get_sessionmaker, transaction
from tests.app.helpers import run_page
from tests.app.shown import shown


def queue_fill(url: str, *, progress: float, message: str) -> int:
    with transaction(get_sessionmaker(url)) as s:
        job = jobs.start_job(s, kind="fill", params={"node": "Footwear > Shoes"}, actor="make")
        job.status, job.progress, job.message = "running", progress, message
        job.pid, job.host, job.heartbeat_at = os.getpid(), socket.gethostname(), datetime.now(UTC)  # alive: not reaped
        return job.id


def infos(at) -> list[str]:
    return [i.value for i in at.info]


def test_clusters_and_review_show_the_running_fill_job_instead_of_a_command(app_env):
    job_id = queue_fill(app_env, progress=0.25, message="discover umap: 1/2")
    for page, what in (("clusters", "Discovery is running in the background"), ("review", "being scored in the background")):
        at = run_page(page)
        assert any(what in i for i in infos(at)) and not any("run `python -m core" in i for i in infos(at)), infos(at)
        (bar,) = [p for p in at.get("progress")]
        assert f"fill job #{job_id}" in shown(bar.proto.text) and bar.proto.value == 25


def test_without_a_fill_job_the_pages_say_what_to_run(app_env):
    for page, command in (("clusters", "python -m core discover"), ("review", "python -m core review")):
        at = run_page(page)
        assert any(command in i for i in infos(at)) and not at.get("progress"), infos(at)
