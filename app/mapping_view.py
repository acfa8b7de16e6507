"""The Mapping page's parts: a platform's categories and their mapping onto the master taxonomy, the selected
category's sample products, suggestion and runners-up, the decisions (each one registered, audited, undoable
action through `app.widgets.perform`), bulk confirm, the "Suggest mappings" background job and recent decisions.

Category names, product titles, paths and actors come from platform files or from people: they are shown with
`st.text` / `st.dataframe`, or escaped (`plain`) where Streamlit renders markdown (alerts, progress text).
"""

from __future__ import annotations

import re
from typing import Any

import streamlit as st

from app import cache
from app.widgets import actor, perform
from core import jobs
from db import actions
from db.repo import CurationError

STATUS_LABELS = {
    "suggested": "suggested",
    "confirmed": "confirmed",
    "rejected": "rejected",
    "no_equivalent": "no master equivalent",
    "unmapped": "not suggested yet",
}
DECISIONS = ("confirm_mapping", "reject_mapping", "bulk_confirm_mappings", "suggest_mappings")
NO_EQUIVALENT = "(no master equivalent)"
_MARKUP = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=\"'])")


def plain(text: Any) -> str:
    """`text` with every markdown / HTML character backslash-escaped, for the widgets that render markdown."""
    return _MARKUP.sub(r"\\\1", str(text))


def flash() -> None:
    """The outcome of the last decision (kept across the rerun that follows it), shown literally."""
    message = st.session_state.pop("flash", None)
    if message:
        kind, text = message
        (st.success if kind == "ok" else st.error)(plain(text))


def decide(action: str, done: str, **kwargs: Any) -> None:
    """A decision button's callback: run the registered action as one transaction (`app.widgets.perform`) and say
    what happened. It runs before the rerun, with what the page showed when the button was pressed (that category,
    that master node, that threshold), even if someone else changed the mapping since; their change is refused."""
    if perform(action, **kwargs):
        st.session_state["flash"] = ("ok", f"{done} Undo it under Recent decisions.")


# ---------------------------------------------------------------- the category table (pure)


def status_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        out[row["status"]] = out.get(row["status"], 0) + 1
    return out


def bulk_candidates(rows: list[dict[str, Any]], min_confidence: float) -> list[dict[str, Any]]:
    """The rows `db.mappings.bulk_confirm` would confirm: still suggested, onto a master node, confident enough."""
    return [
        r
        for r in rows
        if r["status"] == "suggested" and r["master_node_id"] is not None and (r["confidence"] or 0.0) >= min_confidence
    ]


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The categories as the table shows them."""
    return [
        {
            "category": r["path"],
            "products": r["products"],
            "status": STATUS_LABELS.get(r["status"], r["status"]),
            "master category": r["master_path"] or ("" if r["status"] != "suggested" else NO_EQUIVALENT),
            "confidence": r["confidence"],
            "ambiguous": r["ambiguous"],
        }
        for r in rows
    ]


def candidate_rows(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A suggestion's candidates, best first, with their signals."""
    return [
        {
            "master category": c.get("path") or NO_EQUIVALENT,
            "confidence": c.get("confidence"),
            "vote": c.get("vote"),
            "name": c.get("name"),
            "centroid": c.get("centroid"),
        }
        for c in candidates
    ]


# ---------------------------------------------------------------- widgets


def summary(rows: list[dict[str, Any]]) -> None:
    counts, products = status_counts(rows), sum(r["products"] for r in rows)
    mapped = sum(r["products"] for r in rows if r["status"] == "confirmed")
    cols = st.columns(4)
    cols[0].metric("Categories", f"{len(rows):,}")
    cols[1].metric("Confirmed", f"{counts.get('confirmed', 0):,}")
    cols[2].metric("Suggested", f"{counts.get('suggested', 0):,}")
    cols[3].metric("Products mapped", f"{mapped:,}", help=f"of {products:,} products in a category")


def status_filter(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The status filter (with the count of each status); returns the rows that pass it."""
    counts = status_counts(rows)
    status = st.selectbox(
        "Status",
        ["all", *[s for s in STATUS_LABELS if s in counts]],
        key="map_status",
        format_func=lambda s: f"all ({len(rows):,})" if s == "all" else f"{STATUS_LABELS[s]} ({counts[s]:,})",
    )
    return rows if status == "all" else [r for r in rows if r["status"] == status]


def category_table(rows: list[dict[str, Any]]) -> None:
    """The categories with their product count, status, master category, confidence and "ambiguous" flag."""
    number = st.column_config.NumberColumn
    st.dataframe(
        table_rows(rows),
        hide_index=True,
        width="stretch",
        height=min(420, 38 + 35 * max(len(rows), 1)),
        column_config={
            "category": st.column_config.TextColumn(width="medium"),
            "master category": st.column_config.TextColumn(width="medium"),
            "products": number(width="small"),
            "confidence": number(format="%.2f", width="small"),
            "ambiguous": st.column_config.CheckboxColumn(width="small"),
        },
    )


def bulk_confirm(platform: str, rows: list[dict[str, Any]]) -> None:
    """A confidence slider and the button that confirms every suggestion at or above it, with the count shown first."""
    slider, button = st.columns([3, 2], vertical_alignment="bottom")
    low = slider.slider("Bulk confirm: minimum confidence", 0.0, 1.0, 0.9, step=0.01, key="map_bulk_min")
    ready = bulk_candidates(rows, low)
    n = len(ready)
    label = f"Confirm {n} suggestion{'' if n == 1 else 's'} >= {low:.2f}"
    products = sum(r["products"] for r in ready)
    button.button(
        label,
        key="map_bulk",
        disabled=not n,
        help="One action: a single Undo reverses all of them.",
        on_click=decide,
        args=("bulk_confirm_mappings", f"Confirmed {n} mappings ({products:,} products labelled)."),
        kwargs={"platform": platform, "min_confidence": low},
    )


def samples(cards: list[dict[str, Any]]) -> None:
    """Sample products of the category: their photos in a row (where there are any), then their titles as text."""
    if not cards:
        st.caption("No products.")
        return
    photos = [c["image"] for c in cards if c["image_status"] == "ok" and c["image"]]
    if photos:
        st.image(photos, width=72)
    st.text("\n".join(f"· {c['title'] or '#' + c['external_id']}" for c in cards))


def suggestion(row: dict[str, Any]) -> None:
    """Where the category goes now (its status and master node) and the suggestion's ranked candidates."""
    status, target = row["status"], row["master_path"]
    if status == "unmapped":
        st.text("No suggestion yet: press Suggest mappings, or choose a master category below.")
        return
    conf = "" if row["confidence"] is None else f", confidence {row['confidence']:.2f}"
    flag = ", ambiguous: the runner-up is close" if row["ambiguous"] else ""
    what = {
        "suggested": f"Suggested: {target or 'no master equivalent (press No master equivalent to accept)'}{conf}{flag}",
        "confirmed": f"Confirmed: {target}",
        "rejected": f"Rejected suggestion: {target or NO_EQUIVALENT}",
        "no_equivalent": "Marked: no master equivalent",
    }[status]
    st.text(what)
    if row["candidates"]:
        st.dataframe(
            candidate_rows(row["candidates"]),
            hide_index=True,
            width="stretch",
            column_config={
                "master category": st.column_config.TextColumn(width="medium"),
                **{
                    c: st.column_config.NumberColumn(format="%.2f", width="small")
                    for c in ("confidence", "vote", "name", "centroid")
                },
            },
        )


def decisions(row: dict[str, Any], masters: dict[int, str]) -> None:
    """Confirm the suggestion, change it (a searchable master picker), reject it, or mark "no master equivalent"."""
    cid, status, current = row["category_id"], row["status"], row["master_node_id"]
    n = f"{row['products']:,} product{'' if row['products'] == 1 else 's'}"
    c1, c2, c3 = st.columns([2, 2, 3])
    c1.button(
        "Confirm",
        key="map_confirm",
        type="primary",
        disabled=current is None or status == "confirmed",
        width="stretch",
        on_click=decide,
        args=("confirm_mapping", f"Mapping confirmed: its {n} now carry the master label."),
        kwargs={"category_id": cid},
    )
    c2.button(
        "Reject",
        key="map_reject",
        disabled=status == "rejected",
        width="stretch",
        on_click=decide,
        args=("reject_mapping", f"Suggestion rejected ({n} unlabelled)."),
        kwargs={"category_id": cid},
    )
    c3.button(
        "No master equivalent",
        key="map_none",
        disabled=status == "no_equivalent",
        width="stretch",
        on_click=decide,
        args=("reject_mapping", f"Marked as having no master equivalent ({n})."),
        kwargs={"category_id": cid, "no_equivalent": True},
    )
    ids = list(masters)
    picked = st.selectbox(
        "Change: map to another master category (type to search)",
        ids,
        index=ids.index(current) if current in masters else 0,
        key=f"map_pick_{cid}",
        format_func=masters.get,
    )
    st.button(
        "Map to the chosen category",
        key="map_change",
        disabled=picked is None or (picked == current and status == "confirmed"),
        on_click=decide,
        args=("confirm_mapping", f"Mapping changed: its {n} now carry the chosen master label."),
        kwargs={"category_id": cid, "node_id": picked},
    )


def history() -> None:
    """Recent mapping decisions, newest first, each with Undo while it can be undone."""
    events = cache.audit_events(DECISIONS, limit=10)
    if not events:
        st.caption("No mapping decisions yet.")
    for event in events:
        left, right = st.columns([6, 1], vertical_alignment="center")
        state = f" · undone by #{event.undone_by_id}" if event.undone_by_id else ""
        left.text(
            f"#{event.id} {event.time:%Y-%m-%d %H:%M} · {event.actor} · {actions.label(event.action)} · {event.summary}{state}"
        )
        if actions.undoable(event.action) and not event.undone_by_id:
            right.button("Undo", key=f"map_undo_{event.id}", on_click=undo, args=(event.id,))


def undo(event_id: int) -> None:
    """The Undo button's callback (before the rerun, like `decide`)."""
    if perform("undo", event_id=event_id):
        st.session_state["flash"] = ("ok", f"Undid #{event_id}.")


# ---------------------------------------------------------------- the "Suggest mappings" job


def running(job: Any) -> bool:
    return job is not None and job.status in ("queued", "running")


def start_suggest(platform: str) -> None:
    """Queue the suggestion job for `platform` and start its process; a refusal becomes the flash message."""
    try:
        jobs.start(cache.db_url(), kind="mapping", actor=actor(), params={"platform": platform})
    except CurationError as exc:
        st.session_state["flash"] = ("error", str(exc))


def suggest_status(job: Any) -> None:
    """The suggestion job's state; when a job this session saw running has ended, rerun the page for its results."""
    if job is None:
        return
    who, when = job.params.get("actor") or "?", f"{job.created_at:%Y-%m-%d %H:%M}"
    what = f"Suggest job #{job.id} for {job.params.get('platform', '?')} ({who}, {when})"
    if running(job):
        st.progress(job.progress, text=plain(f"{what}: {job.message}"))
        st.session_state["mapping_job_seen"] = job.id
        return
    lines = job.log.strip().splitlines() if job.log else []
    if job.status == "done":
        st.success(plain(f"{what} finished: {lines[-1] if lines else ''}"))
    else:
        st.error(plain(f"{what} failed; nothing was changed. {job.error or ''}"))
    if lines:
        with st.expander(f"Log of job #{job.id}"):
            st.code("\n".join(lines)[-4000:], language=None)
    if st.session_state.get("mapping_job_seen") == job.id:
        st.session_state.pop("mapping_job_seen")
        st.rerun(scope="app")


@st.fragment(run_every=2.0)
def suggest_poll() -> None:
    suggest_status(cache.latest_job("mapping"))


def suggest_control(platform: str) -> None:
    """The "Suggest mappings" button (a background job, one at a time) and the latest job's state."""
    job = cache.latest_job("mapping")
    if st.button(
        "Suggest mappings",
        key="map_suggest",
        disabled=running(job),
        help="Suggest a master category for every category of this platform from the active model's predictions of "
        "its products, the similarity of the names and of the products. Decided categories keep their decision. "
        "Runs in the background: you can leave this page.",
    ):
        start_suggest(platform)
        st.rerun()
    if running(job):
        suggest_poll()  # polled only while a job runs
    else:
        suggest_status(job)
