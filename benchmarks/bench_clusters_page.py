"""The Clusters page in headless Chromium: bytes sent to the browser and time until the scatter is drawn.

Starts `streamlit run app/main.py` against the database (default: the working one) and, for each map view,
opens the page, picks the view and waits until Plotly has drawn every trace. Measured per view:
- payload: bytes of the websocket frames the browser received until every point is drawn;
- first render: seconds until Plotly holds every point of the view (a density view: its image and sample), cold
  (first time: the server builds the traces) and warm (a second browser tab: the caches serve them).
The node view (Footwear > Shoes, the page's default: timed from the Sign in click) is the baseline of the same run
for the whole-catalogue view (timed from picking it in the View box).

Usage: .venv/bin/python -m benchmarks.bench_clusters_page --user bench --out benchmarks/results/clusters_page.json
(the whole catalogue at 44k and 1M, before and after a change: benchmarks/bench_app_1m.py)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from benchmarks import bench_app_1m
from core import config
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, start_app

DRAWN = bench_app_1m.DRAWN  # every point of the view, or a density view's image and sample


def measure(browser, url: str, view_label: str, points: int, *, default: bool, user: tuple[str, str]) -> dict:
    """Seconds and websocket bytes until the scatter shows all `points` of the view.

    The default view is timed from opening the page; another view from picking it in the View box.
    """
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(180_000)
    received = {"bytes": 0}

    def on_ws(ws):
        ws.on("framereceived", lambda payload: received.__setitem__("bytes", received["bytes"] + len(payload)))

    page.on("websocket", on_ws)
    page.goto(f"{url}/clusters")
    page.get_by_role("textbox", name="Name").fill(user[0])
    page.get_by_role("textbox", name="Password").fill(user[1])
    started = time.perf_counter()
    page.get_by_role("button", name="Sign in").click()
    bench_app_1m.interactive_map(page)  # the clock runs on through the click: the interactive map is measured
    if not default:
        page.get_by_role("combobox", name="View").click()
        received["bytes"] = 0
        started = time.perf_counter()
        page.get_by_role("option", name=view_label, exact=True).click()
    page.wait_for_function(DRAWN, arg=points)
    seconds = time.perf_counter() - started
    payload = received["bytes"]
    context.close()
    return {"view": view_label, "points": points, "payload_bytes": payload, "first_render_s": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=config.database_url())
    parser.add_argument("--node", default="Footwear > Shoes")
    parser.add_argument("--user", required=True, help="a user to sign in as (`python -m core users add`)")
    parser.add_argument("--password-env", default="BENCH_PASSWORD", help="environment variable holding the password")
    parser.add_argument("--out", default="benchmarks/results/clusters_page.json")
    args = parser.parse_args()
    user = (args.user, os.environ[args.password_env])

    from playwright.sync_api import sync_playwright

    from core.steps.maps import ALL, load_map, slug_for
    from db.repo import node_by_path
    from db.session import get_sessionmaker

    with get_sessionmaker(args.db)() as s:
        node_points = len(load_map(slug_for(node_by_path(s, args.node).id))["product_ids"])
    all_points = len(load_map(ALL)["product_ids"])

    app = start_app({**os.environ, "DATABASE_URL": args.db})  # on a port the OS picks, read back from its output
    url = app.url
    rows = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            for label, points, default in ((args.node, node_points, True), ("All products", all_points, False)):
                for run in ("cold", "warm"):
                    row = measure(browser, url, label, points, default=default, user=user)
                    row["run"] = run
                    rows.append(row)
                    print(json.dumps(row))
            browser.close()
    finally:
        app.stop(timeout=30)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "browser": CHROMIUM,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
