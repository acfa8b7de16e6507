"""Benchmark: the whole pipeline at one catalogue size on PostgreSQL, each step its own `python -m core` process
timed with `/usr/bin/time -v` (wall seconds and peak resident MB), in a fresh database and a fresh data folder
(so no embedding is a cache hit and no model is reused).

    python -m benchmarks.bench_scale --label 200k --catalog /work/scale/scale-200k.parquet --platform scale \\
        --pg postgresql+psycopg://postgres@127.0.0.1:54329 --work /work/scale --out benchmarks/results/scale_200k.json

`--steps` picks the steps (default: all, in order); `--timeout` stops a step that runs too long (recorded as
"timeout", the later steps still run when they do not depend on it). `--growth A.json B.json ...` prints the
step x size Markdown table with the growth exponent log(t_B / t_A) / log(n_B / n_A) between consecutive sizes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

STEPS = {
    "ingest": ["ingest", "--catalog", "{catalog}", "--platform", "{platform}", "--actor", "bench"],
    "embed": ["embed", "--image", "none"],
    "train": ["train"],
    "predict": ["predict"],
    "discover": ["discover", "--node", "{node}"],
    "map": ["map"],
    "review": ["review"],
    "retrain": ["retrain", "--actor", "bench"],
}
NEEDS = {"embed": "ingest", "train": "embed", "predict": "train", "discover": "embed", "map": "embed", "review": "embed"}
NEEDS["retrain"] = "train"


def fresh_database(pg: str, name: str) -> str:
    """Drop and create database `name` on the server of `pg` (a URL without a database); returns its URL."""
    host = re.search(r"@([^:/]+):(\d+)", pg)
    where = ["-h", host.group(1), "-p", host.group(2), "-U", "postgres"] if host else []
    subprocess.run(["dropdb", *where, "--if-exists", name], check=True)
    subprocess.run(["createdb", *where, name], check=True)
    return f"{pg.rstrip('/')}/{name}"


def timed(argv: list[str], *, env: dict, timeout: float, log: Path) -> dict:
    """Run argv under /usr/bin/time -v; wall s, peak MB, exit status (and "timeout")."""
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(["/usr/bin/time", "-v", *argv], stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = "timeout"
    wall = time.perf_counter() - started
    text = log.read_text(errors="replace")
    return {"wall_s": round(wall, 1), **time_v(text), "rc": rc}


def time_v(text: str) -> dict:
    """Peak MB and CPU seconds (user + system) from `/usr/bin/time -v` output: the CPU seconds move less than the
    wall seconds when other jobs share the cores."""
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    cpu = [float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", text)]
    return {"peak_mb": round(int(peak.group(1)) / 1024) if peak else None, "cpu_s": round(sum(cpu), 1) if cpu else None}


def run_size(args) -> dict:
    work = Path(args.work) / args.label
    (work / "logs").mkdir(parents=True, exist_ok=True)
    db = (
        fresh_database(args.pg, f"curator_scale_{args.label}")
        if "ingest" in args.steps
        else f"{args.pg}/curator_scale_{args.label}"
    )
    env = {**os.environ, "DATA_DIR": str(work / "data"), "DATABASE_URL": db}
    if args.inference:
        env["CURATOR_INFERENCE"] = args.inference
    fields = {"catalog": args.catalog, "platform": args.platform, "node": args.node}
    result = {"label": args.label, "catalog": args.catalog, "db": db.rsplit("@", 1)[-1], "steps": {}, "commands": {}}
    failed: set[str] = set()
    for step in args.steps:
        if NEEDS.get(step) in failed:
            result["steps"][step] = {"skipped": f"{NEEDS[step]} did not finish"}
            failed.add(step)
            continue
        argv = [sys.executable, "-m", "core", "--db", db, *(a.format(**fields) for a in STEPS[step])]
        result["commands"][step] = " ".join(argv[1:])
        print(f"[{args.label}] {step}: {' '.join(argv[1:])}", flush=True)
        row = timed(argv, env=env, timeout=args.timeout, log=work / "logs" / f"{step}.log")
        print(f"[{args.label}] {step}: {row}", flush=True)
        result["steps"][step] = row
        if row["rc"] != 0:
            failed.add(step)
        _write(args.out, result)
    return result


def _write(path: str, result: dict) -> None:
    meta = {
        "date": date.today().isoformat(),
        "machine": "x86_64, 2 cores (shared), 24 GiB, CPU only",
        "command": " ".join(sys.argv),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"meta": meta, **result}, indent=1))


def exponent(n0: int, t0: float, n1: int, t1: float) -> float | None:
    """Growth exponent b of t ~ n^b between two sizes (None when a figure is missing or zero)."""
    if not (n0 and n1 and t0 and t1) or n0 == n1:
        return None
    return round(math.log(t1 / t0) / math.log(n1 / n0), 2)


def growth_table(files: list[str], sizes: list[int]) -> str:
    """Markdown: one row per step, wall s and peak MB per size, and the exponent between consecutive sizes."""
    runs = [json.loads(Path(f).read_text()) for f in files]
    labels = [r["label"] for r in runs]
    head = "| step | " + " | ".join(f"{x} wall s / peak MB" for x in labels)
    head += " | " + " | ".join(f"b {a}->{b}" for a, b in zip(labels, labels[1:])) + " |"
    lines = [head, "|" + "---|" * (1 + len(labels) + len(labels) - 1)]
    for step in STEPS:
        cells, walls = [], []
        for r in runs:
            row = r["steps"].get(step, {})
            wall = row.get("wall_s") if row.get("rc") == 0 else None
            walls.append(wall)
            cells.append(f"{wall} / {row.get('peak_mb')}" if wall else (str(row.get("rc") or row.get("skipped") or "-")))
        grow = [exponent(sizes[i], walls[i], sizes[i + 1], walls[i + 1]) for i in range(len(runs) - 1)]
        lines.append(
            f"| {step} | " + " | ".join(cells) + " | " + " | ".join(str(g) if g is not None else "-" for g in grow) + " |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", help="size label, e.g. 44k; the database is curator_scale_<label>")
    parser.add_argument("--catalog", help="the catalogue file to ingest")
    parser.add_argument("--platform", default="scale")
    parser.add_argument("--node", default="Footwear > Shoes", help="the node discover runs on")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:54329", help="server URL, no database")
    parser.add_argument("--work", default="/work/scale", help="data folders and logs go to WORK/LABEL")
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--inference", default="onnx-int8", help="CURATOR_INFERENCE for every step ('' keeps it)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--growth", nargs="*", help="result files, smallest size first: print the table")
    parser.add_argument("--sizes", default=None, help="--growth: product counts, e.g. 44441,200000,1000000")
    args = parser.parse_args()
    if args.growth:
        print(growth_table(args.growth, [int(s) for s in args.sizes.split(",")]))
        return 0
    args.steps = [s for s in args.steps.split(",") if s]
    args.out = args.out or f"benchmarks/results/scale_{args.label}.json"
    run_size(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
