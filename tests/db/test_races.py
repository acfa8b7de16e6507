"""Two curators at once: each conflicting pair of actions, raced by two processes, on SQLite and PostgreSQL.

Each trial builds a small taxonomy, then two worker processes (multiprocessing, spawn) each do one action in its own
transaction through `db.actions.perform`, stating the versions they saw (both read them before either acts, as two
pages rendered at the same moment would), and meet at a barrier just before the action. After both finish the
database must keep every invariant (no label on a retired category, no live category under a retired one, every
redirect ending at an active category, at most one active model version, each proposal decided once, each event
undone at most once), the audit log must agree with the final state (one event per successful action, every
rename / activation chain replays to what is stored), and a loser must be refused with a `CurationError`
(a one-line message), never an IntegrityError / OperationalError traceback. Where both actions stated the same
version of the same thing, at most one may succeed.

A few trials per scenario and backend run in CI; RACE_TRIALS=N runs N each.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import traceback
import types
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select, text

from db import actions, repo, users
from db.models import AuditEvent, Base, Job, Label, ModelVersion, Proposal, ReviewItem, TaxonomyNode
from db.repo import CurationError
from db.session import get_engine, get_sessionmaker, transaction
from tests.db_rows import platform_tree

TRIALS = int(os.environ.get("RACE_TRIALS", "3"))
BARRIER_S = 60
PATHS = {
    "casual": ("Footwear", "Shoes", "Casual Shoes"),
    "sports": ("Footwear", "Shoes", "Sports Shoes"),
    "flips": ("Footwear", "Flip Flops"),
    "tshirts": ("Apparel", "Topwear", "Tshirts"),
}
PRODUCTS = {"p1": "casual", "p2": "casual", "p3": "sports", "p4": "flips", "p5": "tshirts"}


# ---------------------------------------------------------------- the worker processes


def _act(url: str, task: dict[str, Any], barrier) -> tuple[str, str]:
    """One action in its own transaction after the barrier: ("ok" | "refused" | "error", detail)."""
    factory = get_sessionmaker(url)
    try:
        barrier.wait(BARRIER_S)
        if task["name"] == "start_job":  # two Retrain buttons pressed at once
            from core import jobs

            jobs.start(url, kind=task["kwargs"]["kind"], user=users.operator(task["actor"]), spawn=False)
        else:
            with transaction(factory) as s:
                actions.perform(s, task["name"], user=users.operator(task["actor"]), **task["kwargs"])
    except CurationError as exc:
        return "refused", f"{type(exc).__name__}: {exc}"
    except Exception:  # noqa: BLE001 - what the test reports: a traceback a user would have seen
        return "error", traceback.format_exc(limit=4)
    return "ok", ""


def _worker(inbox, outbox, barrier) -> None:
    while (job := inbox.get()) is not None:
        url, task = job
        outbox.put(_act(url, task, barrier))
        get_engine(url).dispose()  # SQLite trials each have their own file


@pytest.fixture(scope="module")
def workers():
    """Two spawned worker processes sharing a barrier; returns run(url, task_a, task_b) -> [outcome_a, outcome_b]."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    pipes = [(ctx.Queue(), ctx.Queue()) for _ in range(2)]
    procs = [ctx.Process(target=_worker, args=(inbox, outbox, barrier), daemon=True) for inbox, outbox in pipes]
    # a spawned child re-runs the parent's __main__ script first; after an AppTest run in this process that is a page
    # script (it crashed the children in the full suite), so the children start from an empty __main__ instead
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        for proc in procs:
            proc.start()
    finally:
        sys.modules["__main__"] = main

    def run(url: str, *tasks: dict[str, Any]) -> list[tuple[str, str]]:
        for (inbox, _), task in zip(pipes, tasks, strict=True):
            inbox.put((url, task))
        return [outbox.get(timeout=BARRIER_S * 2) for _, outbox in pipes]

    yield run
    for inbox, _ in pipes:
        inbox.put(None)
    for proc in procs:
        proc.join(10)


# ---------------------------------------------------------------- the world of one trial


def build(url: str) -> dict[str, int]:
    """Five products in a small taxonomy, a proposal, a review item, three model versions (#1 active)."""
    with transaction(get_sessionmaker(url)) as s:
        ids = platform_tree(s, PATHS, PRODUCTS)
        ids["shoes"] = repo.node_by_path(s, "Footwear > Shoes").id
        proposal = Proposal(parent_node_id=ids["shoes"], name="Loafers", members=[ids["p1"], ids["p2"]], scores={})
        models = [ModelVersion(name=f"m{i}", status="active" if i == 1 else "candidate") for i in (1, 2, 3)]
        s.add_all([proposal, *models])
        s.flush()
        item = ReviewItem(
            product_id=ids["p1"],
            run_key="r",
            score=0.9,
            self_confidence=0.1,
            margin=-0.5,
            label_node_id=ids["casual"],
            suggested_node_id=ids["sports"],
            suggested_confidence=0.8,
        )
        s.add(item)
        s.flush()
        ids |= {"proposal": proposal.id, "item": item.id, **{f"m{i}": m.id for i, m in zip((1, 2, 3), models, strict=True)}}
    return ids


def seen(url: str, model, row_id: int) -> int | None:
    """The version of a row as a page rendered it (None where the schema has no versions yet: the code before them)."""
    with get_sessionmaker(url)() as s:
        return getattr(s.get(model, row_id), "version", None)


def stated(**kwargs: Any) -> dict[str, Any]:
    """Action arguments without the versions the schema cannot state (see `seen`)."""
    out = {k: v for k, v in kwargs.items() if v is not None}
    if "expected" in out:
        out["expected"] = {k: v for k, v in out["expected"].items() if v is not None} or None
        if out["expected"] is None:
            del out["expected"]
    return out


def do(url: str, name: str, **kwargs: Any) -> None:
    """A setup action (before the race), as the pages would do it."""
    with transaction(get_sessionmaker(url)) as s:
        actions.perform(s, name, user=users.operator("setup"), **kwargs)


def last_event(url: str) -> int:
    with get_sessionmaker(url)() as s:
        return s.scalar(select(func.max(AuditEvent.id)))


# ---------------------------------------------------------------- scenarios: (setup, task a, task b)


@dataclass(frozen=True)
class Scenario:
    name: str
    tasks: Callable[[str, dict[str, int]], tuple[dict[str, Any], dict[str, Any]]]
    exclusive: bool  # both stated the same version of the same thing: at most one may succeed


def task(actor: str, action: str, /, **kwargs: Any) -> dict[str, Any]:
    return {"actor": actor, "name": action, "kwargs": stated(**kwargs)}


def two_renames(url, ids):
    v = seen(url, TaxonomyNode, ids["shoes"])
    return (
        task("alice", "rename_node", node_id=ids["shoes"], new_name="Shoes A", expected_version=v),
        task("bob", "rename_node", node_id=ids["shoes"], new_name="Shoes B", expected_version=v),
    )


def merge_vs_relabel(url, ids):
    expected = {ids["casual"]: seen(url, TaxonomyNode, ids["casual"]), ids["sports"]: seen(url, TaxonomyNode, ids["sports"])}
    return (
        task("alice", "merge_node", source_id=ids["casual"], target_id=ids["sports"], expected=expected),
        task("bob", "relabel_product", product_id=ids["p4"], node_id=ids["casual"]),
    )


def retire_vs_relabel(url, ids):
    v = seen(url, TaxonomyNode, ids["casual"])
    return (
        task("alice", "retire_node", node_id=ids["casual"], target_id=ids["sports"], expected_version=v),
        task("bob", "relabel_product", product_id=ids["p4"], node_id=ids["casual"]),
    )


def retire_vs_add_child(url, ids):
    v = seen(url, TaxonomyNode, ids["shoes"])
    return (
        task("alice", "retire_node", node_id=ids["shoes"], target_id=ids["flips"], expected_version=v),
        task("bob", "add_node", parent_id=ids["shoes"], name="Boots", expected_version=v),
    )


def crossed_merges(url, ids):
    expected = {ids["casual"]: seen(url, TaxonomyNode, ids["casual"]), ids["sports"]: seen(url, TaxonomyNode, ids["sports"])}
    return (
        task("alice", "merge_node", source_id=ids["casual"], target_id=ids["sports"], expected=expected),
        task("bob", "merge_node", source_id=ids["sports"], target_id=ids["casual"], expected=expected),
    )


def undo_twice(url, ids):
    do(url, "relabel_product", product_id=ids["p1"], node_id=ids["sports"])
    event = last_event(url)
    return task("alice", "undo", event_id=event), task("bob", "undo", event_id=event)


def undo_vs_rename(url, ids):
    do(url, "rename_node", node_id=ids["casual"], new_name="Casual X")
    event, v = last_event(url), seen(url, TaxonomyNode, ids["casual"])
    return (
        task("alice", "undo", event_id=event),
        task("bob", "rename_node", node_id=ids["casual"], new_name="Casual Y", expected_version=v),
    )


def accept_twice(url, ids):
    v = seen(url, Proposal, ids["proposal"])
    return (
        task("alice", "accept_proposal", proposal_id=ids["proposal"], expected_version=v),
        task("bob", "accept_proposal", proposal_id=ids["proposal"], name="Moccasins", expected_version=v),
    )


def two_activations(url, ids):
    saw = {m: seen(url, ModelVersion, ids[m]) for m in ("m1", "m2", "m3")}  # the active #1, and the one to activate
    return (
        task("alice", "activate_model", version_id=ids["m2"], expected={ids["m1"]: saw["m1"], ids["m2"]: saw["m2"]}),
        task("bob", "activate_model", version_id=ids["m3"], expected={ids["m1"]: saw["m1"], ids["m3"]: saw["m3"]}),
    )


def two_reviewers(url, ids):
    return (
        task("alice", "review_decision", item_id=ids["item"], decision="accept"),
        task("bob", "review_decision", item_id=ids["item"], decision="keep"),
    )


def two_retrains(url, ids):
    return task("alice", "start_job", kind="retrain"), task("bob", "start_job", kind="retrain")


SCENARIOS = [
    Scenario("two renames of one category", two_renames, True),
    Scenario("merge racing a relabel into the source", merge_vs_relabel, False),
    Scenario("retire racing a relabel into the category", retire_vs_relabel, False),
    Scenario("retire racing add-child", retire_vs_add_child, False),
    Scenario("crossed merges A->B and B->A", crossed_merges, True),
    Scenario("one event undone twice", undo_twice, True),
    Scenario("undo racing a rename of the same category", undo_vs_rename, True),
    Scenario("one proposal accepted twice", accept_twice, True),
    Scenario("two model activations", two_activations, True),
    Scenario("two reviewers deciding one review item", two_reviewers, True),
    Scenario("two retrain starts", two_retrains, True),
]


# ---------------------------------------------------------------- what must hold after a trial


def broken_invariants(s) -> list[str]:
    """Every invariant of the data that does not hold (empty: all hold)."""
    nodes = {n.id: n for n in s.scalars(select(TaxonomyNode))}
    problems = [f"label #{lb.id} on retired {nodes[lb.node_id].path!r}" for lb in s.scalars(select(Label))
                if nodes[lb.node_id].status == "retired"]  # fmt: skip
    for node in nodes.values():
        parent = nodes.get(node.parent_id)
        if node.status != "retired" and parent is not None and parent.status == "retired":
            problems.append(f"live {node.path!r} under retired {parent.path!r}")
        seen_ids, current = set(), node
        while current.status == "retired" and current.redirect_id is not None and current.id not in seen_ids:
            seen_ids.add(current.id)
            current = nodes[current.redirect_id]
        if current.status == "retired" and current.redirect_id is not None:
            problems.append(f"the redirects from {node.path!r} go round in a circle")
    n_active = s.scalar(select(func.count()).where(ModelVersion.status == "active"))
    if n_active > 1:
        problems.append(f"{n_active} active model versions")
    events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    undos = Counter(e.undo_of_id for e in events if e.action == "undo")
    problems += [f"event #{i} undone {n} times" for i, n in undos.items() if n > 1]
    decided = Counter(e.before["proposal_id"] for e in events if e.action == "accept_proposal" and e.undone_by_id is None)
    problems += [f"proposal #{i} accepted {n} times" for i, n in decided.items() if n > 1]
    for proposal in s.scalars(select(Proposal).where(Proposal.status.in_(("accepted", "renamed")))):
        created = [e.after["node_id"] for e in events if e.action == "accept_proposal" and e.before["proposal_id"] == proposal.id]
        if created[-1:] != [proposal.created_node_id]:
            problems.append(f"proposal #{proposal.id} points at node {proposal.created_node_id}, its events made {created}")
    n_jobs = s.scalar(select(func.count()).where(Job.kind == "retrain", Job.status.in_(("queued", "running"))))
    if n_jobs > 1:
        problems.append(f"{n_jobs} retrain jobs at once")
    return problems


def audit_disagreements(s, initial: dict[str, Any]) -> list[str]:
    """Where replaying the audit log does not give the stored names and the active model."""
    events = list(s.scalars(select(AuditEvent).where(AuditEvent.id > initial["event"]).order_by(AuditEvent.id)))
    by_id = {e.id: e for e in s.scalars(select(AuditEvent))}
    problems = []
    names = dict(initial["names"])
    active = initial["active"]
    for e in events:
        kind = by_id[e.undo_of_id].action if e.action == "undo" and e.undo_of_id in by_id else e.action
        if kind == "rename_node":
            node = e.before["node_id"]
            if names[node] != e.before["name"]:
                problems.append(f"#{e.id} renamed {e.before['name']!r} but the category was called {names[node]!r}")
            names[node] = e.after["name"]
        if kind == "activate_model":
            if e.before["version_id"] != active:
                problems.append(f"#{e.id} replaced model #{e.before['version_id']} but #{active} was active")
            active = e.after["version_id"]
        if kind == "merge_node" and e.action == "merge_node":
            source = s.get(TaxonomyNode, e.before["node_id"])
            if e.undone_by_id is None and (source.status, source.redirect_id) != ("retired", e.after["target_id"]):
                problems.append(f"#{e.id} merged {source.path!r} but it is {source.status}, redirecting to {source.redirect_id}")
    stored = {n.id: n.name for n in s.scalars(select(TaxonomyNode))}
    problems += [f"the audit log names #{i} {n!r}, the database {stored[i]!r}" for i, n in names.items() if stored[i] != n]
    current = s.scalar(select(ModelVersion.id).where(ModelVersion.status == "active"))
    if current != active:
        problems.append(f"the audit log says model #{active} is active, the database #{current}")
    return problems


def snapshot(url: str) -> dict[str, Any]:
    with get_sessionmaker(url)() as s:
        return {
            "event": s.scalar(select(func.max(AuditEvent.id))) or 0,
            "names": {n.id: n.name for n in s.scalars(select(TaxonomyNode))},
            "active": s.scalar(select(ModelVersion.id).where(ModelVersion.status == "active")),
        }


def trial_problems(url: str, scenario: Scenario, outcomes: list[tuple[str, str]], initial: dict[str, Any]) -> list[str]:
    problems = [f"{who}: a traceback, not a refusal:\n{detail}" for who, (kind, detail) in zip("ab", outcomes) if kind == "error"]
    n_ok = sum(kind == "ok" for kind, _ in outcomes)
    if scenario.exclusive and n_ok > 1:
        problems.append("both succeeded, though both acted on the same version")
    with get_sessionmaker(url)() as s:
        problems += broken_invariants(s)
        problems += audit_disagreements(s, initial)
        n_events = s.scalar(select(func.count()).where(AuditEvent.id > initial["event"]))
        if scenario.name != "two retrain starts" and n_events != n_ok:
            problems.append(f"{n_ok} actions succeeded but {n_events} audit events were written")
    return problems


# ---------------------------------------------------------------- the trials


def fresh(url: str, tmp_path, trial: int, sqlite_template) -> str:
    """An empty migrated database for one trial."""
    if url.startswith("sqlite"):
        path = tmp_path / f"trial{trial}.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with get_engine(url).begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return url


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name.replace(" ", "_") for s in SCENARIOS])
def test_two_curators_at_once_keep_every_invariant_and_are_told_one_line(scenario, db_url, tmp_path, sqlite_template, workers):
    failures = []
    for trial in range(TRIALS):
        url = fresh(db_url, tmp_path, trial, sqlite_template)
        ids = build(url)
        task_a, task_b = scenario.tasks(url, ids)
        initial = snapshot(url)
        outcomes = workers(url, task_a, task_b)
        problems = trial_problems(url, scenario, outcomes, initial)
        if problems:
            failures.append(f"trial {trial} ({outcomes[0][0]}, {outcomes[1][0]}): " + "; ".join(problems))
        if url.startswith("sqlite"):
            get_engine(url).dispose()
    assert not failures, f"{len(failures)}/{TRIALS} trials failed:\n" + "\n".join(failures)


def test_every_raced_action_states_the_version_it_saw(factory):
    """The race trials state versions only where rows have them: they must (else the trials above test less)."""
    for model in (TaxonomyNode, Proposal, Label, ModelVersion):
        assert "version" in model.__table__.c, f"{model.__tablename__} has no version column"
