"""Widgets shared by pages: the actor box, the taxonomy tree, product grids, confirmed actions, undo."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import cache
from core import jobs
from db import actions
from db.repo import CurationError
from db.session import transaction


def actor() -> str:
    """Who is acting, for the audit log (set in the sidebar)."""
    return (st.session_state.get("actor") or "").strip() or "merchandiser"


def sidebar() -> None:
    with st.sidebar:
        st.text_input("Your name (for the audit log)", key="actor", placeholder="merchandiser")
        st.caption(f"Database: `{cache.db_url().split('@')[-1]}`")


def flash() -> None:
    """Show the outcome of the last action (kept across the rerun that follows it)."""
    message = st.session_state.pop("flash", None)
    if message:
        kind, text = message
        (st.success if kind == "ok" else st.error)(text)


def perform(action: str, **kwargs: Any) -> bool:
    """Run the registered action `action` (db/actions.py) as one transaction; a refusal becomes the flash message."""
    try:
        with transaction(cache.factory()) as session:
            actions.perform(session, action, actor=actor(), **kwargs)
    except CurationError as exc:
        st.session_state["flash"] = ("error", str(exc))
        return False
    return True


def request(message: str, action: str, **kwargs: Any) -> None:
    """Ask for confirmation before `action` runs (see `confirmation`)."""
    st.session_state["pending"] = {"message": message, "action": action, "kwargs": kwargs}


def confirmation() -> None:
    """The confirm / cancel box of a requested action, if one is pending."""
    pending = st.session_state.get("pending")
    if not pending:
        return
    with st.container(border=True):
        st.warning(pending["message"])
        yes, no = st.columns(2)
        if yes.button("Confirm", key="confirm_action", type="primary", width="stretch"):
            st.session_state.pop("pending")
            if perform(pending["action"], **pending["kwargs"]):
                st.session_state["flash"] = ("ok", f"Done: {pending['message'].rstrip('?')}.")
            st.rerun()
        if no.button("Cancel", key="cancel_action", width="stretch"):
            st.session_state.pop("pending")
            st.rerun()


def tree_markdown(rows: list[dict[str, Any]], root_id: int) -> str:
    """A nested markdown list of the subtree under `root_id` with product counts."""
    by_parent: dict[int | None, list[dict[str, Any]]] = {}
    for row in rows:
        by_parent.setdefault(row["parent_id"], []).append(row)
    lines: list[str] = []

    def walk(parent_id: int, indent: int) -> None:
        for row in by_parent.get(parent_id, []):
            lines.append(f"{'  ' * indent}- **{row['name']}** · {row['products']:,}")
            walk(row["id"], indent + 1)

    walk(root_id, 0)
    return "\n".join(lines) or "_no sub-categories_"


def product_grid(cards: list[dict[str, Any]], *, columns: int = 6) -> None:
    """Product cards in a grid: photo (or why there is none), title, label."""
    for start in range(0, len(cards), columns):
        cols = st.columns(columns)
        for col, card in zip(cols, cards[start : start + columns]):
            with col:
                if card["image_status"] == "ok" and card["image"]:  # remote URLs: only once fetched (ingest --fetch-images)
                    st.image(card["image"], width="stretch")
                else:
                    st.caption(f"no photo ({card['image_status']})")
                st.markdown(f"**{card['title']}**")
                st.caption(f"{card['platform']} #{card['external_id']} · {card['label'] or 'unlabelled'}")


def job_status(job: Any) -> None:
    """A background job's state: progress bar while it runs, the outcome when it ended, its log."""
    if job is None:
        return
    when = f"{job.created_at:%Y-%m-%d %H:%M}"
    who = job.params.get("actor") or "?"
    if job.status in ("queued", "running"):
        st.progress(job.progress, text=f"{job.kind} job #{job.id} ({who}, {when}): {job.message}")
    elif job.status == "done":
        st.success(f"{job.kind} job #{job.id} ({who}, {when}) finished: {job.log.strip().splitlines()[-1] if job.log else ''}")
    else:
        st.error(f"{job.kind} job #{job.id} ({who}, {when}) failed; nothing was changed. {job.error or ''}")
    if job.log:
        with st.expander(f"Log of job #{job.id}"):
            st.code(job.log[-4000:], language=None)


def start_job(kind: str) -> None:
    """Start a background job of `kind`; a refusal (one is running already) becomes the flash message."""
    try:
        jobs.start(cache.db_url(), kind=kind, actor=actor())
    except CurationError as exc:
        st.session_state["flash"] = ("error", str(exc))


def follow_job(job: Any) -> None:
    """Show the job's state; when a job this session saw running has ended, rerun the whole page for its results."""
    job_status(job)
    if job is None:
        return
    seen = f"{job.kind}_job_seen"
    if job.status in ("queued", "running"):
        st.session_state[seen] = job.id
    elif st.session_state.get(seen) == job.id:
        st.session_state.pop(seen)
        st.rerun(scope="app")


def audit_table(events: list[Any]) -> None:
    """Recent audit events, newest first, with an Undo button on those that can be undone."""
    if not events:
        st.caption("No changes yet.")
        return
    for event in events:
        left, right = st.columns([4, 1], vertical_alignment="center")
        state = f" · undone by #{event.undone_by_id}" if event.undone_by_id else ""
        what = actions.label(event.action)
        left.markdown(f"`#{event.id}` {event.time:%Y-%m-%d %H:%M} · **{event.actor}** · _{what}_ · {event.summary}{state}")
        undoable = actions.undoable(event.action) and not event.undone_by_id
        if undoable and right.button("Undo", key=f"undo_{event.id}"):
            if perform("undo", event_id=event.id):
                st.session_state["flash"] = ("ok", f"Undid #{event.id}: {event.summary}")
            st.rerun()


def prediction_cards(rows: list[dict[str, Any]], *, levels: list[str], columns: int = 4) -> None:
    """Cards comparing label and prediction, with per-level confidence."""
    for start in range(0, len(rows), columns):
        for col, row in zip(st.columns(columns), rows[start : start + columns]):
            with col.container(border=True):
                if isinstance(row["image"], str) and row["image"]:  # pandas turns a missing photo into NaN
                    st.image(row["image"], width="stretch")
                else:
                    st.caption("no photo")
                st.markdown(f"**{row['title']}**")
                mark = {True: ":green[agrees]", False: ":red[disagrees]", None: "unlabelled"}[row["agrees"]]
                st.caption(f"label: {row['label'] or '—'}")
                st.caption(f"predicted: {row['predicted']} · {mark} · stage {row['stage']}")
                confs = " · ".join(
                    f"L{i + 1} {row[c]:.2f}" for i, c in enumerate(levels) if row[c] == row[c] and row[c] is not None
                )
                st.caption(f"confidence {row['confidence']:.2f} ({confs})")
