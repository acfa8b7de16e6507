"""`make run` on a finished data folder: seconds from the command until the server answers HTTP (its health check,
then its root page), for a first start and the starts after it (nothing changed in between).

Run it on a copy of a data folder (the steps may write to it); the install step is taken as done (`make -o`), and
the background jobs a start launches are left to the data folder's job table (the fill-in job, when one starts).

Usage: DATA_DIR=/tmp/copy DATABASE_URL=sqlite:////tmp/copy/curator.db CATALOG_DIR=../shared/data/fashion-catalog \\
  .venv/bin/python -m benchmarks.bench_start --starts 3 --out benchmarks/results/start.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_start(port: int, timeout: float) -> dict:
    """`make run` until the server answers on `port`; then it is stopped (its whole process group)."""
    started = time.perf_counter()
    cmd = ["make", "-o", ".venv/.installed", "run", f"PORT={port}", f"CATALOG_DIR={os.environ['CATALOG_DIR']}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    served = None
    try:
        while served is None and time.perf_counter() - started < timeout and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as health:
                    if health.status == 200:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
                            page.read()
                        served = time.perf_counter() - started
            except OSError:
                time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    said = [line.rstrip() for line in lines if line.startswith(("start:", "fill-in", "ingest:", "embed, train"))]
    return {"served_s": round(served, 1) if served is not None else None, "said": said}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--port", type=int, default=8599)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--out", default="benchmarks/results/start.json")
    args = parser.parse_args()
    runs = []
    for n in range(args.starts):
        run = {"start": n + 1, **one_start(args.port, args.timeout)}
        runs.append(run)
        print(json.dumps(run), flush=True)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}",
        "data_dir": os.environ.get("DATA_DIR"),
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
