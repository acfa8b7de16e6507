"""Benchmark: the neighbour index at 1M vectors under a memory budget (`core.discover.ann`): build seconds, index
MB, p50/p95 query ms (k=10, one query at a time) and recall@10 against exact flat search built in the same run.

Vectors: every real title embedding found in the embedding caches given (`--caches`: folders holding
`<encoder slug>/*.vecs.npy`, e.g. /work/benchdata/embeddings (Myntra), /work/hm100k/data/embeddings (H&M) and the
scale runs' data folders; only 384-wide text caches are read, duplicates dropped). When they hold fewer than `--n`
vectors, the rest are real vectors with Gaussian noise (sigma `--noise` per dimension, re-normalised: the
`bench_ann.grow` method), and the result says how many of each. Queries: `--queries` other perturbed real vectors
(not members of the index).

    python -m benchmarks.bench_ann_scale --caches /work/benchdata/embeddings /work/hm100k/data/embeddings \\
        /work/scale/200k/data/embeddings --n 1000000 --budgets 256,64 --out benchmarks/results/ann_scale.json
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

from benchmarks.bench_ann import latencies, overlap, tie_aware

ROOT = Path(__file__).resolve().parents[1]


def cached_vectors(folders: list[str], dim: int = 384) -> tuple[np.ndarray, dict]:
    """Every distinct text vector of width `dim` in the caches under `folders`, and how many came from where."""
    parts, where = [], {}
    for folder in folders:
        for meta in sorted(Path(folder).glob("text_*/meta.json")):
            if json.loads(meta.read_text()).get("dim") != dim:
                continue
            shards = [np.load(p, allow_pickle=False) for p in sorted(meta.parent.glob("*.vecs.npy"))]
            if shards:
                block = np.concatenate(shards).astype(np.float32)
                where[str(meta.parent)] = len(block)
                parts.append(block)
    X = np.unique(np.concatenate(parts), axis=0)
    return X / np.linalg.norm(X, axis=1, keepdims=True), where


def fill_up(real: np.ndarray, n: int, *, noise: float, seed: int, chunk: int = 100_000) -> np.ndarray:
    """The real vectors and, up to n, noisy copies of random real ones (re-normalised); written in place, chunk by
    chunk, so the only large array is the (n, D) float32 result."""
    rng = np.random.default_rng(seed)
    if len(real) >= n:
        return real[rng.permutation(len(real))[:n]]
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    out[: len(real)] = real
    for start in range(len(real), n, chunk):
        stop = min(n, start + chunk)
        block = real[rng.integers(0, len(real), size=stop - start)]
        block += noise * rng.standard_normal(size=block.shape, dtype=np.float32)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def measure(X: np.ndarray, queries: np.ndarray, budgets: list[float], *, k: int = 10, done=None) -> list[dict]:
    """The exact flat index, then one index per budget; `done(rows)` is called after each (to save as it goes)."""
    from core.discover.ann import MB, AnnIndex

    rows, exact_ids, exact_scores = [], None, None
    for label, options in [("exact (flat IP)", {"kind": "flat"})] + [(f"budget {b:g} MB", {"memory_mb": b}) for b in budgets]:
        started = time.perf_counter()
        index = AnnIndex(**options, normalize=False, use_gpu=False).build(X)  # X is unit-norm already: no copy
        build_s = time.perf_counter() - started
        ms, ids, scores = latencies(index, queries, k)
        row = {"n": len(X), "index": label, "kind": index.kind_, "build_s": round(build_s, 1)}
        row["index_mb"] = round(index.index_bytes() / MB, 1)
        row.update(p50_ms=round(float(np.percentile(ms, 50)), 3), p95_ms=round(float(np.percentile(ms, 95)), 3))
        if index.plan_ is not None:
            plan = index.plan_
            row["plan"] = {"nlist": plan.nlist, "m": plan.m, "nbits": plan.nbits, "nprobe": index.index_.nprobe}
        if exact_ids is None:
            exact_ids, exact_scores = ids, scores
        else:
            row["recall_at_10"] = round(overlap(ids, exact_ids), 4)
            row["recall_at_10_ties_counted"] = round(tie_aware(scores, exact_scores), 4)
        print(row, flush=True)
        rows.append(row)
        del index
        if done:
            done(rows)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--caches", nargs="+", required=True)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--budgets", default="256,64", help="memory budgets in MB, comma-separated")
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ann_scale.json"))
    args = parser.parse_args()
    real, where = cached_vectors(args.caches)
    X = fill_up(real, args.n, noise=args.noise, seed=args.seed)
    queries = fill_up(real, len(real) + args.queries, noise=args.noise, seed=args.seed + 1)[len(real) :]
    meta = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, 2 cores (shared with 4 other jobs), faiss-cpu",
        "command": " ".join(sys.argv),
        "vectors": {"real_distinct": int(min(len(real), args.n)), "perturbed": int(max(args.n - len(real), 0)), "from": where},
        "queries": f"{args.queries} perturbed real vectors (sigma {args.noise}), not in the index",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)

    def save(rows: list[dict]) -> None:
        Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))

    del real
    rows = measure(X, queries, [float(b) for b in args.budgets.split(",")], done=save)
    print("| vectors | index | kind (plan) | build s | index MB | p50 ms | p95 ms | recall@10 (ties counted) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        plan = f" (nlist {r['plan']['nlist']}, m {r['plan']['m']}, nprobe {r['plan']['nprobe']})" if "plan" in r else ""
        rec = f"{r['recall_at_10']} ({r['recall_at_10_ties_counted']})" if "recall_at_10" in r else "exact"
        cells = [f"{r['n']:,}", r["index"], f"{r['kind']}{plan}", r["build_s"], r["index_mb"], r["p50_ms"], r["p95_ms"], rec]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
