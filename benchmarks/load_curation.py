"""N curators at once on PostgreSQL, each signed in as its own user, for a fixed time (issue 15).

    python -m benchmarks.load_curation --db postgresql+psycopg://postgres@127.0.0.1:54329/curator_load \
        --curators 1 8 32 --seconds 20 --out benchmarks/results/load_curation.json

For each N: a fresh world in the database (a taxonomy of 4 top categories x 5 leaves, 600 products labelled by the
platform, 12 open proposals, 150 open review items, 3 model versions), N users (argon2 hashes, db.users) who each
sign in (`authenticate`) and then, in their own process, until the time is up, do what the pages do: read what a page
shows (taxonomy rows, the review queue, the open proposals, with their versions), then act on it with the version it
saw: rename a category, merge a leaf into a sibling, relabel a product, accept a proposal, decide a review item,
activate a model version, undo one of their own recent events. Half of all operations are the pages' reads alone.
Per N: operations and actions per second, p50 / p95 latency of actions and reads, refusals (conflicts, "already
decided", ...) and tracebacks (any error that is not a one-line CurationError); afterwards a consistency check of the
whole database: every invariant (tests/db/test_races.broken_invariants), the audit log replayed over the category names
and the active model agrees with what is stored (test_races.audit_disagreements), and every action a curator saw
succeed wrote exactly one audit event under that curator's name (no lost, no duplicated update).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import time
import traceback
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select, text

ROLE = "admin"  # renames and merges are the taxonomy's structure: the simulated curators hold the admin role
WEIGHTS = {"read": 50, "relabel": 14, "review": 10, "rename": 10, "accept": 5, "undo": 6, "merge": 3, "activate": 2}


def build_world(url: str, n_users: int, seed: int) -> list[str]:
    """A fresh schema and world in `url`; returns the user names."""
    from db import predictions as preds
    from db import proposals as props
    from db import repo, review, users
    from db.models import Base, Label, Product
    from db.session import get_engine, get_sessionmaker, transaction, upgrade

    engine = get_engine(url)
    with engine.begin() as con:
        Base.metadata.drop_all(con)
        con.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(url)
    rng = random.Random(seed)
    names = [f"curator{i:02d}" for i in range(n_users)]
    with transaction(get_sessionmaker(url)) as s:
        plat = repo.get_or_create_platform(s, name="shop")
        leaves = [repo.ensure_path(s, (f"Top {t}", f"Group {t}", f"Leaf {t}{k}"))[0].id for t in "ABCD" for k in range(5)]
        pids = []
        for i in range(600):
            product = Product(platform_id=plat.id, external_id=f"p{i}", title=f"product {i}", content_hash="x")
            s.add(product)
            s.flush()
            s.add(Label(product_id=product.id, node_id=rng.choice(leaves), source="platform"))
            pids.append(product.id)
        clusters = [{"name": f"Proposal {k}", "members": rng.sample(pids, 5)} for k in range(12)]
        props.replace_open_proposals(s, parent_node_id=leaves[0], run_key="load", clusters=clusters)
        items = [
            {"product_id": p, "score": rng.random(), "self_confidence": 0.2, "margin": -0.3, "flagged": True,
             "label_node_id": leaves[0], "suggested_node_id": rng.choice(leaves), "suggested_confidence": 0.8, "levels": []}
            for p in rng.sample(pids, 150)
        ]  # fmt: skip
        review.replace_open_items(s, run_key="load", rows=items)
        for k in range(3):
            version = preds.register_model_version(s, name=f"v{k}", metrics={}, params={}, artifact=None)
            if k == 0:
                preds.activate_model_version(s, version_id=version.id, actor="setup")
        for name in names:
            users.add_user(s, actor="setup", name=name, password=f"{name}'s passphrase", role=ROLE)
    return names


def _read(s) -> dict[str, Any]:
    """What the pages read before a decision: the taxonomy (with versions), the review queue, the open proposals."""
    from db import proposals as props
    from db import repo, review
    from db.models import Label, ModelVersion, Product

    rows = repo.taxonomy_rows(s)
    return {
        "nodes": [r for r in rows if r["status"] == "active"],
        "queue": review.queue(s, limit=20),
        "proposals": [(p.id, p.version) for p in props.list_proposals(s, status="open")],
        "models": list(s.execute(select(ModelVersion.id, ModelVersion.status, ModelVersion.version)).all()),
        "product": s.execute(select(Product.id).order_by(func.random()).limit(1)).scalar(),
        "labels": dict(s.execute(select(Label.product_id, Label.version).where(Label.source == "human")).all()),
    }


def _leaf_rows(seen):
    return [r for r in seen["nodes"] if r["depth"] == 3]


def _plan(kind: str, seen: dict[str, Any], rng: random.Random, mine: list[int]) -> tuple[str, dict[str, Any]] | None:
    """The action a curator does on what they saw, with the versions they saw (None: nothing to do)."""
    leaves = _leaf_rows(seen)
    if kind == "rename" and leaves:
        node = rng.choice(leaves)
        return "rename_node", {
            "node_id": node["id"],
            "new_name": f"Leaf {rng.randrange(10**6)}",
            "expected_version": node["version"],
        }
    if kind == "merge" and len(leaves) > 8:
        source = rng.choice(leaves)
        siblings = [r for r in leaves if r["parent_id"] == source["parent_id"] and r["id"] != source["id"]]
        if siblings:
            target = rng.choice(siblings)
            expected = {source["id"]: source["version"], target["id"]: target["version"]}
            return "merge_node", {"source_id": source["id"], "target_id": target["id"], "expected": expected}
    if kind == "relabel" and leaves and seen["product"]:
        product = seen["product"]
        return "relabel_product", {
            "product_id": product, "node_id": rng.choice(leaves)["id"], "expected_version": seen["labels"].get(product, 0)
        }  # fmt: skip
    if kind == "accept" and seen["proposals"]:
        pid, version = rng.choice(seen["proposals"])
        return "accept_proposal", {"proposal_id": pid, "name": f"Accepted {pid}", "expected_version": version}
    if kind == "review" and seen["queue"]:
        item = rng.choice(seen["queue"])
        return "review_decision", {"item_id": item["id"], "decision": "accept"}
    if kind == "activate" and seen["models"]:
        vid, _, _ = rng.choice(seen["models"])
        return "activate_model", {"version_id": vid, "expected": {m[0]: m[2] for m in seen["models"]}}
    if kind == "undo" and mine:
        return "undo", {"event_id": mine.pop(rng.randrange(len(mine)))}
    return None


def _one(factory, who, kind, rng, mine, stats) -> None:
    from db import actions
    from db.models import AuditEvent
    from db.repo import ConflictError, CurationError
    from db.session import transaction

    started = time.perf_counter()
    with factory() as s:
        seen = _read(s)
    if kind == "read":
        stats["read_ms"].append((time.perf_counter() - started) * 1000)
        return
    planned = _plan(kind, seen, rng, mine)
    if planned is None:
        return
    name, kwargs = planned
    try:
        with transaction(factory) as s:
            actions.perform(s, name, user=who, **kwargs)
            s.flush()
            event_id = s.scalar(select(func.max(AuditEvent.id)).where(AuditEvent.actor == who.name))
        stats["ok"][name] += 1
        if name != "undo":
            mine.append(event_id)
    except ConflictError:
        stats["conflict"][name] += 1
    except CurationError:
        stats["refused"][name] += 1
    except Exception:  # noqa: BLE001 - the benchmark counts every traceback a person would have seen
        stats["tracebacks"].append(f"{name}: {traceback.format_exc().splitlines()[-1]}")
    stats["action_ms"].append((time.perf_counter() - started) * 1000)


def curator(url: str, name: str, seconds: float, seed: int, ready, go, out) -> None:
    """One curator's process: sign in, say so, wait for everyone, then act until the time is up; sends back its counts
    and latencies (the clock starts when every process has imported and signed in, not while they still start)."""
    from db import users
    from db.session import get_sessionmaker, transaction

    factory = get_sessionmaker(url)
    with transaction(factory) as s:
        signed = users.authenticate(s, name, f"{name}'s passphrase").user
    assert signed is not None, f"{name} could not sign in"
    stats = {"ok": Counter(), "conflict": Counter(), "refused": Counter(), "tracebacks": [], "action_ms": [], "read_ms": []}
    rng, mine = random.Random(seed), []
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    ready.put(name)
    go.wait()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _one(factory, signed, rng.choices(kinds, weights)[0], rng, mine, stats)
    out.put({"name": name, **{k: (dict(v) if isinstance(v, Counter) else v) for k, v in stats.items()}})


def consistency(url: str, results: list[dict[str, Any]], initial: dict[str, Any]) -> dict[str, Any]:
    """Invariants, the audit replay, and one audit event per success the curators saw."""
    from db.models import AuditEvent
    from db.session import get_sessionmaker
    from tests.db.test_races import audit_disagreements, broken_invariants

    with get_sessionmaker(url)() as s:
        broken = broken_invariants(s)
        replay = audit_disagreements(s, initial)
        written = dict(
            s.execute(
                select(AuditEvent.actor, func.count()).where(AuditEvent.id > initial["event"]).group_by(AuditEvent.actor)
            ).all()
        )
    counted = {r["name"]: sum(r["ok"].values()) for r in results}
    mismatched = {n: (c, written.get(n, 0)) for n, c in counted.items() if written.get(n, 0) != c}
    return {"broken_invariants": broken, "audit_disagreements": replay, "successes_vs_events_mismatched": mismatched}


def run_level(url: str, n: int, seconds: float, seed: int) -> dict[str, Any]:
    from tests.db.test_races import snapshot

    names = build_world(url, n, seed)
    initial = snapshot(url)
    ctx = mp.get_context("spawn")
    out, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=curator, args=(url, name, seconds, seed + i, ready, go, out)) for i, name in enumerate(names)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=600)
    go.set()
    results = [out.get(timeout=seconds + 300) for _ in procs]
    for p in procs:
        p.join()
    ok, conflicts, refused = Counter(), Counter(), Counter()
    for r in results:
        ok.update(r["ok"])
        conflicts.update(r["conflict"])
        refused.update(r["refused"])
    action_ms = np.array([x for r in results for x in r["action_ms"]] or [0.0])
    read_ms = np.array([x for r in results for x in r["read_ms"]] or [0.0])
    tracebacks = [t for r in results for t in r["tracebacks"]]
    check = consistency(url, results, initial)
    n_ops = len(action_ms) + len(read_ms)
    return {
        "curators": n,
        "seconds": seconds,
        "operations_per_s": round(n_ops / seconds, 1),
        "actions_per_s": round(sum(ok.values()) / seconds, 1),
        "succeeded": dict(ok),
        "conflicts_refused": dict(conflicts),
        "other_refusals": dict(refused),
        "action_ms_p50_p95": [round(float(np.percentile(action_ms, q)), 1) for q in (50, 95)],
        "read_ms_p50_p95": [round(float(np.percentile(read_ms, q)), 1) for q in (50, 95)],
        "tracebacks": len(tracebacks),
        "traceback_examples": sorted(set(tracebacks))[:10],
        **check,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a PostgreSQL database this benchmark may empty")
    parser.add_argument("--curators", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/load_curation.json")
    args = parser.parse_args()
    levels = []
    for n in args.curators:
        level = run_level(args.db, n, args.seconds, args.seed)
        print(json.dumps({k: v for k, v in level.items() if k != "traceback_examples"}), flush=True)
        levels.append(level)
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": "python -m benchmarks.load_curation " + " ".join(f"--curators {n}" for n in args.curators),
        "database": "PostgreSQL (the tests' server, .ci/pg-start)",
        "levels": levels,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
