"""Photos given as URLs: fetched only with --fetch-images, from a local HTTP server on 127.0.0.1 (bounded size,
timeout, image content types, resumable, stored by content hash); without fetching the products are text-only."""

from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image
from sqlalchemy import select

from core import cli
from core.data.fetch import FetchIndex, fetch_images
from core.data.ingest import ColumnMap
from core.steps.catalogue import load_catalogue
from core.steps.ingest import ingest
from db.models import Product


def png(colour) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(out, format="PNG")
    return out.getvalue()


class Server:
    """/red.png, /blue.png (images), /page.html (text/html), /huge.png (over the limit), /fake.png (not an image
    although it says so), /slow.png (answers after the timeout), anything else 404; counts requests per path."""

    def __init__(self):
        self.hits: dict[str, int] = {}
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                routes = {
                    "/red.png": ("image/png", png("red")),
                    "/blue.png": ("image/png", png("blue")),
                    "/page.html": ("text/html", b"<html><img src=x></html>"),
                    "/huge.png": ("image/png", b"\x89PNG" + b"0" * 5000),
                    "/fake.png": ("image/png", b"this is not a png"),
                }
                if self.path == "/slow.png":
                    server.release.wait(5)
                    routes[self.path] = ("image/png", png("green"))
                if self.path not in routes:
                    self.send_error(404)
                    return
                kind, body = routes[self.path]
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def catalogue_csv(tmp_path, server) -> str:
    rows = ["sku,name,category,photo"]
    names = ["red.png", "blue.png", "page.html", "huge.png", "fake.png", "missing.png", "red.png"]
    for i, name in enumerate(names):
        rows.append(f"S{i},Shirt {i},Apparel > Shirts,{server.url}/{name}")
    (tmp_path / "cat.csv").write_text("\n".join(rows) + "\n")
    return str(tmp_path / "cat.csv")


MAPPING = ColumnMap.parse(["id=sku", "title=name", "path=category", "image=photo", "description=none", "brand=none"])


def statuses(factory) -> dict[str, str]:
    with factory() as s:
        return dict(s.execute(select(Product.external_id, Product.image_status)).all())


def test_without_fetching_url_photos_stay_remote_and_the_report_says_so(db_url, factory, tmp_path, server, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    report = ingest(catalogue_csv(tmp_path, server), platform="shop", db_url=db_url, mapping=MAPPING)
    assert server.hits == {}  # nothing was downloaded
    assert set(statuses(factory).values()) == {"remote"}
    assert "7 products have photo URLs that were not fetched" in report.summary()
    with factory() as s:
        assert not load_catalogue(s).has_image.any()  # text-only for the models


def test_fetch_images_keeps_good_photos_refuses_the_rest_and_resumes(db_url, factory, tmp_path, server, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("core.data.fetch.MAX_BYTES", 1000)
    report = ingest(catalogue_csv(tmp_path, server), platform="shop", db_url=db_url, mapping=MAPPING, fetch_images=True)
    got = statuses(factory)
    assert got == {"S0": "ok", "S1": "ok", "S2": "remote", "S3": "remote", "S4": "remote", "S5": "remote", "S6": "ok"}
    problems = "\n".join(report.image_problems)
    assert "page.html: not fetched (not an image (Content-Type text/html))" in problems
    assert "huge.png: not fetched (too large" in problems and "fake.png: not fetched (unreadable photo" in problems
    assert "missing.png: not fetched (HTTPError" in problems
    files = sorted(p.name for p in (tmp_path / "data" / "images").glob("*.png"))
    assert len(files) == 2  # red (twice in the file, one download, one file) and blue, named by content hash
    assert server.hits["/red.png"] == 1
    with factory() as s:
        cat = load_catalogue(s)
    assert cat.has_image.sum() == 3 and all(str(tmp_path / "data" / "images") in p for p in cat.images if p)
    before = dict(server.hits)
    ingest(catalogue_csv(tmp_path, server), platform="shop", db_url=db_url, mapping=MAPPING, fetch_images=True)
    assert server.hits == before  # resumed: nothing fetched twice, failures not retried
    assert statuses(factory) == got
    again = ingest(catalogue_csv(tmp_path, server), platform="shop", db_url=db_url, mapping=MAPPING)
    assert again.updated == 0 and statuses(factory) == got  # a later plain ingest keeps the fetched photos


def test_a_slow_server_times_out_and_is_listed(tmp_path, server):
    index = fetch_images([f"{server.url}/slow.png", f"{server.url}/blue.png"], index=FetchIndex(tmp_path), timeout=0.5)
    assert index.local_file(f"{server.url}/blue.png") is not None
    assert index.local_file(f"{server.url}/slow.png") is None
    assert "timed out" in index.entries[f"{server.url}/slow.png"].problem.lower()
    assert FetchIndex(tmp_path).local_file(f"{server.url}/blue.png") is not None  # the index was saved


def test_the_cli_fetches_only_when_asked(tmp_path, server, monkeypatch, capsys):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    url = f"sqlite:///{tmp_path / 'c.db'}"
    maps = ["--map", "id=sku", "--map", "title=name", "--map", "path=category", "--map", "image=photo"]
    args = ["ingest", "--catalog", catalogue_csv(tmp_path, server), "--platform", "shop", "--db", url, *maps]
    assert cli.main([*args, "--map", "description=none", "--map", "brand=none"]) == 0
    assert server.hits == {} and "were not fetched" in capsys.readouterr().out
    assert cli.main([*args, "--map", "description=none", "--map", "brand=none", "--fetch-images"]) == 0
    assert server.hits["/blue.png"] == 1
