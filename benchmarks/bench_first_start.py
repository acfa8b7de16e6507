"""`make run` on a fresh clone, as a new user runs it: the wall time of each step, when the server first answers,
when the work behind it is done, and the peak memory; for several commits in one run (before / after, issue 17).

For each `LABEL=REF`: the repository is cloned into `<workdir>/fs-LABEL` (beside the shared data, so the Makefile's
`../shared/...` default resolves), REF checked out, and `make run` started there with an empty cache home
(`XDG_CACHE_HOME`: no ONNX graph, torch or Hugging Face cache from earlier runs) and no DATABASE_URL / DATA_DIR /
CURATOR_* settings of this shell. Every line the command prints, and every line of the job logs under the clone's
`data/jobs/`, is kept with the seconds since the start. Memory: every second, the resident set of every process whose
working directory is inside the clone (the make, its steps, the server and the background jobs), summed; the peak of
that sum and of the largest single process. It ends once the server answers and no `-m core` process of the clone
is left (the background fill-in finished), or at the timeout; then the whole clone's processes are stopped.

    python -m benchmarks.bench_first_start --run before=8ec48c2 --run after=HEAD --out benchmarks/results/first_start.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = 4096
# the first admin's one-time password, as `core users first-admin` prints it: kept out of the recorded lines
PASSWORD = re.compile(r"(password )\S+")


def clone_processes(folder: Path) -> list[tuple[int, int, str]]:
    """(pid, resident bytes, command line) of every process whose working directory is inside `folder`."""
    found = []
    prefix = str(folder)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry.name}/cwd")
            if not cwd.startswith(prefix):
                continue
            with open(f"/proc/{entry.name}/statm") as f:
                rss = int(f.read().split()[1]) * PAGE
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        found.append((int(entry.name), rss, cmd))
    return found


def served(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as health:
            if health.status != 200:
                return False
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            page.read()
        return True
    except OSError:
        return False


def one_run(label: str, ref: str, *, repo: Path, workdir: Path, port: int, timeout: float) -> dict:
    folder = workdir / f"fs-{label}"
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(repo), str(folder)], check=True)
    subprocess.run(["git", "checkout", "-q", ref], cwd=folder, check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True, text=True).stdout
    cache = folder / ".fresh-cache"
    cache.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CURATOR_", "DATABASE_URL", "DATA_DIR", "VIRTUAL_ENV"))}
    env["XDG_CACHE_HOME"] = str(cache)
    env["PATH"] = ":".join(p for p in env.get("PATH", "").split(":") if ".venv" not in p)
    lines: list[tuple[float, str]] = []
    started = time.perf_counter()

    def stamp() -> float:
        return round(time.perf_counter() - started, 1)

    proc = subprocess.Popen(
        ["make", "run", f"PORT={port}"],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )

    def read_output() -> None:
        for line in proc.stdout:
            lines.append((stamp(), PASSWORD.sub(r"\1<not recorded>", line.rstrip())))

    threading.Thread(target=read_output, daemon=True).start()
    job_offsets: dict[Path, int] = {}
    peak_sum = peak_one = 0
    served_s = done_s = None
    try:
        while stamp() < timeout:
            time.sleep(1.0)
            procs = clone_processes(folder)
            peak_sum = max(peak_sum, sum(rss for _, rss, _ in procs))
            peak_one = max([peak_one] + [rss for _, rss, _ in procs])
            for log in sorted((folder / "data" / "jobs").glob("*.log")) if (folder / "data" / "jobs").exists() else []:
                with open(log, errors="replace") as f:
                    f.seek(job_offsets.get(log, 0))
                    text = f.read()
                    job_offsets[log] = f.tell()
                lines.extend((stamp(), f"[{log.stem}] {row}") for row in text.splitlines() if row.strip())
            if served_s is None and served(port):
                served_s = stamp()
                lines.append((served_s, "== the server answers"))
            if served_s is not None and not any(" -m core" in cmd for _, _, cmd in procs):
                done_s = stamp()
                lines.append((done_s, "== no step or job is running"))
                break
            if proc.poll() is not None and served_s is None:
                lines.append((stamp(), f"== make exited with {proc.returncode} before serving"))
                break
    finally:
        for pid, _, _ in clone_processes(folder):
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            pass
    return {
        "label": label,
        "ref": ref,
        "commit": commit.strip(),
        "served_s": served_s,
        "done_s": done_s,
        "peak_mb_all": round(peak_sum / 2**20),
        "peak_mb_one_process": round(peak_one / 2**20),
        "lines": lines,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, help="LABEL=REF, in the order to run")
    parser.add_argument("--repo", default=str(ROOT), help="the repository to clone")
    parser.add_argument("--workdir", default=str(ROOT.parent))
    parser.add_argument("--port", type=int, default=8597)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--out", default="benchmarks/results/first_start.json")
    args = parser.parse_args()
    runs = []
    for spec in args.run:
        label, ref = spec.split("=", 1)
        run = one_run(label, ref, repo=Path(args.repo), workdir=Path(args.workdir), port=args.port, timeout=args.timeout)
        runs.append(run)
        print(json.dumps({k: v for k, v in run.items() if k != "lines"}), flush=True)
        with open(Path(args.out).with_suffix(f".{label}.log"), "w") as f:
            f.writelines(f"{t:8.1f}  {text}\n" for t, text in run["lines"])
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_before": os.getloadavg(),
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
