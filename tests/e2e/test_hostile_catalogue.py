"""Real browser: a hostile catalogue (tests/app/hostile.py: Markdown images pointing at a tracking server, links,
HTML, scripts, Streamlit directives, LaTeX, a 100,000-character title, a photo replaced by a non-image) on every
page, and no page fetches the tracker, shows a link or an element the catalogue wrote, or a card as tall as the
title is long."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from tests.app import hostile
from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PAGES = ("", "taxonomy", "mapping", "predictions", "clusters", "review", "models", "import")
CARD_MAX_PX = 900  # a product card: photo, a title cut to 120 characters, a caption and the "Full text" expander

# what the browser shows: every <a> with its href, injected elements, and the errors a page may show
INSPECT = """() => ({
  links: [...document.querySelectorAll('a')].map(a => a.getAttribute('href') || a.getAttribute('xlink:href') || ''),
  images: [...document.querySelectorAll('img, image')].map(i => i.getAttribute('src') || i.getAttribute('href') || ''),
  scripts: [...document.querySelectorAll('script')].filter(s => (s.textContent || '').includes('alert(1)')).length,
  handlers: document.querySelectorAll('[onerror], [onload]').length,
  katex: document.querySelectorAll('.katex').length,
  directives: [...document.querySelectorAll('.stMarkdownColoredText, .stMarkdownBadge')].map(e => e.textContent),
  exceptions: document.querySelectorAll('[data-testid="stException"]').length,
  text: document.body.innerText.replaceAll('\\u2060', ''),
  content: document.querySelector('[data-testid="stMain"]').textContent.replaceAll('\\u2060', ''),
})"""


class Tracker(BaseHTTPRequestHandler):
    """Counts every request it gets (a browser fetching a catalogue's image would be one)."""

    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        Tracker.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def tracker():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Tracker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Tracker.hits.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/track.png"
    server.shutdown()


@pytest.fixture(scope="module")
def world(tmp_path_factory, tracker, app_data_dir) -> hostile.HostileWorld:
    return hostile.build(tmp_path_factory.mktemp("hostile"), tracker, app_data_dir)


@pytest.fixture(scope="module")
def app_db(world) -> str:
    """The app of this module runs on the hostile database (conftest's `app_url` starts it on `app_db`)."""
    return world.url


def own(href: str, base: str) -> bool:
    """Whether a link is the app's own: an anchor on the page, or one of its pages."""
    return href.startswith("#") or href.startswith(base) or (href.startswith("/") and not href.startswith("//"))


def violations(seen: dict, base: str, m: dict[str, str], *, named: bool) -> list[str]:
    """What a page shows that it must not: links off the app, the catalogue's images, scripts, handlers, KaTeX, the
    catalogue's directives rendered, an error; and (`named`: a page that names the hostile category) the category's
    name not shown as its characters."""
    found = [f"link {h}" for h in seen["links"] if not own(h, base)]
    found += [f"image {s}" for s in seen["images"] if "track" in s or "evil" in s]
    found += [f"{k} x{seen[k]}" for k in ("scripts", "handlers", "katex", "exceptions") if seen[k]]
    found += [f"directive {d}" for d in seen["directives"] if d in ("red", "badge")]  # the app's ":green[agrees]" is fine
    found += ["error message"] if "Something went wrong" in seen["text"] else []
    if named and not (m["directive"] in seen["content"] and m["image"] in seen["content"]):  # collapsed ones too
        found.append("the category name is not shown as its characters")
    return found


def test_no_page_fetches_links_or_injects_what_the_catalogue_wrote(app_page, world, tracker):
    page, remote, problems = app_page.page, [], {}
    page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(app_page.url) else None)
    m = hostile.markup(tracker)
    for path in PAGES:
        app_page.open(path)
        seen = page.evaluate(INSPECT)
        screenshot(page, f"hostile_{path or 'overview'}")
        found = violations(seen, app_page.url, m, named=path in ("", "taxonomy", "clusters"))
        if found:
            problems[f"/{path}"] = found
    host = tracker.rsplit("/", 1)[0]  # (Streamlit itself fetches its Material icons from fonts.gstatic.com)
    assert (problems, Tracker.hits, [u for u in remote if u.startswith(host) or "evil" in u]) == ({}, [], [])


def test_the_long_title_card_stays_small_and_its_full_text_is_on_demand(app_page, world):
    page = app_page.page
    app_page.open("taxonomy")
    card = page.get_by_test_id("stColumn").filter(has_text="long long").filter(has=page.get_by_text("Full text")).last
    expect(card).to_be_visible()
    box = card.bounding_box()
    assert box is not None and box["height"] < CARD_MAX_PX
    title = world.titles[world.long_id]
    assert title[:20] in card.inner_text().replace("\u2060", "") and title not in card.inner_text()
    card.get_by_text("Full text").click()  # an expander opens in the browser: no script run
    full = card.get_by_test_id("stText")
    expect(full).to_be_attached()
    assert full.text_content() == title  # the whole title, as text
    expect(page.get_by_text("no photo (unreadable)")).to_be_visible()  # the photo replaced after ingest
