"""FAISS on a CUDA device through `core.ann`: does the GPU path give the CPU's answers, and how fast is it.

Run on the lent GPU machine, with faiss-gpu importable, over the catalogue's MiniLM title vectors, which are
exported here first (int8 with one scale, cosine to the float32 original >= 0.9999, so they travel small):

    python -m benchmarks.gpu_ann_check --export .whl/title_vectors_int8.npz        # here, from the embedding cache
    python3 -m benchmarks.gpu_ann_check --vectors .whl/title_vectors_int8.npz --out $OUT/gpu_ann.json   # there

Checks (each recorded with its numbers; the exit status is 1 when one fails):
- `AnnIndex()` puts flat and IVF indexes on the GPU when faiss sees one, and keeps HNSW (CPU-only in faiss) on the CPU;
- GPU exact search returns the CPU's exact neighbours and scores; GPU IVF returns CPU IVF's neighbours
  for the same trained index;
- an index saved and loaded again goes back to the GPU and answers the same; `neighbours()` leaves the
  product itself out and matches the CPU.
Then k=10 latency (one query at a time, p50/p95) and batched throughput, CPU against GPU in the same run,
at the catalogue's size and at 1M vectors (the catalogue repeated with noise, as in bench_ann.py).
`--dry-run` runs the whole script on a machine without a GPU (the "GPU" rows then run on the CPU) to test it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from benchmarks.bench_ann import grow, latencies, overlap, tie_aware

ROOT = Path(__file__).resolve().parents[1]



def export(path: Path) -> None:
    from benchmarks.bench_ann import title_vectors
    from core.config import database_url

    X = title_vectors(database_url())
    scale = float(np.abs(X).max()) / 127
    q = np.round(X / scale).astype(np.int8)
    Y = q.astype(np.float32) * scale
    cos = np.sum(X * Y, axis=1) / (np.linalg.norm(X, axis=1) * np.linalg.norm(Y, axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, q=q, scale=np.float32(scale))
    print(f"{len(q):,} x {q.shape[1]} int8 vectors -> {path} (lowest cosine to the float32 original {cos.min():.5f})")


def load_vectors(path: Path) -> np.ndarray:
    data = np.load(path)
    X = data["q"].astype(np.float32) * float(data["scale"])
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def same_scores(a: np.ndarray, b: np.ndarray, tol: float = 1e-4) -> float:
    """Share of queries whose k best scores agree (to tol) between two searches."""
    return float(np.mean(np.all(np.abs(a - b) < tol, axis=1)))


class Report:
    def __init__(self):
        self.checks: list[dict] = []
        self.context: dict = {}

    def check(self, name: str, ok: bool, **numbers) -> None:
        self.checks.append({"check": name, "ok": bool(ok), **numbers})
        print(f"[{'ok' if ok else 'FAIL'}] {name} {numbers}", flush=True)


def correctness(X: np.ndarray, Q: np.ndarray, report: Report, *, gpu: bool | None) -> None:
    from core.discover.ann import AnnIndex

    ids = np.arange(len(X), dtype=np.int64) * 3 + 7  # a non-trivial id map
    cpu_flat = AnnIndex(kind="flat", use_gpu=False).build(X, ids=ids)
    gpu_flat = AnnIndex(use_gpu=gpu).build(X, ids=ids)  # "auto": flat at this size
    name = type(gpu_flat.index_).__name__
    on_gpu = gpu_flat.kind_ == "flat" and name.startswith("Gpu")
    report.check("auto index at catalogue size is flat and on the GPU", on_gpu, type=name)
    s11, _ = cpu_flat.search(Q, 11)
    unique_rows = len(np.unique(X, axis=0))
    report.context = {  # not a check: why ids may differ where scores agree
        "vectors": len(X),
        "distinct_vectors": unique_rows,
        "queries_with_a_tie_at_10th": round(float(np.mean(s11[:, 9] - s11[:, 10] < 1e-6)), 4),
    }
    print("context:", report.context, flush=True)
    s_cpu, i_cpu = cpu_flat.search(Q, 10)
    s_gpu, i_gpu = gpu_flat.search(Q, 10)
    report.check(
        "GPU exact search = CPU exact search (same scores; ids equal up to ties)",
        same_scores(s_gpu, s_cpu) >= 0.999 and tie_aware(s_gpu, s_cpu) >= 0.999,
        queries_with_same_scores=round(same_scores(s_gpu, s_cpu), 5),
        recall_ties_counted=round(tie_aware(s_gpu, s_cpu), 5),
        recall_by_id=round(overlap(i_gpu, i_cpu), 5),
        max_score_diff=float(np.abs(s_gpu - s_cpu).max()),
    )
    anchors = ids[:: max(1, len(ids) // 200)][:200]
    t_gpu, n_gpu = gpu_flat.neighbours(anchors, 10)
    t_cpu, n_cpu = cpu_flat.neighbours(anchors, 10)
    report.check(
        "neighbours() on the GPU leave the product out and match the CPU (up to ties)",
        not np.any(n_gpu == anchors[:, None]) and same_scores(t_gpu, t_cpu) >= 0.99,
        queries_with_same_scores=round(same_scores(t_gpu, t_cpu), 5),
        recall_by_id=round(overlap(n_gpu, n_cpu), 5),
    )

    cpu_ivf = AnnIndex(kind="ivf", nprobe=16, use_gpu=False).build(X, ids=ids)
    gpu_ivf = AnnIndex(kind="ivf", nprobe=16, use_gpu=gpu).build(X, ids=ids)
    r_cpu, j_cpu = cpu_ivf.search(Q, 10)
    r_gpu, j_gpu = gpu_ivf.search(Q, 10)
    report.check(
        "GPU IVF = CPU IVF (same seed, same lists, same nprobe; scores equal, ids up to ties)",
        type(gpu_ivf.index_).__name__.startswith("Gpu") and same_scores(r_gpu, r_cpu) >= 0.99,
        type=type(gpu_ivf.index_).__name__,
        nlist=int(cpu_ivf._cpu.nlist),
        queries_with_same_scores=round(same_scores(r_gpu, r_cpu), 5),
        recall_ties_counted_gpu_ivf=round(tie_aware(r_gpu, s_cpu), 5),
        recall_ties_counted_cpu_ivf=round(tie_aware(r_cpu, s_cpu), 5),
        recall_by_id_gpu_ivf_vs_cpu_ivf=round(overlap(j_gpu, j_cpu), 5),
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = gpu_ivf.save(Path(tmp) / "catalogue.faiss")
        loaded = AnnIndex.load(path, use_gpu=gpu)
        _, j_loaded = loaded.search(Q, 10)
        report.check(
            "a saved GPU index loads back onto the GPU and answers the same",
            type(loaded.index_).__name__.startswith("Gpu") and overlap(j_loaded, j_gpu) >= 0.999,
            type=type(loaded.index_).__name__,
            recall_vs_before_save=round(overlap(j_loaded, j_gpu), 5),
        )
    hnsw = AnnIndex(kind="hnsw", use_gpu=gpu).build(X[:5000])
    name = type(hnsw.index_).__name__
    report.check("HNSW stays on the CPU (faiss has no GPU HNSW)", name == "IndexHNSWFlat", type=name)


def speed(X: np.ndarray, Q: np.ndarray, *, gpu: bool | None, approx: dict, slow_queries: int) -> list[dict]:
    """k=10 latency and batched throughput of exact and approximate search, CPU then GPU, recall against CPU exact."""
    from core.discover.ann import AnnIndex

    rows, exact, exact_scores = [], None, None
    for label, options in (("exact", {"kind": "flat"}), (f"approximate ({approx['kind']})", approx)):
        for device, use_gpu in (("CPU", False), ("GPU", gpu)):
            started = time.perf_counter()
            index = AnnIndex(**options, use_gpu=use_gpu).build(X)
            build_s = time.perf_counter() - started
            single = Q[:slow_queries] if (device == "CPU" and label == "exact" and len(X) > 100_000) else Q
            latencies(index, single[:20], 10)  # warm-up
            ms, _, _ = latencies(index, single, 10)
            started = time.perf_counter()
            scores, found = index.search(Q, 10)
            batch_s = time.perf_counter() - started
            if exact is None:
                exact, exact_scores = found, scores
            rows.append(
                {
                    "n": len(X),
                    "index": label,
                    "device": device,
                    "type": type(index.index_).__name__,
                    "build_s": round(build_s, 2),
                    "single_queries": len(single),
                    "p50_ms": round(float(np.percentile(ms, 50)), 3),
                    "p95_ms": round(float(np.percentile(ms, 95)), 3),
                    "batch_of": len(Q),
                    "batch_ms": round(batch_s * 1000, 1),
                    "queries_per_s_batched": round(len(Q) / batch_s),
                    "recall_at_10_vs_cpu_exact": round(overlap(found, exact), 4),
                    "recall_at_10_ties_counted": round(tie_aware(scores, exact_scores), 4),
                }
            )
            print(rows[-1], flush=True)
            del index
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path, help="write the catalogue's title vectors (int8) to this file and stop")
    parser.add_argument("--vectors", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--slow-queries", type=int, default=200, help="single queries for CPU exact search at 1M")
    parser.add_argument("--dry-run", action="store_true", help="no GPU: run every step on the CPU to test the script")
    args = parser.parse_args()
    if args.export:
        export(args.export)
        return 0
    if not (args.vectors and args.out):
        parser.error("--vectors and --out are needed (or --export)")

    import faiss

    gpus = faiss.get_num_gpus()
    if gpus == 0 and not args.dry_run:
        print("faiss sees no GPU (faiss-cpu, or no CUDA device): nothing to check", file=sys.stderr)
        return 2
    gpu = False if args.dry_run else None  # None: what the product does (GPU when faiss sees one)
    X = load_vectors(args.vectors)
    Q = grow(X, args.queries, seed=2)  # perturbed catalogue titles, not members of the index
    report = Report()
    correctness(X, Q, report, gpu=gpu)
    rows = speed(X, Q, gpu=gpu, approx={"kind": "ivf", "nprobe": 16}, slow_queries=args.slow_queries)
    large = grow(X, args.large, seed=3)
    rows += speed(large, Q, gpu=gpu, approx={"kind": "ivf", "nlist": 1024, "nprobe": 16}, slow_queries=args.slow_queries)
    device = "dry run, no GPU"
    if gpus:
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"{gpus} GPU(s)"
    meta = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {device}, faiss {faiss.__version__}, {faiss.omp_get_max_threads()} CPU threads",
        "command": " ".join(sys.argv),
        "vectors": f"{len(X):,} catalogue MiniLM title vectors (int8 round trip); {args.large:,} = those repeated with noise",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "context": report.context, "checks": report.checks, "rows": rows}, indent=1))
    print(f"| vectors | index | device | build s | p50 ms | p95 ms | batch of {len(Q):,}: ms | recall@10 by id (ties counted) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['index']} | {r['device']} | {r['build_s']} | {r['p50_ms']} | {r['p95_ms']} "
            f"| {r['batch_ms']} | {r['recall_at_10_vs_cpu_exact']} ({r['recall_at_10_ties_counted']}) |"
        )
    failed = [c["check"] for c in report.checks if not c["ok"]]
    print(f"{len(report.checks) - len(failed)}/{len(report.checks)} checks passed" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
