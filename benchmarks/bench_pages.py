"""Every page of the app in headless Chromium: seconds until its first render has settled, cold and warm.

For each page and repetition a fresh `streamlit run app/main.py` is started against the database (so "cold" is
the page's first visit after the server started: its caches are empty), then:
- cold: a new browser tab opens the page, signs in, and the clock runs from the Sign in click until the page has
  settled (script not running, nothing stale, no status widget) and its main content is there (the page's title
  and what the page is for: the Plotly scatter holding every point on Clusters, metrics, tables...);
- warm: a second new tab (a new browser session, signed in again) does the same on the same server.
The median of the repetitions is reported, with every run kept in the JSON.

Usage (the database and DATA_DIR of a finished data dir; a user to sign in as: `python -m core users add`):
  DATA_DIR=/work/pagebench DATABASE_URL=sqlite:////work/pagebench/curator.db \\
  .venv/bin/python -m benchmarks.bench_pages --user bench --password-env BENCH_PASSWORD --out benchmarks/results/pages.json
Before and after a change in the same run (page by page, so both see the same load on a shared machine): a checkout
of the commit before (`git worktree add /tmp/before HEAD~1`) as `--compare-root /tmp/before`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from core import config
from tests.e2e import conftest as e2e
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, SETTLED, start_app

# the Clusters page's map: the picture the server drew (its first view), or the interactive Plotly map with its points
MAP_IMAGE = """(() => { const i = document.querySelector('[data-testid="stImage"] img');
  return !!i && i.complete && i.naturalWidth > 0; })()"""
PLOTTED = """() => { const p = document.querySelector('.stPlotlyChart .js-plotly-plot');
  return !!p && !!p._fullData && p._fullData.reduce((n, t) => n + (t.x ? t.x.length : 0), 0) > 0; }"""
SWITCH = '[role="switch"][aria-label="%s"]'  # a toggle, by its label
CLUSTERS_MAP = f"() => ({MAP_IMAGE}) || ({PLOTTED})()"
# (title, url path, JS that says the page's main content is there[, (a toggle to turn on first when the page has one,
# JS that says the page is there before it)])
PAGES = [
    ("Overview", "", "() => document.querySelectorAll('[data-testid=\"stMetric\"]').length >= 5"),
    ("Predictions", "predictions", "() => document.querySelectorAll('[data-testid=\"stMetric\"]').length >= 3"),
    ("Clusters", "clusters", CLUSTERS_MAP),
    ("Clusters, map to select on", "clusters", PLOTTED, ("Select on the map", CLUSTERS_MAP)),
    ("Review", "review", "() => !!document.querySelector('[data-testid=\"stDataFrame\"]')"),
    ("Taxonomy", "taxonomy", "() => document.querySelectorAll('[data-testid=\"stMetric\"]').length >= 3"),
    (
        "Mapping",
        "mapping",
        '() => !!document.querySelector(\'[data-testid="stAlert"], [data-testid="stDataFrame"]\')',
    ),
    ("Models", "models", "() => !!document.querySelector('[data-testid=\"stDataFrame\"]')"),
    ("Import", "import", '() => !!document.querySelector(\'[data-testid="stFileUploader"], [data-testid="stRadio"]\')'),
]
TITLED = "(title) => [...document.querySelectorAll('h1')].some(h => h.textContent.trim().startsWith(title))"


def turn_on(page, label: str, *, there: str, content: str) -> None:
    """Turn on the toggle `label` once the JS `there` says the page is drawn and it has settled; a page without the
    toggle (a checkout from before it) is left as it is when the JS `content` is already true there."""
    page.wait_for_function(there)
    page.wait_for_function(SETTLED)
    switch = page.get_by_role("switch", name=label)
    # settled can be seen while a new tab's page is still being drawn: until the switch shows, or the content
    page.wait_for_function(f"() => !!document.querySelector({json.dumps(SWITCH % label)}) || ({content})()")
    for _ in range(3):  # a click while the page was re-rendering can be lost: until the switch is on
        if not switch.count() or switch.is_checked():
            break
        page.locator('[data-testid="stCheckbox"]').filter(has=switch).get_by_text(label).click()
        page.wait_for_function(SETTLED)


def visit(
    browser,
    url: str,
    path: str,
    title: str,
    content: str,
    user: tuple[str, str],
    context=None,
    toggle: tuple[str, str] | None = None,
) -> float:
    """Seconds from the Sign in click on `path` until the page has settled with its title and content shown: in a new
    browser (a fresh context: nothing cached), or as a new tab of `context` (what that browser cached is kept). With
    `toggle` (label, JS): once the JS says the page is there and it has settled, the toggle of that label is turned on
    when the page has one (the clock runs on), then the content is waited for."""
    own = context is None
    context = context or browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(int(os.environ.get("BENCH_TIMEOUT_MS", 180_000)))
    try:
        page.goto(f"{url}/{path}")
        page.get_by_role("textbox", name="Name").fill(user[0])
        page.get_by_role("textbox", name="Password").fill(user[1])
        started = time.perf_counter()
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_function(TITLED, arg=title)
        if toggle:
            turn_on(page, toggle[0], there=toggle[1], content=content)
        page.wait_for_function(content)
        page.wait_for_function(SETTLED)
        page.wait_for_function(content)  # still there once settled (not a stale element of the run before)
        return time.perf_counter() - started
    finally:
        (context if own else page).close()


def start_checkout(env: dict[str, str], root: Path | None = None):
    """`streamlit run app/main.py` of the checkout at `root` (default this one: its app/main.py, and its packages
    first on the path), on the port it picks."""
    here = e2e.ROOT
    if root is not None:
        e2e.ROOT, env = root, {**env, "PYTHONPATH": str(root)}
    try:
        return start_app(env, timeout=180)
    finally:
        e2e.ROOT = here


def run_page(
    browser, env: dict[str, str], page_def: tuple[str, str, str], user: tuple[str, str], root: Path | None = None
) -> dict[str, float]:
    """A fresh server (of the checkout at `root`, default this one); the page's cold visit, its warm one (a new browser:
    the server's caches are warm, the browser's are empty), then a return visit from that browser (a new tab and
    session: its HTTP cache holds the app's scripts, plotly.js among them)."""
    name, path, content, *toggle = page_def
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    title = name.split(",")[0]
    how = {"toggle": toggle[0] if toggle else None}

    def timed(**kw) -> float | None:  # None: the content never came (counted in the table, not hidden)
        try:
            return round(visit(browser, app.url, path, title, content, user, **how, **kw), 2)
        except PlaywrightTimeout as exc:
            print(json.dumps({"page": name, "timed_out": str(exc).splitlines()[0]}), flush=True)
            return None

    app = start_checkout(env, root)
    try:
        cold = timed()
        returning = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            warm = timed(context=returning)
            again = timed(context=returning)
        finally:
            returning.close()
    finally:
        app.stop(timeout=30)
    return {"cold_s": cold, "warm_s": warm, "again_s": again}


def medians(by_page: dict[str, list[dict[str, float]]]) -> list[dict]:
    """Per page: the median cold and warm seconds of its runs, and the runs."""

    def median(timings: list[dict], key: str) -> float | None:
        done = [t[key] for t in timings if t[key] is not None]
        return round(statistics.median(done), 2) if done else None

    return [
        {
            "page": name,
            **{key: median(timings, key) for key in ("cold_s", "warm_s", "again_s")},
            "timed_out": sum(t[key] is None for t in timings for key in ("cold_s", "warm_s", "again_s")),
            "runs": timings,
        }
        for name, timings in by_page.items()
    ]


def table(rows: list[dict]) -> str:
    cell = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    lines = [
        "| page | cold s | warm s (new browser) | warm s (same browser, new tab) | visits timed out |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['page']} | {cell(r['cold_s'])} | {cell(r['warm_s'])} | {cell(r['again_s'])} | {r.get('timed_out', 0)} |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=config.database_url())
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-env", default="BENCH_PASSWORD", help="environment variable holding the password")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pages", nargs="*", help="only these page titles")
    parser.add_argument("--label", default="", help="what this run measures (e.g. before / after)")
    parser.add_argument(
        "--compare-root",
        type=Path,
        help="another checkout (e.g. of the commit before a change) measured in the same loop, page by page, before "
        "this one: both see the same machine load",
    )
    parser.add_argument("--out", default="benchmarks/results/pages.json")
    args = parser.parse_args()
    user = (args.user, os.environ[args.password_env])

    from playwright.sync_api import sync_playwright

    env = {**os.environ, "DATABASE_URL": args.db}
    chosen = [p for p in PAGES if not args.pages or p[0] in args.pages]
    trees = {"before": args.compare_root, "after": None} if args.compare_root else {args.label or "this": None}
    runs: dict[str, dict[str, list[dict[str, float]]]] = {tree: {p[0]: [] for p in chosen} for tree in trees}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for rep in range(args.repeat):
            for page_def in chosen:
                for tree, root in trees.items():
                    timing = run_page(browser, env, page_def, user, root)
                    runs[tree][page_def[0]].append(timing)
                    print(json.dumps({"rep": rep, "tree": tree, "page": page_def[0], **timing}), flush=True)
        browser.close()
    tables = {tree: medians(by_page) for tree, by_page in runs.items()}
    result = {
        "label": args.label,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}",
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.bench_pages", *sys.argv[1:]]),
        "database": args.db.split("@")[-1],
        "browser": CHROMIUM,
        "repeat": args.repeat,
        "compare_root": str(args.compare_root) if args.compare_root else None,
        "rows": tables,
        "tables": {tree: table(rows) for tree, rows in tables.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    Path(args.out).with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    print(f"written to {args.out} and {Path(args.out).with_suffix('.md')}")


def markdown(result: dict) -> str:
    """The tables of a result (one per checkout measured), with the machine, the command and the date."""
    head = [
        f"Page first renders in headless Chromium, median of {result['repeat']} (seconds from the Sign in click until the "
        "page has settled with its main content; cold: first visit after the server started, warm: a new browser, then "
        "the same browser again in a new tab).",
        "",
        f"- machine: {result['machine']}",
        f"- date: {result['date']}",
        f"- database: {result['database']}",
        f"- command: `{result['command']}`",
        "",
    ]
    rows = result["rows"]
    if set(rows) != {"before", "after"}:
        return "\n".join(head + [f"**{tree}**\n\n{text}\n" for tree, text in result["tables"].items()])
    after = {r["page"]: r for r in rows["after"]}
    lines = ["| page | cold s before | cold s after | warm s before | warm s after |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in rows["before"]:
        a = after[r["page"]]
        cells = [r["cold_s"], a["cold_s"], r["warm_s"], a["warm_s"]]
        lines.append(f"| {r['page']} | " + " | ".join("-" if v is None else f"{v:.2f}" for v in cells) + " |")
    return "\n".join(head + lines) + "\n"


if __name__ == "__main__":
    main()
