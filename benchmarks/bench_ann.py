"""Benchmark: FAISS k=10 query latency (one query at a time, p50/p95) at the catalogue's size and at 1M
vectors, exact (flat inner product) against the approximate index the product would choose, with the
approximate index's recall@10 measured against exact search in the same run.

Vectors: the catalogue's MiniLM title embeddings (44,441 x 384, from the embedding cache: run
`python -m core embed` first); the 1M set repeats them with Gaussian noise (sigma 0.05 per dimension
before re-normalising), so it keeps the real neighbourhood structure.

    python -m benchmarks.bench_ann --out benchmarks/results/ann.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def title_vectors(db_url: str) -> np.ndarray:
    from core.embed.features import embed_catalogue
    from core.steps.catalogue import load_catalogue
    from db.session import get_sessionmaker

    with get_sessionmaker(db_url)() as s:
        cat = load_catalogue(s)
    return embed_catalogue(cat, image_encoder=None).blocks["title"]


def grow(base: np.ndarray, n: int, *, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = base[rng.integers(0, len(base), size=n)] + rng.normal(scale=0.05, size=(n, base.shape[1])).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def latencies(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Milliseconds of each query searched alone, with what each found: (times, ids, scores)."""
    times, found, close = [], [], []
    for q in queries:
        started = time.perf_counter()
        scores, ids = index.search(q[None, :], k)
        times.append((time.perf_counter() - started) * 1000)
        found.append(ids[0])
        close.append(scores[0])
    return np.array(times), np.array(found), np.array(close)


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of each row of `a` found in the same row of `b` (recall@k of a against b)."""
    return float(np.mean([len(set(x) & set(y)) / len(y) for x, y in zip(a, b)]))


def tie_aware(found_scores: np.ndarray, exact_scores: np.ndarray, tol: float = 1e-5) -> float:
    """Share of found neighbours at least as close as the exact k-th neighbour.

    The catalogue holds many products with the same title (identical vectors), so the k-th place is often a
    tie that CPU and GPU break differently: id overlap then reads below 1 though the answers are equally good.
    """
    return float(np.mean(found_scores >= exact_scores[:, -1:] - tol))


def measure(X: np.ndarray, queries: np.ndarray, *, k: int, approx: dict) -> list[dict]:
    from core.discover.ann import AnnIndex

    rows, exact_ids, exact_scores = [], None, None
    for label, options in (("exact (flat IP)", {"kind": "flat"}), (f"approximate ({approx['kind']})", approx)):
        started = time.perf_counter()
        index = AnnIndex(**options).build(X)
        build_s = time.perf_counter() - started
        ms, ids, scores = latencies(index, queries, k)
        row = {
            "n": len(X),
            "index": label,
            "kind": index.kind_,
            "build_s": round(build_s, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p95_ms": round(float(np.percentile(ms, 95)), 3),
        }
        if exact_ids is None:
            exact_ids, exact_scores = ids, scores
        else:
            row["recall_at_10"] = round(overlap(ids, exact_ids), 4)
            row["recall_at_10_ties_counted"] = round(tie_aware(scores, exact_scores), 4)
        rows.append(row)
    return rows


def main() -> int:
    from core.config import database_url

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default=database_url())
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ann.json"))
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--large", type=int, default=1_000_000)
    args = parser.parse_args()
    base = title_vectors(args.db)
    queries = grow(base, args.queries, seed=2)  # perturbed catalogue titles, not members of the index
    rows = measure(base, queries, k=10, approx={"kind": "hnsw"})
    large = grow(base, args.large, seed=3)
    rows += measure(large, queries, k=10, approx={"kind": "ivf", "nlist": 1024, "nprobe": 16})
    meta = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, 2 cores, faiss-cpu",
        "command": " ".join(sys.argv),
    }
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print("| vectors | index | build s | p50 ms | p95 ms | recall@10 vs exact by id (ties counted) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        recall = f"{r['recall_at_10']} ({r['recall_at_10_ties_counted']})" if "recall_at_10" in r else "-"
        print(f"| {r['n']:,} | {r['index']} | {r['build_s']} | {r['p50_ms']} | {r['p95_ms']} | {recall} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
