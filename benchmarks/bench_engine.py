"""Benchmark: the local engine against the Ray engine (`--engine ray`) on the same input: the first N products of the
Myntra catalogue (`config.catalog_dir()`), titles only (minilm, no photos), in a fresh SQLite database.

Steps, each run by both engines on the same database: embed (an empty embedding cache each time), predict (the
model version trained once, locally, on these products) and the out-of-fold review scoring (4 folds). Per step:
wall seconds, items per second, the overhead ratio (Ray / local), and whether the outputs are identical (embedding
max abs difference, predictions: same nodes and stages and the largest confidence difference; review queue: same
items, largest score difference). The local Ray instance (`--ray-cpus`, default every core) is started once and its
start is reported on its own; each step's Ray time includes building its actor pool.

Predict is also run locally over the Ray engine's batches (`--predict-rows`), to tell batch-size rounding from an
engine difference.

    nice -n 5 python benchmarks/bench_engine.py [--n 5000] [--out benchmarks/results/engine.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def timed(fn):
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def row(step: str, items: int, local_s: float, ray_s: float, **same) -> dict:
    return {
        "step": step,
        "items": items,
        "local_s": round(local_s, 2),
        "ray_s": round(ray_s, 2),
        "local_items_per_s": round(items / local_s, 1),
        "ray_items_per_s": round(items / ray_s, 1),
        "overhead_ratio": round(ray_s / local_s, 2),
        **same,
    }


def bench_embed(url: str, choice, engine, n: int) -> dict:
    from core import config
    from core.steps.embed import embed

    cache = config.data_dir() / "embeddings"
    local, local_s = timed(lambda: embed(url, choice=choice))
    shutil.rmtree(cache)  # the Ray engine starts from an empty cache too
    ray, ray_s = timed(lambda: embed(url, choice=choice, engine=engine))
    diff = float(np.abs(ray.blocks["title"] - local.blocks["title"]).max())
    same = bool(np.array_equal(ray.blocks["title"], local.blocks["title"]))
    return row("embed (titles, minilm)", n, local_s, ray_s, identical=same, max_abs_diff=diff)


def stored_predictions(factory, version_id: int) -> np.ndarray:
    from sqlalchemy import select

    from db.models import Prediction

    with factory() as s:
        rows = s.execute(
            select(Prediction.product_id, Prediction.level, Prediction.node_id, Prediction.stage, Prediction.confidence)
            .where(Prediction.model_version_id == version_id)
            .order_by(Prediction.product_id, Prediction.level)
        ).all()
    return np.array(rows, dtype=np.float64)


def bench_predict(url: str, engine, n: int, version_id: int) -> dict:
    from core.steps.predict import predict
    from db.session import get_sessionmaker

    factory = get_sessionmaker(url)
    _, local_s = timed(lambda: predict(url, force=True, log=lambda _: None))
    local = stored_predictions(factory, version_id)
    _, ray_s = timed(lambda: predict(url, force=True, log=lambda _: None, engine=engine))
    ray = stored_predictions(factory, version_id)
    same_paths = bool(len(ray) == len(local) and np.array_equal(ray[:, :4], local[:, :4]))
    diff = float(np.abs(ray[:, 4] - local[:, 4]).max())
    batched = local_in_batches(url, engine.predict_rows)
    return row(
        "predict (cascade)",
        n,
        local_s,
        ray_s,
        identical=same_paths and diff == 0.0,
        same_nodes_and_stages=same_paths,
        max_abs_diff=diff,
        ray_equals_local_over_the_same_batches=batched is not None and bool(np.array_equal(batched, ray[:, 4])),
    )


def local_in_batches(url: str, rows_per_batch: int) -> np.ndarray | None:
    """The level confidences of the local `bundle.predict` run over the Ray engine's batches (row order as stored)."""
    from core.classify.bundle import ModelBundle
    from core.steps.embed import catalogue_features
    from core.steps.predict import bundle_choice
    from core.steps.train import load_products
    from db import predictions as preds
    from db.session import get_sessionmaker

    factory = get_sessionmaker(url)
    with factory() as s:
        version = preds.active_model_version(s)
        artifact, params = version.artifact, version.params
    cat = load_products(factory, labelled_only=False)
    bundle = ModelBundle.load(artifact, params=params)
    feats = catalogue_features(cat, choice=bundle_choice(bundle, lambda _: None), titles=True)
    out = []
    for start in range(0, len(cat), rows_per_batch):
        rows = np.arange(start, min(start + rows_per_batch, len(cat)))
        result = bundle.predict(cat.subset(rows), feats.subset(rows))
        for i in range(len(rows)):
            depth = int((result.prediction.nodes[i] >= 0).sum())
            out.extend(result.prediction.level_conf[i, :depth].astype(np.float64))
    return np.array(out)


def review_queue(url: str) -> np.ndarray:
    from sqlalchemy import select

    from db.models import ReviewItem
    from db.session import get_sessionmaker

    with get_sessionmaker(url)() as s:
        rows = s.execute(
            select(ReviewItem.product_id, ReviewItem.suggested_node_id, ReviewItem.score)
            .where(ReviewItem.status == "open")
            .order_by(ReviewItem.product_id)
        ).all()
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def bench_review(url: str, engine, labelled: int) -> dict:
    from core.steps.review import run_review

    _, local_s = timed(lambda: run_review(url, folds=4, log=lambda _: None))
    local = review_queue(url)
    _, ray_s = timed(lambda: run_review(url, folds=4, log=lambda _: None, engine=engine))
    ray = review_queue(url)
    same_items = bool(len(ray) == len(local) and np.array_equal(ray[:, :2], local[:, :2]))
    diff = float(np.abs(ray[:, 2] - local[:, 2]).max()) if same_items and len(ray) else None
    return row(
        "review (4 out-of-fold models)",
        labelled,
        local_s,
        ray_s,
        identical=same_items and diff == 0.0,
        queued=len(local),
        max_abs_diff=diff,
    )


def run(n: int, ray_cpus: int, predict_rows: int) -> dict:
    import ray

    from core import config
    from core.embed.choice import EncoderChoice, record_encoders
    from core.engine import open_engine
    from core.steps.ingest import ingest
    from core.steps.train import train
    from db.session import upgrade

    url = f"sqlite:///{config.data_dir() / 'bench.db'}"
    upgrade(url)
    report = ingest(config.catalog_dir(), platform="myntra", db_url=url, limit=n)
    choice = EncoderChoice(text="minilm", image=None)
    record_encoders(choice)
    _, start_s = timed(lambda: ray.init(num_cpus=ray_cpus, include_dashboard=False, log_to_driver=False))
    try:
        with open_engine("ray") as engine:
            engine.predict_rows = predict_rows
            rows = [bench_embed(url, choice, engine, report.inserted)]
            version_id, train_s = timed(lambda: train(url, log=lambda _: None))
            rows.append(bench_predict(url, engine, report.inserted, version_id))
            from core.steps.catalogue import load_catalogue
            from db.session import get_sessionmaker

            with get_sessionmaker(url)() as s:
                labelled = int(load_catalogue(s).trainable.sum())
            rows.append(bench_review(url, engine, labelled))
    finally:
        ray.shutdown()
    return {"products": report.inserted, "ray_start_s": round(start_s, 2), "train_s_local": round(train_s, 1), "rows": rows}


def markdown(result: dict) -> str:
    lines = [
        "| step | items | local s | Ray s | local items/s | Ray items/s | overhead (Ray / local) | identical | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        diff = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}"
        lines.append(
            f"| {r['step']} | {r['items']} | {r['local_s']} | {r['ray_s']} | {r['local_items_per_s']} | "
            f"{r['ray_items_per_s']} | {r['overhead_ratio']} | {'yes' if r['identical'] else 'no'} | {diff} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000, help="products (the first N of the catalogue)")
    parser.add_argument("--ray-cpus", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--predict-rows", type=int, default=4096, help="products per Ray predict batch")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "engine.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DATA_DIR"] = tmp  # a fresh database and cache; the catalogue stays where config says
        result = run(args.n, args.ray_cpus, args.predict_rows)
    result["meta"] = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores (shared), Python {platform.python_version()}",
        "command": " ".join([*(["nice", "-n", str(os.nice(0))] if os.nice(0) else []), "python", *sys.argv]),
        "load_average_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
        "ray_cpus": args.ray_cpus,
        "predict_rows": args.predict_rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(markdown(result))
    print(f"Ray start {result['ray_start_s']} s (once); train (local, once) {result['train_s_local']} s; {result['meta']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
