"""The Clusters page in headless Chromium: bytes sent to the browser and time until the scatter is drawn.

Starts `streamlit run app/main.py` against the database (default: the working one) and, for each map view,
opens the page, picks the view and waits until Plotly has drawn every trace. Measured per view:
- payload: bytes of the websocket frames the browser received from picking the view to the drawn chart;
- first render: seconds from picking the view to the drawn chart, cold (first time: the server builds the
  traces) and warm (a second browser tab: st.cache_data serves them).
The node view (Footwear > Shoes) is the baseline of the same run for the whole-catalogue view.

Usage: .venv/bin/python benchmarks/bench_clusters_page.py --out benchmarks/results/clusters_page.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import config  # noqa: E402
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, free_port, streamlit_cmd, wait_healthy  # noqa: E402

DRAWN = """() => {
  const plot = document.querySelector('.stPlotlyChart .js-plotly-plot');
  if (!plot || !plot._fullData || !plot._fullData.length) return null;
  const status = document.querySelector('[data-testid="stStatusWidget"]');
  return status ? null : plot._fullData.reduce((n, t) => n + (t.x ? t.x.length : 0), 0);
}"""


def measure(browser, url: str, view_label: str) -> dict:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(180_000)
    received = {"bytes": 0}

    def on_ws(ws):
        ws.on("framereceived", lambda payload: received.__setitem__("bytes", received["bytes"] + len(payload)))

    page.on("websocket", on_ws)
    page.goto(f"{url}/clusters")
    page.wait_for_function(DRAWN)  # the default view first
    page.get_by_role("combobox", name="View").click()
    before = received["bytes"]
    started = time.perf_counter()
    page.get_by_role("option", name=view_label, exact=True).click()
    page.wait_for_timeout(300)
    points = page.wait_for_function(DRAWN).json_value()
    seconds = time.perf_counter() - started
    payload = received["bytes"] - before
    context.close()
    return {"view": view_label, "points": points, "payload_bytes": payload, "first_render_s": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=config.database_url())
    parser.add_argument("--node", default="Footwear > Shoes")
    parser.add_argument("--out", default="benchmarks/results/clusters_page.json")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "DATABASE_URL": args.db}
    proc = subprocess.Popen(streamlit_cmd(port), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        wait_healthy(url, proc)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            for label in (args.node, "All products"):
                for run in ("cold", "warm"):
                    row = measure(browser, url, label)
                    row["run"] = run
                    rows.append(row)
                    print(json.dumps(row))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
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
