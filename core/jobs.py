"""Running background jobs: `launch` starts `python -m core job run ID` as a detached process (not tied to
the browser session that asked for it); `run_job` executes it, writing progress and log lines to the
jobs table, and records success or the error.

Kinds: "retrain" (`core.steps.retrain.retrain`), "review" (`core.steps.review.run_review`), "import" (the Import
page's file: `core.steps.import_job.run_import`, ingest + embed + predict), "mapping" (the Mapping page's
"Suggest mappings": `core.steps.mapping.suggest_mappings` for one platform) and "standard" (its "Suggest Google
categories": `core.steps.standard.suggest_standard`, the master taxonomy onto a standard) and "fill" (what `make run`
fills in behind the served app: `core.steps.fill.fill_in`, discovery, the catalogue map and the label scores). The process runs
with this interpreter (`sys.executable`) in the repository; the project is installed (`pip install -e .`), so
it needs no PYTHONPATH.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.config import REPO_ROOT, data_dir
from core.steps.fill import fill_in
from core.steps.import_job import run_import
from core.steps.mapping import suggest_mappings
from core.steps.retrain import retrain
from core.steps.review import run_review
from core.steps.standard import suggest_standard
from db import actions, jobs
from db.session import get_sessionmaker, transaction
from db.users import Identity

KINDS = ("retrain", "review", "import", "mapping", "standard", "fill")


def start(db_url: str, *, kind: str, user: Identity, params: dict[str, Any] | None = None, spawn: bool = True) -> int:
    """Queue a job as `user` (refused below the kind's role, db.actions.JOB_ROLES, and while one of the same kind is
    active) and launch its process; returns the job id."""
    if kind not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}; use one of {KINDS}")
    factory = get_sessionmaker(db_url)
    with transaction(factory) as s:
        actions.authorize_job(s, user, kind)
        job_id = jobs.start_job(s, kind=kind, params=params, actor=user.name).id
    if spawn:
        try:
            launch(db_url, job_id)
        except OSError as exc:
            with transaction(factory) as s:
                jobs.finish(s, job_id=job_id, error=f"could not start the job's process: {exc}")
            raise
    return job_id


def launch(db_url: str, job_id: int) -> subprocess.Popen:
    """Start the job's process in its own session (it outlives the app's script run and the browser tab)."""
    logs = data_dir() / "jobs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DATABASE_URL": db_url}  # through the environment: a password in the URL stays out of `ps`
    with open(logs / f"job-{job_id}.log", "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "core", "job", "run", str(job_id)],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )


class _Reporter:
    """progress(stage, done, total) and log(line) callbacks that write to the job's row (throttled)."""

    def __init__(self, factory, job_id: int, stages: dict[str, tuple[float, float]] | None):
        """`stages`: the share of the bar each stage covers; None: the runner reports the whole job's progress
        itself (its stage text is the message, done/total the fraction of the whole job)."""
        self.factory, self.job_id, self.stages = factory, job_id, stages
        self.last = 0.0

    def _write(self, **fields) -> None:
        with transaction(self.factory) as s:
            jobs.report(s, job_id=self.job_id, **fields)

    def progress(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 1.0 and done < total:
            return
        self.last = now
        if self.stages is None:
            self._write(progress=done / max(total, 1), message=stage)
            return
        lo, hi = self.stages.get(stage, self.stages.get(stage.split()[0], (None, None)))
        fraction = None if lo is None else lo + (hi - lo) * done / max(total, 1)
        self._write(progress=fraction, message=f"{stage}: {done}/{total}")

    def log(self, line: str) -> None:
        print(line, flush=True)
        self._write(log=line)


# share of the job's progress bar each stage covers (None: the runner reports the whole job's progress itself)
STAGES: dict[str, dict[str, tuple[float, float]] | None] = {
    "retrain": {"embed": (0.0, 0.1), "train": (0.1, 0.9), "predict": (0.9, 1.0)},
    "review": {"embed": (0.0, 0.15), "out-of-fold": (0.15, 1.0)},
    "import": {"ingest": (0.0, 0.2), "embed": (0.2, 0.8), "predict": (0.8, 1.0)},
    "mapping": {"suggest": (0.0, 1.0)},
    "standard": {"suggest": (0.0, 1.0)},
    "fill": None,  # its steps run side by side: core.steps.fill.Overall
}


def run_job(db_url: str, job_id: int, *, runners: dict[str, Callable[..., Any]] | None = None) -> bool:
    """Execute a queued job in this process; returns True when it finished without error."""
    factory = get_sessionmaker(db_url)
    with transaction(factory) as s:
        job = jobs.claim(s, job_id=job_id, pid=os.getpid())
        kind, params = job.kind, dict(job.params)
    reporter = _Reporter(factory, job_id, STAGES.get(kind, {}))
    runner = (runners or RUNNERS)[kind]
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(factory, job_id, stop), daemon=True)
    beat.start()
    try:
        result = runner(db_url, params, progress=reporter.progress, log=reporter.log)
    except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised for KeyboardInterrupt/SystemExit
        tail = "".join(traceback.format_exception(exc)[-3:])
        with transaction(factory) as s:
            jobs.report(s, job_id=job_id, log=f"failed: {exc}")
            jobs.finish(s, job_id=job_id, error=f"{type(exc).__name__}: {exc}\n{tail}")
        if not isinstance(exc, Exception):
            raise
        return False
    finally:
        stop.set()
        beat.join(timeout=5)
    with transaction(factory) as s:
        jobs.finish(s, job_id=job_id, result=result)
    return True


def _heartbeat(factory, job_id: int, stop: threading.Event) -> None:
    """Stamp the job's heartbeat while it runs (so other hosts can tell a live job from a dead one)."""
    while not stop.wait(jobs.HEARTBEAT_S):
        try:
            with transaction(factory) as s:
                jobs.heartbeat(s, job_id=job_id)
        except Exception:  # noqa: BLE001 - a busy database must not kill the job; the next beat retries
            continue


def _retrain(db_url: str, params: dict[str, Any], *, progress, log) -> dict[str, Any]:
    version_id = retrain(db_url, actor=params.get("actor") or "retrain", progress=progress, log=log)
    return {"model_version_id": version_id}


def _review(db_url: str, params: dict[str, Any], *, progress, log) -> dict[str, Any]:
    return {"queued": run_review(db_url, progress=progress, log=log)}


def _import(db_url: str, params: dict[str, Any], *, progress, log) -> dict[str, Any]:
    return run_import(
        db_url,
        file=params["file"],
        platform=params["platform"],
        mapping=params["mapping"],
        images_root=params.get("images_root"),
        name=params.get("name"),
        actor=params.get("actor") or "import",
        progress=progress,
        log=log,
    )


def _mapping(db_url: str, params: dict[str, Any], *, progress, log) -> dict[str, Any]:
    """Suggest and store a mapping for every category of `params["platform"]` (decided ones keep their decision)."""
    platform = params["platform"]
    rows = suggest_mappings(db_url, platform, log=log, progress=progress)
    ambiguous = sum(1 for r in rows if r["ambiguous"])
    log(f"suggested a master category for {len(rows)} categories ({ambiguous} ambiguous)")
    return {"platform": platform, "categories": len(rows), "ambiguous": ambiguous}


def _standard(db_url: str, params: dict[str, Any], *, progress, log) -> dict[str, Any]:
    """Suggest and store the standard category (`params["standard"]`) of every active master node (decided ones kept)."""
    standard = params["standard"]
    rows = suggest_standard(db_url, standard, log=log)
    ambiguous = sum(1 for r in rows if r["ambiguous"])
    log(f"suggested a {standard} category for {len(rows)} master categories ({ambiguous} ambiguous)")
    return {"standard": standard, "categories": len(rows), "ambiguous": ambiguous}


def _fill(db_url: str, params: dict[str, Any], *, progress, log) -> dict[str, Any]:
    """What `make run` fills in behind the served app (`core.steps.fill`): discovery, the catalogue map, label scores."""
    return fill_in(db_url, node_path=params.get("node") or "Footwear > Shoes", progress=progress, log=log)


RUNNERS: dict[str, Callable[..., Any]] = {
    "retrain": _retrain,
    "review": _review,
    "import": _import,
    "mapping": _mapping,
    "standard": _standard,
    "fill": _fill,
}


def job_log_file(job_id: int) -> Path:
    """Where `launch` writes the job's output."""
    return data_dir() / "jobs" / f"job-{job_id}.log"
