"""Widgets shared by pages: the actor box, the taxonomy tree, product grids, confirmed actions, undo."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import auth, cache
from app.text import is_cut, md, short
from core import jobs
from db import actions
from db.repo import CurationError
from db.session import masked_url, transaction
from db.users import Identity


def actor() -> Identity:
    """Who is acting: the signed-in user (app/auth.py), whom the audit log names; refused when nobody is signed in."""
    user = auth.current_user()
    if user is None:
        raise CurationError("Sign in first.")
    return user


def sidebar() -> None:
    """Who is signed in, with which role, the sign-out button and the database (its credentials masked)."""
    user = auth.current_user()
    with st.sidebar:
        if user is not None:
            st.text(f"Signed in as {user.name} ({user.role})")
            if st.button("Sign out", key="sign_out", icon=":material/logout:"):
                auth.sign_out("You have signed out.")
                st.rerun()
        st.text(f"Database: {masked_url(cache.db_url())}")


def flash() -> None:
    """Show the outcome of the last action (kept across the rerun that follows it)."""
    message = st.session_state.pop("flash", None)
    if message:
        kind, text = message
        (st.success if kind == "ok" else st.error)(md(text))  # messages name categories, products, people: text


def perform(action: str, **kwargs: Any) -> bool:
    """Run the registered action `action` (db/actions.py) as one transaction; a refusal becomes the flash message."""
    try:
        with transaction(cache.factory()) as session:
            actions.perform(session, action, user=actor(), **kwargs)
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
        st.warning(md(pending["message"]))
        yes, no = st.columns(2)
        allowed = auth.may(pending["action"])
        if yes.button("Confirm", key="confirm_action", type="primary", width="stretch", disabled=not allowed):
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
            lines.append(f"{'  ' * indent}- **{md(row['name'])}** · {row['products']:,}")
            walk(row["id"], indent + 1)

    walk(root_id, 0)
    return "\n".join(lines) or "_no sub-categories_"


TITLE_CHARS = 120  # of a title on a card; the whole title in the card's "Full text" expander
CAPTION_CHARS = 200  # of an id, a brand, a category path on a card


def photo(image: str, *, why: str = "unreadable", **kwargs: Any) -> bool:
    """`st.image(image)`; a file that is no longer a readable image (replaced, truncated, a decompression bomb,
    gone) shows "no photo (unreadable)" instead of a traceback. Returns whether the photo was shown."""
    from PIL import Image
    from streamlit.runtime.media_file_storage import MediaFileStorageError

    try:
        st.image(image, **kwargs)
    except (OSError, ValueError, Image.DecompressionBombError, MediaFileStorageError):
        st.caption(f"no photo ({why})")
        return False
    return True


def card_text(title: Any, *, chars: int = TITLE_CHARS, heading: bool = False) -> None:
    """A card's title, bold (a sub-header when `heading`) and cut to `chars` characters (escaped: a title is text);
    a cut title's full text in a collapsed expander, so a long one neither stretches the card nor is lost."""
    if heading:
        st.subheader(md(short(title, chars)), anchor=False)
    else:
        st.markdown(f"**{md(short(title, chars))}**")
    if is_cut(title, chars):
        with st.expander("Full text"):
            st.text(title)


def product_grid(cards: list[dict[str, Any]], *, columns: int = 6) -> None:
    """Product cards in a grid: photo (or why there is none), title, label."""
    for start in range(0, len(cards), columns):
        cols = st.columns(columns)
        for col, card in zip(cols, cards[start : start + columns]):
            with col:
                if card["image_status"] == "ok" and card["image"]:  # remote URLs: only once fetched (ingest --fetch-images)
                    photo(card["image"], width="stretch")
                else:
                    st.caption(f"no photo ({card['image_status']})")
                card_text(card["title"])
                where = f"{card['platform']} #{card['external_id']} · {card['label'] or 'unlabelled'}"
                st.caption(md(short(where, CAPTION_CHARS)))


def job_status(job: Any) -> None:
    """A background job's state: progress bar while it runs, the outcome when it ended, its log."""
    if job is None:
        return
    when = f"{job.created_at:%Y-%m-%d %H:%M}"
    what = f"{job.kind} job #{job.id} ({job.params.get('actor') or '?'}, {when})"  # messages and logs name categories
    if job.status in ("queued", "running"):
        st.progress(job.progress, text=md(f"{what}: {job.message}"))
    elif job.status == "done":
        st.success(md(f"{what} finished: {job.log.strip().splitlines()[-1] if job.log else ''}"))
    else:
        st.error(md(f"{what} failed; nothing was changed. {job.error or ''}"))
    if job.log:
        with st.expander(f"Log of job #{job.id}"):
            st.code(job.log[-4000:], language=None)


def start_job(kind: str) -> None:
    """Start a background job of `kind` as the signed-in user; a refusal (below the job's role, or one is running
    already) becomes the flash message."""
    try:
        jobs.start(cache.db_url(), kind=kind, user=actor())
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


def filling() -> bool:
    """Whether the job that fills in behind a starting app (`make run`: discovery, the catalogue map, label scores;
    core/steps/fill.py) is queued or running."""
    job = cache.latest_job("fill")
    return job is not None and job.status in ("queued", "running")


@st.fragment(run_every=2.0)
def fill_status() -> None:
    """That job's progress while it runs (and its outcome once, in the session that saw it run); the whole page
    reruns when it ends, with what it made."""
    job = cache.latest_job("fill")
    if job is not None and (job.status in ("queued", "running") or st.session_state.get("fill_job_seen") == job.id):
        follow_job(job)


SUMMARY_CHARS = 300  # of an audit summary in a history line


def audit_table(events: list[Any]) -> None:
    """Recent audit events, newest first, with an Undo button on those that can be undone."""
    if not events:
        st.caption("No changes yet.")
        return
    for event in events:
        left, right = st.columns([4, 1], vertical_alignment="center")
        state = f" · undone by #{event.undone_by_id}" if event.undone_by_id else ""
        what = actions.label(event.action)
        summary = md(short(event.summary, SUMMARY_CHARS))
        left.markdown(f"`#{event.id}` {event.time:%Y-%m-%d %H:%M} · **{md(event.actor)}** · _{what}_ · {summary}{state}")
        undoable = actions.undoable(event.action) and not event.undone_by_id
        if undoable and right.button("Undo", key=f"undo_{event.id}", disabled=not auth.may("undo")):
            if perform("undo", event_id=event.id):
                st.session_state["flash"] = ("ok", f"Undid #{event.id}: {short(event.summary, SUMMARY_CHARS)}")
            st.rerun()


def prediction_cards(rows: list[dict[str, Any]], *, levels: list[str], columns: int = 4) -> None:
    """Cards comparing label and prediction, with per-level confidence."""
    for start in range(0, len(rows), columns):
        for col, row in zip(st.columns(columns), rows[start : start + columns]):
            with col.container(border=True):
                if isinstance(row["image"], str) and row["image"]:  # pandas turns a missing photo into NaN
                    photo(row["image"], width="stretch")
                else:
                    st.caption("no photo")
                card_text(row["title"])
                mark = {True: ":green[agrees]", False: ":red[disagrees]", None: "unlabelled"}[row["agrees"]]
                st.caption(f"label: {md(short(row['label'], CAPTION_CHARS)) or '—'}")
                st.caption(f"predicted: {md(short(row['predicted'], CAPTION_CHARS))} · {mark} · stage {row['stage']}")
                confs = " · ".join(
                    f"L{i + 1} {row[c]:.2f}" for i, c in enumerate(levels) if row[c] == row[c] and row[c] is not None
                )
                st.caption(f"confidence {row['confidence']:.2f} ({confs})")
