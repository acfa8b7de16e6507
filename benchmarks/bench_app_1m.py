"""The Clusters page's whole-catalogue map at 44k and 1M products in headless Chromium, before and after a change.

The 1M map (`make_map`): the 44,441-product catalogue map of DATA_DIR repeated to 1,000,000 rows, row i being
product i % 44,441 (each product 22 or 23 times), its coordinates moved by Gaussian jitter (sigma 0.05 map units,
seed 0) and its cluster kept; so every row's product id exists in the 44k database (cards, labels and predictions
resolve) and a selection lists each product once. It is written in `core.steps.maps`' format (maps/all.npz and
all.json) to a data folder of its own (OUT/m1) beside links to the rest of DATA_DIR; the database is the 44k one.

For each checkout (`--compare-root`: today's code, measured in the same loop) and map size, a fresh
`streamlit run app/main.py`, then two browser tabs (cold: the server's first visit; warm: a second tab) each sign in,
open the Clusters page, pick "All products" and wait until the map is drawn (every point, or a density view's image
and sample); measured: seconds from the pick, websocket bytes received since it, the figure's spec size, and a
screenshot (OUT/<tree>_<size>_<run>.png). A run that fails or passes `--timeout` is recorded as such.

Usage:
  DATA_DIR=/work/app1m/pb DATABASE_URL=sqlite:////work/app1m/pb/curator.db BENCH_PASSWORD=... \\
  .venv/bin/python -m benchmarks.bench_app_1m --user bench --compare-root /work/app1m/before --out-dir /work/app1m
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_pages import CLUSTERS_MAP, PLOTTED, start_checkout, turn_on
from core import config
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SETTLED

ROWS = 1_000_000
JITTER = 0.05
# the map of the view is drawn: all its points, or (a density view: layout.meta) its image and sample
DRAWN = """(expected) => {
  const p = document.querySelector('.stPlotlyChart .js-plotly-plot');
  if (!p || !p._fullData || !p._fullLayout) return false;
  const shown = p._fullData.reduce((n, t) => n + (t.x ? t.x.length : 0), 0);
  const meta = p._fullLayout.meta;
  if (meta && meta.points !== undefined) {
    const image = !p._fullLayout.images || !p._fullLayout.images.length || !!p.querySelector('.layer-below image, image');
    return meta.points === expected && shown === meta.shown && image;
  }
  return shown === expected;
}"""


def interactive_map(page) -> None:
    """Once the Clusters page has settled, turn on its interactive map ("Select on the map": the page's first view is a
    picture of the map, which has no points to count) and wait until Plotly's chart is there."""
    turn_on(page, "Select on the map", there=CLUSTERS_MAP, content=PLOTTED)
    page.wait_for_function("() => !!document.querySelector('.stPlotlyChart .js-plotly-plot')")


def make_map(source: Path, target: Path, rows: int = ROWS, jitter: float = JITTER, seed: int = 0) -> int:
    """A data folder at `target` whose catalogue map has `rows` rows made from `source`'s (see the module doc)."""
    from core.steps.maps import ALL, load_map, save_map

    os.environ["DATA_DIR"] = str(source)
    base = load_map(ALL)
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():  # everything but the maps: links to the 44k data folder
        link = target / item.name
        if item.name != "maps" and not link.exists():
            link.symlink_to(item)
    (target / "maps").mkdir(exist_ok=True)
    for f in (source / "maps").iterdir():
        if not f.name.startswith("all."):
            shutil.copy2(f, target / "maps" / f.name)
    take = np.arange(rows) % len(base["product_ids"])
    xy = base["xy"][take] + np.random.default_rng(seed).normal(0, jitter, size=(rows, 2)).astype(np.float32)
    made = f"benchmarks.bench_app_1m: the {len(base['product_ids']):,} rows of {source}, repeated, jitter {jitter}"
    meta = {**base["meta"], "products": rows, "made_by": made}
    meta.pop("run", None)
    os.environ["DATA_DIR"] = str(target)
    save_map(ALL, product_ids=base["product_ids"][take], xy=xy, clusters=base["clusters"][take], meta=meta)
    os.environ["DATA_DIR"] = str(source)
    return rows


def visit(browser, url: str, user: tuple[str, str], points: int, shot: Path, timeout_s: float) -> dict:
    """Sign in, open Clusters, pick "All products": seconds and websocket bytes until the map is drawn."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(timeout_s * 1000)
    got = {"bytes": 0, "frames": 0}

    def count(payload) -> None:
        got["bytes"] += len(payload)
        got["frames"] += 1

    page.on("websocket", lambda ws: ws.on("framereceived", count))
    try:
        page.goto(f"{url}/clusters")
        page.get_by_role("textbox", name="Name").fill(user[0])
        page.get_by_role("textbox", name="Password").fill(user[1])
        page.get_by_role("button", name="Sign in").click()
        interactive_map(page)
        page.wait_for_function(SETTLED)
        page.get_by_role("combobox", name="View").click()
        got["bytes"] = got["frames"] = 0
        started = time.perf_counter()
        page.get_by_role("option", name="All products", exact=True).click()
        page.wait_for_function(DRAWN, arg=points)
        drawn = time.perf_counter() - started
        page.wait_for_function(SETTLED)
        settled = time.perf_counter() - started
        page.screenshot(path=str(shot))
        return {
            "ok": True,
            "drawn_s": round(drawn, 2),
            "settled_s": round(settled, 2),
            "ws_bytes": got["bytes"],
        }
    except Exception as exc:  # a timeout or a crashed page is a result here
        page.screenshot(path=str(shot))
        after = round(time.perf_counter() - started, 1) if "started" in locals() else None
        return {
            "ok": False,
            "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            "after_s": after,
            "ws_bytes": got["bytes"],
        }
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=config.database_url())
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-env", default="BENCH_PASSWORD")
    parser.add_argument("--compare-root", type=Path, help="a checkout of the code before (e.g. `git archive HEAD | tar -x`)")
    parser.add_argument("--out-dir", type=Path, default=Path("/work/app1m"))
    parser.add_argument("--sizes", nargs="*", default=["44k", "1m"])
    parser.add_argument("--timeout", type=float, default=240)
    parser.add_argument("--out", default="benchmarks/results/app_1m.json")
    args = parser.parse_args()
    user = (args.user, os.environ[args.password_env])
    source = config.data_dir()
    big = args.out_dir / "m1"
    if not (big / "maps" / "all.npz").exists():
        make_map(source, big)
    from core.steps.maps import ALL, load_map

    folders = {"44k": source, "1m": big}
    points = {}
    for size in args.sizes:
        os.environ["DATA_DIR"] = str(folders[size])
        points[size] = len(load_map(ALL)["product_ids"])
    os.environ["DATA_DIR"] = str(source)
    trees = {"before": args.compare_root, "after": None} if args.compare_root else {"after": None}
    rows = []
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for size in args.sizes:
            for tree, root in trees.items():
                env = {**os.environ, "DATABASE_URL": args.db, "DATA_DIR": str(folders[size])}
                app = start_checkout(env, root)
                try:
                    for run in ("cold", "warm"):
                        shot = args.out_dir / f"{tree}_{size}_{run}.png"
                        row = {"tree": tree, "size": size, "points": points[size], "run": run}
                        row.update(visit(browser, app.url, user, points[size], shot, args.timeout))
                        rows.append(row)
                        print(json.dumps(row), flush=True)
                finally:
                    app.stop(timeout=30)
        browser.close()
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared: nice -n 19), Python {platform.python_version()}",
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.bench_app_1m", *sys.argv[1:]]),
        "database": args.db.split("@")[-1],
        "map_1m": f"the 44k map's rows repeated to {ROWS:,} (row i: product i % 44,441), Gaussian jitter sigma {JITTER}, seed 0",
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
