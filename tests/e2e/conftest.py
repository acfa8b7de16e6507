"""Real-browser harness: the app on a small slice of the shared catalogue, driven by headless Chromium.

No fixed sleeps: the app is started on a port the OS picks (`--server.port 0`) and its URL is read back from
what Streamlit prints; a browser step that reruns the script waits for the server's "script finished" message on
the page's websocket, then for the page itself to settle (script state not running, no stale element, no
"Running..." status widget).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core import config
from core.steps.ingest import ingest
from tests.app.helpers import CatalogueTree

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ADDRESS = "127.0.0.1"
SERVED = re.compile(rf"URL: (http://{re.escape(ADDRESS)}:[1-9]\d*)")  # what `streamlit run` prints once it listens
RUN_TIMEOUT_MS = 60_000  # one script run of a page (the first one of a page loads its caches)
EXPECT_TIMEOUT_MS = 15_000  # an `expect` after a settled run (Playwright's default is 5 s: tight on a loaded machine)
# the first admin the app makes at its first start (CURATOR_ADMIN_USER / _PASSWORD): every AppPage signs in as them
ADMIN = ("e2e-admin", "e2e admin passphrase")


def streamlit_cmd() -> list[str]:
    """`streamlit run app/main.py` headless on 127.0.0.1, on a port the OS picks (port 0)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "app" / "main.py"),
        "--server.headless",
        "true",
        "--server.address",
        ADDRESS,
        "--server.port",
        "0",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]


@dataclass
class RunningApp:
    """A `streamlit run` process, its URL and everything it has printed (read on a thread, so the pipe never fills)."""

    proc: subprocess.Popen
    url: str = ""
    output: list[str] = field(default_factory=list)

    def log(self) -> str:
        return "".join(self.output)

    def stop(self, timeout: float = 20) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)


def start_app(env: dict[str, str], *, timeout: float = 90) -> RunningApp:
    """Start the app and return once it answers its health check at the URL it printed.

    Fails, with what Streamlit printed, when it exits, prints no URL within `timeout` s or does not answer.
    """
    proc = subprocess.Popen(
        streamlit_cmd(), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    app, served = RunningApp(proc), threading.Event()

    def read() -> None:
        for line in proc.stdout:
            app.output.append(line)
            found = SERVED.search(line)
            if found and not app.url:
                app.url = found.group(1)
                served.set()
        served.set()  # the output ended: the process is gone

    threading.Thread(target=read, daemon=True).start()
    if not served.wait(timeout) or not app.url:
        try:  # the output ended: the process is gone or going
            code = proc.wait(timeout=5) if served.is_set() else None
        except subprocess.TimeoutExpired:
            code = None
        app.stop()
        why = f"exited with code {code} before printing its URL" if code is not None else f"printed no URL within {timeout}s"
        raise RuntimeError(f"streamlit {why}:\n{app.log()}")
    try:
        with urllib.request.urlopen(f"{app.url}/_stcore/health", timeout=timeout) as resp:
            assert resp.status == 200, f"health check answered {resp.status}"
    except (OSError, AssertionError) as exc:
        app.stop()
        raise RuntimeError(f"{app.url} printed but does not answer its health check ({exc}):\n{app.log()}") from exc
    return app


def run_finished(payload: str | bytes) -> bool:
    """Whether a websocket frame from the server is a whole-script run's "script finished" message.

    A run cut short by `st.rerun()` (FINISHED_EARLY_FOR_RERUN) and a fragment's own run do not count.
    """
    from google.protobuf.message import DecodeError
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    if isinstance(payload, str):
        return False
    msg = ForwardMsg()
    try:
        msg.ParseFromString(payload)
    except DecodeError:
        return False
    done = (ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR)
    return msg.WhichOneof("type") == "script_finished" and msg.script_finished in done


SETTLED = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return !!app && app.dataset.testScriptState === 'notRunning'
    && !document.querySelector('[data-stale="true"]')
    && !document.querySelector('[data-testid="stStatusWidget"]');
}"""


class AppPage:
    """A browser tab on the app that knows when a Streamlit run is over (from the page's websocket and DOM)."""

    def __init__(self, page, url: str):
        self.page, self.url, self.ws = page, url, None

    def open(self, path: str = "", *, sign_in: tuple[str, str] | None = ADMIN) -> None:
        """Load a page of the app and wait for its first run to end (the DOM says 'initial' until one starts); a new
        browser session, so it signs in (as `sign_in`; None: stay at the sign-in form)."""
        with self.page.expect_websocket() as ws:
            self.page.goto(f"{self.url}/{path}")
        self.ws = ws.value
        self.settle()
        if sign_in:
            self.sign_in(*sign_in)

    def reload(self) -> None:
        """A new browser session on the same page (signed in again)."""
        with self.page.expect_websocket() as ws:
            self.page.reload()
        self.ws = ws.value
        self.settle()
        self.sign_in(*ADMIN)

    def sign_in(self, name: str, password: str) -> None:
        """Fill in and submit the sign-in form; then the page asked for runs (or the form says why not)."""
        self.page.get_by_role("textbox", name="Name").fill(name)
        self.page.get_by_role("textbox", name="Password").fill(password)
        with self.rerun():
            self.page.get_by_role("button", name="Sign in").click()

    @contextmanager
    def rerun(self, timeout: float = RUN_TIMEOUT_MS) -> Iterator[None]:
        """Wrap a step that reruns the script: after it, wait for the server to finish that run, then for the page.

        Set up before the step, so a run that ends quickly is not missed; a step that starts no run fails here.
        """
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        step_failed = False
        try:
            with self.ws.expect_event("framereceived", predicate=run_finished, timeout=timeout):
                try:
                    yield
                except BaseException:
                    step_failed = True
                    raise
        except PlaywrightTimeout as exc:
            if step_failed:
                raise
            raise AssertionError(f"no script run ended within {timeout / 1000:.0f}s of the step ({self.page.url})") from exc
        self.settle(timeout)

    def settle(self, timeout: float = RUN_TIMEOUT_MS) -> None:
        self.page.wait_for_function(SETTLED, timeout=timeout)


@pytest.fixture(scope="module")
def app_frame(catalog_frame):
    """150 real products with photos from two top-level categories (the test's own data)."""
    df = catalog_frame[(catalog_frame.image != "") & catalog_frame.master_category.isin(["Footwear", "Accessories"])]
    return df.sample(n=150, random_state=1).sort_values("id")


@pytest.fixture(scope="module")
def app_tree(app_frame) -> CatalogueTree:
    """The categories of `app_frame` and their product counts, from the frame (not from what the pages read)."""
    return CatalogueTree.of(app_frame)


@pytest.fixture(scope="module")
def app_db(tmp_path_factory, app_frame) -> str:
    """A SQLite database holding the products of `app_frame`."""
    folder = tmp_path_factory.mktemp("e2e")
    path = folder / "slice.parquet"
    app_frame.to_parquet(path)
    url = f"sqlite:///{folder / 'e2e.db'}"
    from db.session import upgrade

    upgrade(url)
    ingest(path, platform="myntra", db_url=url, images_root=config.catalog_dir())
    return url


@pytest.fixture(scope="module")
def app_data_dir(tmp_path_factory) -> Path:
    """The app's DATA_DIR (embedding cache, models, job logs)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def app_url(app_db, app_data_dir):
    """`streamlit run app/main.py` against `app_db`, on the port it picked; yields its URL."""
    env = {"DATABASE_URL": app_db, "DATA_DIR": str(app_data_dir)}
    app = start_app({**os.environ, **env, "CURATOR_ADMIN_USER": ADMIN[0], "CURATOR_ADMIN_PASSWORD": ADMIN[1]})
    try:
        yield app.url
    finally:
        app.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


@pytest.fixture
def app_page(page, app_url) -> AppPage:
    return AppPage(page, app_url)


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
