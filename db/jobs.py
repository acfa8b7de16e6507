"""Background jobs (retrain, review scoring) as rows of the jobs table.

A job's status, progress, message and log live in the database, so any page (after a reload, in another
browser) shows them. At most one job of a kind is queued or running: `start_job` refuses a second one.
A job whose process died without finishing (killed, machine restarted) is marked failed by `reap`.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.models import Job
from db.repo import CurationError

ACTIVE = ("queued", "running")
LOG_LIMIT = 20_000  # characters of log kept per job (the newest)
HEARTBEAT_S = 15  # a running job's process stamps heartbeat_at this often
STALE_S = 120  # a running job without a heartbeat for this long is dead (another host, a reused pid)
NEVER_STARTED_S = 300  # a queued job whose process never claimed it


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they are UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def reap(session: Session) -> list[int]:
    """Mark jobs that can no longer finish as failed; returns their ids.

    A running job is dead when its process is gone (same host) or its heartbeat is stale (any host: a process
    on another machine, or a pid reused after a restart); a queued job is dead when no process claimed it.
    """
    now, here = datetime.now(UTC), socket.gethostname()
    dead = []
    for job in session.scalars(select(Job).where(Job.status.in_(ACTIVE))):
        beat = _utc(job.heartbeat_at) or _utc(job.started_at) or _utc(job.created_at)
        if job.status == "queued":
            why = (
                f"The job was queued at {_utc(job.created_at):%H:%M:%S} but no process started it."
                if now - _utc(job.created_at) > timedelta(seconds=NEVER_STARTED_S)
                else None
            )
        elif job.host in (None, here) and not _alive(job.pid):
            why = f"The job's process (pid {job.pid}) ended without finishing (killed or crashed)."
        elif now - beat > timedelta(seconds=STALE_S):
            why = f"The job's process (pid {job.pid} on {job.host}) stopped reporting at {beat:%H:%M:%S}."
        else:
            why = None
        if why:
            job.status, job.finished_at, job.error = "failed", now, job.error or why
            dead.append(job.id)
    session.flush()
    return dead


def heartbeat(session: Session, *, job_id: int) -> None:
    job = session.get(Job, job_id)
    if job is not None and job.status == "running":
        job.heartbeat_at = datetime.now(UTC)


def start_job(session: Session, *, kind: str, params: dict[str, Any] | None = None, actor: str = "") -> Job:
    """Queue a job of `kind`; refuses when one of that kind is queued or running."""
    if session.get_bind().dialect.name == "postgresql":  # serialise concurrent starts
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"job:{kind}"})
    reap(session)
    job = Job(kind=kind, status="queued", params={**(params or {}), "actor": actor}, message="queued")
    session.add(job)
    session.flush()  # on SQLite this takes the write lock, so the check below sees any concurrent start
    other = session.scalar(select(Job).where(Job.kind == kind, Job.status.in_(ACTIVE), Job.id != job.id).order_by(Job.id))
    if other is not None:
        raise CurationError(
            f"A {kind} job (#{other.id}, {other.status}, {other.message}) is already running; wait for it to finish."
        )
    return job


def claim(session: Session, *, job_id: int, pid: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise CurationError(f"Unknown job #{job_id}.")
    if job.status != "queued":
        raise CurationError(f"Job #{job_id} is {job.status}, not queued.")
    now = datetime.now(UTC)
    job.status, job.pid, job.host, job.started_at, job.heartbeat_at, job.message = (
        "running",
        pid,
        socket.gethostname(),
        now,
        now,
        "started",
    )
    return job


def report(
    session: Session, *, job_id: int, progress: float | None = None, message: str | None = None, log: str | None = None
) -> None:
    job = session.get(Job, job_id)
    if progress is not None:
        job.progress = max(0.0, min(1.0, float(progress)))
    if message is not None:
        job.message = message
    if log:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        job.log = ((job.log or "") + f"{stamp} {log}\n")[-LOG_LIMIT:]


def finish(session: Session, *, job_id: int, error: str | None = None, result: dict[str, Any] | None = None) -> Job:
    job = session.get(Job, job_id)
    job.status = "failed" if error else "done"
    job.error, job.finished_at = error, datetime.now(UTC)
    job.progress = job.progress if error else 1.0
    job.message = "failed" if error else "finished"
    if result:
        job.params = {**job.params, "result": result}
    return job


def latest(session: Session, *, kind: str) -> Job | None:
    return session.scalar(select(Job).where(Job.kind == kind).order_by(Job.id.desc()).limit(1))


def recent(session: Session, *, kind: str | None = None, limit: int = 10) -> list[Job]:
    stmt = select(Job).order_by(Job.id.desc()).limit(limit)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    return list(session.scalars(stmt))
