"""The Mapping page's parts: a platform's categories and their mapping onto the master taxonomy, the selected
category's sample products, suggestion and runners-up, the decisions (each one registered, audited, undoable
action through `app.widgets.perform`), bulk confirm, the "Suggest mappings" background job and recent decisions.
And the other target, once the Google Product Taxonomy is imported: the master categories and their Google category,
the same decisions (`decide_standard`), the "Suggest Google categories" job and the shopping-feed download.

Category names, product titles, paths and actors come from platform files or from people: they are shown with
`st.text` / `st.dataframe`, or escaped (`app.text.md`) where Streamlit renders markdown (alerts, progress text).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import streamlit as st

from app import cache
from app.auth import may, may_start
from app.text import md, short
from app.widgets import actor, perform, photo
from core import jobs
from core.data.google_taxonomy import PLATFORM as GOOGLE
from core.steps.standard import feed_csv
from db import actions
from db.repo import CurationError
from db.session import transaction

STATUS_LABELS = {
    "suggested": "suggested",
    "confirmed": "confirmed",
    "rejected": "rejected",
    "no_equivalent": "no master equivalent",
    "unmapped": "not suggested yet",
}
DECISIONS = ("confirm_mapping", "reject_mapping", "bulk_confirm_mappings", "suggest_mappings", "propose_category")
STANDARD_DECISIONS = ("decide_standard", "suggest_standard")
NO_EQUIVALENT = "(no master equivalent)"
NO_GOOGLE = "(no Google equivalent)"
PLATFORMS = "platforms"  # the targets of the page: a platform onto the master taxonomy, or the master onto GOOGLE
TARGETS = {PLATFORMS: "a platform onto the master taxonomy", GOOGLE: "the master taxonomy onto Google"}
SAMPLE_CHARS = 200  # of a sample product's title
IMPORT_HINT = "To map the master taxonomy onto the Google Product Taxonomy, import it: `python -m core taxonomy import-google`"


def flash() -> None:
    """The outcome of the last decision (kept across the rerun that follows it), shown literally."""
    message = st.session_state.pop("flash", None)
    if message:
        kind, text = message
        (st.success if kind == "ok" else st.error)(md(text))


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


def bulk_candidates(rows: list[dict[str, Any]], min_confidence: float, *, target: str = "master_node_id") -> list[dict[str, Any]]:
    """The rows bulk confirm would confirm: still suggested, with a target (`target`: "master_node_id" for a platform's
    categories, as `db.mappings.bulk_confirm` picks them; "category_id" for master categories onto Google),
    confident enough."""
    return [
        r for r in rows if r["status"] == "suggested" and r[target] is not None and (r["confidence"] or 0.0) >= min_confidence
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


def status_filter(rows: list[dict[str, Any]], key: str = "map_status") -> list[dict[str, Any]]:
    """The status filter (with the count of each status); returns the rows that pass it."""
    counts = status_counts(rows)
    status = st.selectbox(
        "Status",
        ["all", *[s for s in STATUS_LABELS if s in counts]],
        key=key,
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
        disabled=(not n) or not may("bulk_confirm_mappings"),
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
        photo(photos, width=72, why="a photo is unreadable")
    st.text("\n".join(f"· {short(c['title'] or '#' + c['external_id'], SAMPLE_CHARS)}" for c in cards))


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
        disabled=(current is None or status == "confirmed") or not may("confirm_mapping"),
        width="stretch",
        on_click=decide,
        args=("confirm_mapping", f"Mapping confirmed: its {n} now carry the master label."),
        kwargs={"category_id": cid, "node_id": current, "expected_version": row["version"]},  # the suggestion shown
    )
    c2.button(
        "Reject",
        key="map_reject",
        disabled=(status == "rejected") or not may("reject_mapping"),
        width="stretch",
        on_click=decide,
        args=("reject_mapping", f"Suggestion rejected ({n} unlabelled)."),
        kwargs={"category_id": cid, "expected_version": row["version"]},
    )
    c3.button(
        "No master equivalent",
        key="map_none",
        disabled=(status == "no_equivalent") or not may("reject_mapping"),
        width="stretch",
        on_click=decide,
        args=("reject_mapping", f"Marked as having no master equivalent ({n})."),
        kwargs={"category_id": cid, "no_equivalent": True, "expected_version": row["version"]},
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
        disabled=(picked is None or (picked == current and status == "confirmed")) or not may("confirm_mapping"),
        on_click=decide,
        args=("confirm_mapping", f"Mapping changed: its {n} now carry the chosen master label."),
        kwargs={"category_id": cid, "node_id": picked, "expected_version": row["version"]},
    )
    if status == "no_equivalent":
        propose_new(row, masters)


def default_parent(candidates: list[dict[str, Any]], masters: dict[int, str]) -> int | None:
    """Where a category with no master equivalent most likely belongs: its best master candidate when that is an
    inner node, else that leaf's parent (None when it has no candidate)."""
    best = next((c["node_id"] for c in candidates if c.get("node_id") in masters), None)
    if best is None:
        return None
    path = masters[best]
    if any(other.startswith(path + " > ") for other in masters.values()):
        return best
    parent = path.rsplit(" > ", 1)[0] if " > " in path else None
    return next((i for i, p in masters.items() if p == parent), best)


def propose_new(row: dict[str, Any], masters: dict[int, str]) -> None:
    """ "No master equivalent": propose the category as a new master category (the proposal flow of the Clusters page),
    or, once proposed, say where it stands; once accepted, map the category onto the category it created."""
    cid, name = row["category_id"], row["path"].split(" > ")[-1]
    proposal = cache.category_proposal(cid)
    st.markdown("**Propose as a new master category**")
    if proposal is not None and proposal["status"] == "open":
        st.text(
            f"Proposed as {proposal['parent']} > {proposal['name']} (proposal #{proposal['id']}): decide it on the Clusters page."
        )
        return
    if proposal is not None and proposal["created_node_id"] is not None:
        st.text(f"Proposal #{proposal['id']} was accepted as {proposal['created']}.")
        st.button(
            "Map onto the new category",
            key="map_onto_created",
            disabled=not may("confirm_mapping"),
            on_click=decide,
            args=("confirm_mapping", "Mapped onto the category its proposal created."),
            kwargs={"category_id": cid, "node_id": proposal["created_node_id"], "expected_version": row["version"]},
        )
        return
    ids = list(masters)
    parent = default_parent(row.get("candidates") or [], masters)
    c1, c2 = st.columns(2)
    picked = c1.selectbox(
        "Under (type to search)",
        ids,
        index=ids.index(parent) if parent in masters else 0,
        key=f"map_new_parent_{cid}",
        format_func=masters.get,
    )
    new_name = c2.text_input("Name", value=name, key=f"map_new_name_{cid}")
    st.button(
        "Propose",
        key="map_propose",
        disabled=(picked is None or not new_name.strip()) or not may("propose_category"),
        on_click=decide,
        args=(
            "propose_category",
            f"Proposed {row['products']:,} products as a new master category; decide it on the Clusters page.",
        ),
        kwargs={"category_id": cid, "parent_node_id": picked, "name": new_name},
    )


def history(kinds: tuple[str, ...] = DECISIONS) -> None:
    """Recent mapping decisions (of the actions `kinds`), newest first, each with Undo while it can be undone."""
    events = cache.audit_events(kinds, limit=10)
    if not events:
        st.caption("No mapping decisions yet.")
    for event in events:
        left, right = st.columns([6, 1], vertical_alignment="center")
        state = f" · undone by #{event.undone_by_id}" if event.undone_by_id else ""
        left.text(
            f"#{event.id} {event.time:%Y-%m-%d %H:%M} · {event.actor} · {actions.label(event.action)} · {event.summary}{state}"
        )
        if actions.undoable(event.action) and not event.undone_by_id:
            right.button("Undo", key=f"map_undo_{event.id}", disabled=not may("undo"), on_click=undo, args=(event.id,))


def undo(event_id: int) -> None:
    """The Undo button's callback (before the rerun, like `decide`)."""
    if perform("undo", event_id=event_id):
        st.session_state["flash"] = ("ok", f"Undid #{event_id}.")


# ---------------------------------------------------------------- the "Suggest mappings" job


def running(job: Any) -> bool:
    return job is not None and job.status in ("queued", "running")


def start_suggest(kind: str, params: dict[str, Any]) -> None:
    """Queue the suggestion job (`kind` "mapping" or "standard") and start its process; a refusal becomes the flash."""
    try:
        jobs.start(cache.db_url(), kind=kind, user=actor(), params=params)
    except CurationError as exc:
        st.session_state["flash"] = ("error", str(exc))


def suggest_status(job: Any) -> None:
    """The suggestion job's state; when a job this session saw running has ended, rerun the page for its results."""
    if job is None:
        return
    who, when = job.params.get("actor") or "?", f"{job.created_at:%Y-%m-%d %H:%M}"
    target = job.params.get("platform") or job.params.get("standard") or "?"
    what, seen = f"Suggest job #{job.id} for {target} ({who}, {when})", f"{job.kind}_job_seen"
    if running(job):
        st.progress(job.progress, text=md(f"{what}: {job.message}"))
        st.session_state[seen] = job.id
        return
    lines = job.log.strip().splitlines() if job.log else []
    if job.status == "done":
        st.success(md(f"{what} finished: {lines[-1] if lines else ''}"))
    else:
        st.error(md(f"{what} failed; nothing was changed. {job.error or ''}"))
    if lines:
        with st.expander(f"Log of job #{job.id}"):
            st.code("\n".join(lines)[-4000:], language=None)
    if st.session_state.get(seen) == job.id:
        st.session_state.pop(seen)
        st.rerun(scope="app")


@st.fragment(run_every=2.0)
def suggest_poll(kind: str) -> None:
    suggest_status(cache.latest_job(kind))


def job_control(kind: str, params: dict[str, Any], label: str, key: str, help: str) -> None:
    """A suggestion job's button (a background job, one of a kind at a time) and the latest job's state."""
    job = cache.latest_job(kind)
    if st.button(
        label,
        key=key,
        disabled=running(job) or not may_start(kind),
        help=f"{help} Runs in the background: you can leave this page.",
    ):
        start_suggest(kind, params)
        st.rerun()
    if running(job):
        suggest_poll(kind)  # polled only while a job runs
    else:
        suggest_status(job)


def suggest_control(platform: str) -> None:
    """The "Suggest mappings" button for `platform` and its latest job."""
    job_control(
        "mapping",
        {"platform": platform},
        "Suggest mappings",
        "map_suggest",
        "Suggest a master category for every category of this platform from the active model's predictions of "
        "its products, the similarity of the names and of the products. Decided categories keep their decision.",
    )


# ---------------------------------------------------------------- the other target: the master taxonomy onto Google


def target_choice(standards: list[str]) -> str:
    """PLATFORMS or GOOGLE: a radio, shown only once the Google Product Taxonomy is imported (else how to import it)."""
    if GOOGLE not in standards:
        st.caption(IMPORT_HINT)
        return PLATFORMS
    return st.radio("Map", list(TARGETS), key="map_target", horizontal=True, format_func=TARGETS.get)


def google_suggest_control() -> None:
    """The "Suggest Google categories" button (the "standard" job) and its latest job."""
    job_control(
        "standard",
        {"standard": GOOGLE},
        "Suggest Google categories",
        "std_suggest",
        "Suggest a Google category for every master category from the similarity of the names and paths and of "
        "the master category's products to the Google path. Decided categories keep their decision.",
    )


def feed_download() -> None:
    """The shopping feed (every product with its Google category) as CSV, made when the button is pressed."""
    st.download_button(
        "Download shopping feed (CSV)",
        data=partial(feed_csv, cache.db_url(), GOOGLE),
        file_name="shopping_feed.csv",
        mime="text/csv",
        key="std_feed",
        on_click="ignore",
        help="One row per product: id, title, master category (its label, else the active model's prediction) and "
        "the Google category confirmed for it or for its nearest ancestor.",
    )


def google_table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The master categories as the table shows them, with their Google category's path and id."""
    return [
        {
            "master category": r["master_path"],
            "status": STATUS_LABELS.get(r["status"], r["status"]),
            "Google category": r["standard_path"] or ("" if r["status"] != "suggested" else NO_GOOGLE),
            "Google id": r["code"] or "",
            "confidence": r["confidence"],
            "ambiguous": r["ambiguous"],
        }
        for r in rows
    ]


def google_candidate_rows(candidates: list[dict[str, Any]], cats: dict[int, dict[str, str]]) -> list[dict[str, Any]]:
    """A suggestion's Google candidates, best first, with their name and centroid signals."""
    return [
        {
            "Google category": c.get("path") or NO_GOOGLE,
            "Google id": cats.get(c.get("category_id"), {}).get("code", ""),
            "confidence": c.get("confidence"),
            "name": c.get("name"),
            "centroid": c.get("centroid"),
        }
        for c in candidates
    ]


def google_summary(rows: list[dict[str, Any]]) -> None:
    counts = status_counts(rows)
    cols = st.columns(3)
    cols[0].metric("Master categories", f"{len(rows):,}")
    cols[1].metric("Confirmed", f"{counts.get('confirmed', 0):,}")
    cols[2].metric("Suggested", f"{counts.get('suggested', 0):,}")


def google_table(rows: list[dict[str, Any]]) -> None:
    """The master categories with their status, Google category (path and id), confidence and "ambiguous" flag."""
    number = st.column_config.NumberColumn
    st.dataframe(
        google_table_rows(rows),
        hide_index=True,
        width="stretch",
        height=min(420, 38 + 35 * max(len(rows), 1)),
        column_config={
            "master category": st.column_config.TextColumn(width="medium"),
            "Google category": st.column_config.TextColumn(width="large"),
            "Google id": st.column_config.TextColumn(width="small"),
            "confidence": number(format="%.2f", width="small"),
            "ambiguous": st.column_config.CheckboxColumn(width="small"),
        },
    )


def decide_each(action: str, done: str, items: list[dict[str, Any]]) -> None:
    """Bulk confirm's callback: the action once per item, all in ONE transaction (all or none); a refusal is the flash."""
    try:
        with transaction(cache.factory()) as session:
            for kwargs in items:
                actions.perform(session, action, user=actor(), **kwargs)
    except CurationError as exc:
        st.session_state["flash"] = ("error", str(exc))
        return
    st.session_state["flash"] = ("ok", f"{done} Undo each under Recent decisions.")


def google_bulk_confirm(rows: list[dict[str, Any]]) -> None:
    """A confidence slider and the button that confirms every Google suggestion at or above it, the count shown first."""
    slider, button = st.columns([3, 2], vertical_alignment="bottom")
    low = slider.slider("Bulk confirm: minimum confidence", 0.0, 1.0, 0.9, step=0.01, key="std_bulk_min")
    ready = bulk_candidates(rows, low, target="category_id")
    n = len(ready)
    button.button(
        f"Confirm {n} suggestion{'' if n == 1 else 's'} >= {low:.2f}",
        key="std_bulk",
        disabled=(not n) or not may("decide_standard"),
        help="One transaction (all or none); each master category gets its own decision, undone one by one.",
        on_click=decide_each,
        args=("decide_standard", f"Confirmed the Google category of {n} master categories."),
        kwargs={
            "items": [
                {"standard": GOOGLE, "node_id": r["node_id"], "category_id": r["category_id"], "expected_version": r["version"]}
                for r in ready
            ]
        },
    )


def google_suggestion(row: dict[str, Any], cats: dict[int, dict[str, str]]) -> None:
    """Where the master category goes in Google now (status, path, id) and the suggestion's ranked candidates."""
    status, target = row["status"], f"{row['standard_path']} (id {row['code']})" if row["category_id"] else None
    if status == "unmapped":
        st.text("No suggestion yet: press Suggest Google categories, or choose a Google category below.")
        return
    conf = "" if row["confidence"] is None else f", confidence {row['confidence']:.2f}"
    flag = ", ambiguous: the runner-up is close" if row["ambiguous"] else ""
    what = {
        "suggested": f"Suggested: {target or 'no Google equivalent'}{conf}{flag}",
        "confirmed": f"Confirmed: {target}",
        "rejected": f"Rejected suggestion: {target or NO_GOOGLE}",
    }[status]
    st.text(what)
    if row["candidates"]:
        st.dataframe(
            google_candidate_rows(row["candidates"], cats),
            hide_index=True,
            width="stretch",
            column_config={
                "Google category": st.column_config.TextColumn(width="large"),
                "Google id": st.column_config.TextColumn(width="small"),
                **{c: st.column_config.NumberColumn(format="%.2f", width="small") for c in ("confidence", "name", "centroid")},
            },
        )


def google_decisions(row: dict[str, Any], cats: dict[int, dict[str, str]]) -> None:
    """Confirm the suggestion, reject it, or change it (a searchable picker over the Google categories) and confirm."""
    node, status, current, path = row["node_id"], row["status"], row["category_id"], row["master_path"]
    which = {"standard": GOOGLE, "node_id": node, "expected_version": row["version"]}
    c1, c2 = st.columns(2)
    c1.button(
        "Confirm",
        key="std_confirm",
        type="primary",
        disabled=(current is None or status == "confirmed") or not may("decide_standard"),
        width="stretch",
        on_click=decide,
        args=("decide_standard", f"{path} now goes to Google {row['standard_path']} in the shopping feed."),
        kwargs={**which, "category_id": current},
    )
    c2.button(
        "Reject",
        key="std_reject",
        disabled=(status in ("rejected", "unmapped")) or not may("decide_standard"),
        width="stretch",
        on_click=decide,
        args=("decide_standard", f"Google suggestion for {path} rejected."),
        kwargs={**which, "reject": True},
    )
    ids = list(cats)
    picked = st.selectbox(
        "Change: map to another Google category (type to search)",
        ids,
        index=ids.index(current) if current in cats else 0,
        key=f"std_pick_{node}",
        format_func=lambda i: f"{cats[i]['path']} ({cats[i]['code']})",
    )
    st.button(
        "Map to the chosen Google category",
        key="std_change",
        disabled=(picked is None or (picked == current and status == "confirmed")) or not may("decide_standard"),
        on_click=decide,
        args=("decide_standard", f"{path} now goes to the chosen Google category in the shopping feed."),
        kwargs={**which, "category_id": picked},
    )
