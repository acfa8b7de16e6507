"""Benchmark: ingest of the full catalogue (image checks included), cold and warm, on SQLite
(and PostgreSQL with --pg-url), against a baseline in the same run: pandas read + `to_sql` of the
raw table (no validation, no taxonomy, no labels, no image checks).

Each measurement runs in its own process so its peak memory (ru_maxrss) is its own.

    python benchmarks/bench_ingest.py --catalog ../shared/data/fashion-catalog [--pg-url URL]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

INGEST = """
import json, resource, sys, time
from core.steps.ingest import ingest
from db.session import upgrade
url, catalog = sys.argv[1], sys.argv[2]
upgrade(url)
t = time.perf_counter()
r = ingest(catalog, platform="myntra", db_url=url)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "inserted": r.inserted, "unchanged": r.unchanged, "images_checked": r.images_checked}))
"""

BASELINE = """
import json, resource, sys, time
import pandas as pd
from sqlalchemy import create_engine
url, catalog = sys.argv[1], sys.argv[2]
t = time.perf_counter()
df = pd.read_parquet(catalog + "/products.parquet")
df.to_sql("raw_products", create_engine(url), if_exists="replace", index=False, chunksize=5000)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "inserted": len(df), "unchanged": 0, "images_checked": 0}))
"""


def measure(code: str, url: str, catalog: str) -> dict:
    wall = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, url, catalog], cwd=ROOT, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - wall  # includes interpreter start and imports
    return result


def run(catalog: str, pg_url: str | None) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        backends = [("sqlite", f"sqlite:///{tmp}/bench.db", f"sqlite:///{tmp}/baseline.db")]
        if pg_url:
            backends.append(("postgresql", pg_url, pg_url))
        for name, url, base_url in backends:
            if name == "postgresql":
                _reset_pg(url)
            rows.append({"backend": name, "run": "baseline: read + to_sql", **measure(BASELINE, base_url, catalog)})
            rows.append({"backend": name, "run": "ingest, cold (new database)", **measure(INGEST, url, catalog)})
            rows.append({"backend": name, "run": "ingest, warm (re-run, nothing changed)", **measure(INGEST, url, catalog)})
    return rows


def _reset_pg(url: str) -> None:
    from sqlalchemy import create_engine, text

    with create_engine(url).begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--catalog", default=str(ROOT.parent / "shared" / "data" / "fashion-catalog"))
    parser.add_argument("--pg-url", default=None)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ingest.json"))
    args = parser.parse_args()
    rows = run(args.catalog, args.pg_url)
    meta = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {_cpus()} cores, Python {platform.python_version()}",
        "command": " ".join(["python", *sys.argv]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print("| backend | run | wall s (in process) | process s | peak MB | products inserted | unchanged | images checked |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['run']} | {r['seconds']:.1f} | {r['process_s']:.1f} | {r['peak_mb']:.0f} | "
            f"{r['inserted']} | {r['unchanged']} | {r['images_checked']} |"
        )
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    raise SystemExit(main())
