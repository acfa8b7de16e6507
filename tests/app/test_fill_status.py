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


def mark_text_first(url: str) -> None:
    """The active model as a first start leaves it: a model of the titles alone, the fill-in to replace it."""
    import streamlit as st

    from db import predictions as preds

    with transaction(get_sessionmaker(url)) as s:
        version = preds.active_model_version(s)
        version.params = {**version.params, preds.TEXT_FIRST: True}
    st.cache_data.clear()  # (set at registration in real use, before any page read the version: no audited change)


def test_predictions_of_a_first_start_say_they_read_the_titles_alone_while_the_photo_model_trains(app_env, with_predictions):
    at = run_page("predictions")
    assert not any("titles alone" in i for i in infos(at)), infos(at)  # a model trained as chosen: nothing to say
    mark_text_first(app_env)
    job_id = queue_fill(app_env, progress=0.1, message="model embed image: 10/100")
    at = run_page("predictions")
    (note,) = [i for i in infos(at) if "titles alone" in i]
    assert "is being trained behind the app" in note
    (bar,) = [p for p in at.get("progress")]
    assert f"fill job #{job_id}" in shown(bar.proto.text) and bar.proto.value == 10
    assert at.dataframe  # the first model's predictions are shown meanwhile
    with transaction(get_sessionmaker(app_env)) as s:
        jobs.finish(s, job_id=job_id, error="model: stopped")
    at = run_page("predictions")
    (note,) = [i for i in infos(at) if "titles alone" in i]
    assert "No model that reads the photos is active" in note
