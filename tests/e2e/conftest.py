"""Real-browser harness: the app on a small slice of the shared catalogue, driven by headless Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core import config
from core.steps.ingest import ingest

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def streamlit_cmd(port: int) -> list[str]:
    """`streamlit run app/main.py` headless on `port`."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "app" / "main.py"),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the app did not answer at {url} within {timeout}s")


@pytest.fixture(scope="module")
def app_db(tmp_path_factory, catalog_frame) -> str:
    """A SQLite database holding 150 real products with photos from two top-level categories."""
    folder = tmp_path_factory.mktemp("e2e")
    df = catalog_frame[(catalog_frame.image != "") & catalog_frame.master_category.isin(["Footwear", "Accessories"])]
    path = folder / "slice.parquet"
    df.sample(n=150, random_state=1).sort_values("id").to_parquet(path)
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
    """Start `streamlit run app/main.py` on a free port against `app_db`; yields its URL."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": app_db, "DATA_DIR": str(app_data_dir)}
    proc = subprocess.Popen(streamlit_cmd(port), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
