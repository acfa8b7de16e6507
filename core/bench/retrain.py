"""`python -m core retrain --benchmark`: accept the discovered split of a node, retrain, score the new leaves.

Runs on a copy of the (SQLite) database under data/bench, so the working database is not changed.
Steps: copy -> accept every open proposal under the node (each becomes a child category holding its
members, labelled `human`) -> `core.steps.retrain.retrain` (timed; embeddings come from the cache) -> per-node
F1 of the new leaves on the held-out products, for the new version and for the previous one.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from typing import Any

from sqlalchemy.engine import make_url

from core.config import data_dir
from core.steps.compare import compare_versions
from core.steps.retrain import retrain
from db import predictions as preds
from db import proposals as props
from db.models import ModelVersion
from db.repo import node_by_path
from db.session import get_engine, get_sessionmaker, transaction


def _copy_sqlite(db_url: str) -> str:
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        raise ValueError("the retrain benchmark copies the database first, which it can do for SQLite files only")
    target = data_dir() / "bench" / "retrain.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    with sqlite3.connect(url.database) as src, sqlite3.connect(target) as dst:
        src.backup(dst)  # consistent, including what is still in the write-ahead log
    return f"sqlite:///{target}"


def accept_all(db_url: str, node_path: str, *, actor: str = "benchmark") -> dict[str, list[int]]:
    """Accept every open proposal under `node_path` (a clashing name gets the proposal's number); {path: members}."""
    factory = get_sessionmaker(db_url)
    with factory() as s:
        node = node_by_path(s, node_path)
        if node is None:
            raise ValueError(f"no category {node_path!r}")
        proposals = [(p.id, p.name, list(p.members)) for p in props.list_proposals(s, parent_node_id=node.id, status="open")]
        taken = {c.name.lower() for c in props.child_names(s, node_id=node.id)}
    if not proposals:
        raise ValueError(f"{node_path!r} has no open proposals: run `python -m core discover --node '{node_path}'` first")
    accepted = {}
    for proposal_id, name, members in proposals:
        final = name if name.lower() not in taken else f"{name} {proposal_id}"
        taken.add(final.lower())
        with transaction(factory) as s:
            created = props.accept_proposal(s, proposal_id=proposal_id, actor=actor, name=final)
            accepted[created.path] = members
    return accepted


def benchmark(db_url: str, *, node_path: str = "Footwear > Shoes", seed: int = 0, device=None, progress=None) -> dict[str, Any]:
    """Accept the node's open proposals on a copy of the database, retrain, and score the new leaves."""
    bench_url = _copy_sqlite(db_url)
    get_engine(bench_url).dispose()  # a pool from an earlier run in this process still holds the replaced file open
    factory = get_sessionmaker(bench_url)
    with factory() as s:
        previous = preds.active_model_version(s)
        if previous is None:
            raise ValueError("no active model version to compare with: run `python -m core train` and `predict` first")
        previous_id = previous.id
    started = time.perf_counter()
    accepted = accept_all(bench_url, node_path)
    accept_s = time.perf_counter() - started
    log: list[str] = []
    started = time.perf_counter()
    version_id = retrain(bench_url, seed=seed, device=device, progress=progress, log=log.append)
    retrain_s = time.perf_counter() - started
    with factory() as s:
        version = s.get(ModelVersion, version_id)
        comparison = compare_versions(s, old_id=previous_id, new_id=version_id)
        step_s = version.params.get("step_s", {})
        metrics = {k: v for k, v in version.metrics.items() if k not in ("test_product_ids", "per_node_f1")}
    new_nodes = [n for n in comparison["nodes"] if n["path"] in accepted]
    return {
        "node": node_path,
        "accepted_proposals": len(accepted),
        "relabelled_products": sum(len(m) for m in accepted.values()),
        "accept_s": round(accept_s, 1),
        "retrain_wall_s": round(retrain_s, 1),
        "retrain_steps_s": step_s,
        "retrain_log": log,
        "previous_version": previous_id,
        "new_version": version_id,
        "new_version_metrics": metrics,
        "held_out": comparison["n"],
        "new_leaves": leaf_summary(new_nodes),
        "levels": comparison["levels"],
        "per_node": sorted(new_nodes, key=lambda n: -n["support"]),
    }


def leaf_summary(new_nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Count and F1 (mean, median, support-weighted; the previous version's weighted F1) of the new leaves."""
    supported = [n for n in new_nodes if n["support"] > 0]
    f1s = [n["new_f1"] for n in supported]
    weight = max(1, sum(n["support"] for n in supported))
    return {
        "count": len(new_nodes),
        "with_held_out_products": len(supported),
        "mean_f1": round(statistics.fmean(f1s), 4) if f1s else None,
        "median_f1": round(statistics.median(f1s), 4) if f1s else None,
        "support_weighted_f1": round(sum(n["new_f1"] * n["support"] for n in supported) / weight, 4),
        "previous_version_weighted_f1": round(sum(n["old_f1"] * n["support"] for n in supported) / weight, 4),
    }
