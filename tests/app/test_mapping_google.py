"""The Mapping page's other target: the master taxonomy onto the Google Product Taxonomy. The hint without an imported
standard; the table of master categories and their suggested Google category; confirm / change / reject / bulk
confirm checked in the database (audited `decide_standard` events, Undo); the shopping-feed download's bytes; a Google
category name with markup shown literally; the "Suggest Google categories" job.

The database: `shop` (tests/app/mapping_data.py's SHOP) seeds the master taxonomy; GOOGLE below is a six-category
standard; SUGGESTED the hand-written suggestions. Expected values come from these tables, never from what the page reads.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from core import jobs
from core.embed.choice import EncoderChoice, record_encoders
from core.embed.encoders import ENCODERS
from core.steps.ingest import ingest
from db import standards
from db.models import AuditEvent, Job, Platform, PlatformCategory, StandardMapping, TaxonomyNode
from db.session import get_sessionmaker, transaction, upgrade
from tests.app.helpers import add_people, run_page
from tests.app.mapping_data import MAP, MARKUP, SHOP, write_csv
from tests.app.shown import shown
from tests.app.test_mapping import rendered_as_markdown
from tests.core.test_cli_steps import HashedWordsText

CLOTHING, TOPS, SHOES, ODD = (
    "Apparel & Accessories > Clothing",
    "Apparel & Accessories > Clothing > Shirts & Tops",
    "Apparel & Accessories > Shoes",
    f"Odd > {MARKUP}",
)
GOOGLE = {  # Google path -> its id (a standard lists every level, parents included)
    "Apparel & Accessories": "166",
    CLOTHING: "1604",
    TOPS: "212",
    SHOES: "187",
    "Odd": "900",
    ODD: "901",
}
TEES, SHIRTS, SPORTS = "Apparel > Topwear > Tshirts", "Apparel > Topwear > Shirts", "Footwear > Shoes > Sports Shoes"
# master path -> (suggested Google path, confidence, ambiguous, runner-up); the other master nodes have no suggestion
SUGGESTED = {
    "Apparel": (CLOTHING, 0.95, False, "Apparel & Accessories"),
    TEES: (TOPS, 0.93, False, CLOTHING),
    SHIRTS: (TOPS, 0.6, True, CLOTHING),
    "Footwear": (SHOES, 0.91, False, None),
    SPORTS: (ODD, 0.3, False, SHOES),
}


@dataclass(frozen=True)
class GoogleWorld:
    url: str
    nodes: dict[str, int]  # master path -> node id
    cats: dict[str, int]  # Google path -> category id


def master_paths() -> list[str]:
    """Every master path SHOP's three-level paths make (parents included), sorted."""
    return sorted({" > ".join(path.split(" > ")[:d]) for _, _, path in SHOP for d in (1, 2, 3)})


def suggestion_rows(nodes: dict[str, int], cats: dict[str, int]) -> list[dict]:
    """SUGGESTED in the shape `db.standards.store_standard_suggestions` takes (what `core.steps.standard` computes)."""
    rows = []
    for master, (path, conf, ambiguous, runner_up) in SUGGESTED.items():
        candidates = [{"category_id": cats[path], "path": path, "confidence": conf, "name": 0.6, "centroid": 0.7}]
        if runner_up:
            candidates.append(
                {
                    "category_id": cats[runner_up],
                    "path": runner_up,
                    "confidence": round(1 - conf, 4),
                    "name": 0.2,
                    "centroid": 0.3,
                }
            )
        rows.append(
            {
                "node_id": nodes[master],
                "category_id": cats[path],
                "confidence": conf,
                "ambiguous": ambiguous,
                "candidates": candidates,
            }
        )
    return rows


def make_world(folder: Path, *, standard: bool = True, suggest: bool = True) -> GoogleWorld:
    url = f"sqlite:///{folder / 'google.db'}"
    upgrade(url)
    add_people(url)  # the pages run signed in (run_page)
    ingest(write_csv(folder, "shop.csv", SHOP), platform="shop", db_url=url, mapping=MAP)
    factory = get_sessionmaker(url)
    if standard:
        with transaction(factory) as s:
            categories = [(code, tuple(path.split(" > "))) for path, code in GOOGLE.items()]
            standards.import_standard(s, name="google", categories=categories, actor="test")
    with factory() as s:
        nodes = dict(s.execute(select(TaxonomyNode.path, TaxonomyNode.id)).all())
        google = select(PlatformCategory.path, PlatformCategory.id).join(Platform).where(Platform.name == "google")
        cats = dict(s.execute(google).all())
    if standard and suggest:
        with transaction(factory) as s:
            standards.store_standard_suggestions(s, standard="google", suggestions=suggestion_rows(nodes, cats), actor="test")
    return GoogleWorld(url, nodes, cats)


@pytest.fixture
def world(tmp_path, monkeypatch) -> GoogleWorld:
    w = make_world(tmp_path)
    monkeypatch.setenv("DATABASE_URL", w.url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return w


@pytest.fixture
def media_managers(monkeypatch) -> list:
    """The media file managers AppTest makes, one per run (a deferred download's bytes are made through them)."""
    import streamlit.testing.v1.app_test as app_test

    made = []

    class Recorded(app_test.MediaFileManager):
        def __init__(self, storage) -> None:
            super().__init__(storage)
            made.append(self)

    monkeypatch.setattr(app_test, "MediaFileManager", Recorded)
    return made


def google_page(world: GoogleWorld, master: str | None = None):
    """The Mapping page switched to the Google target (and `master` selected)."""
    at = run_page("mapping")
    at.radio(key="map_target").set_value("google").run()
    if master is not None:
        at.selectbox(key="std_node").set_value(world.nodes[master]).run()
    assert not at.exception, at.exception
    return at


def decision(url: str, node_id: int) -> tuple[str, str | None]:
    """(status, Google path or None) of a master node's stored mapping."""
    with get_sessionmaker(url)() as s:
        m = s.scalar(select(StandardMapping).where(StandardMapping.master_node_id == node_id))
        return m.status, (s.get(PlatformCategory, m.category_id).path if m.category_id else None)


def events(url: str, action: str) -> list[AuditEvent]:
    with get_sessionmaker(url)() as s:
        found = list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))
        s.expunge_all()
        return found


def texts(at) -> list[str]:
    return [t.value for t in at.text]


def table_of(at):
    return next(d.value for d in at.dataframe if "master category" in d.value.columns)


def candidates_of(at):
    return next(d.value for d in at.dataframe if "centroid" in d.value.columns)


def std_keys(at) -> list[str]:
    widgets = [*at.button, *at.selectbox, *at.slider, *at.radio, *at.get("download_button")]
    return [w.key for w in widgets if w.key and (w.key.startswith("std_") or w.key == "map_target")]


def test_without_an_imported_standard_the_page_says_how_to_import_it_and_shows_no_google_control(tmp_path, monkeypatch):
    world = make_world(tmp_path, standard=False)
    monkeypatch.setenv("DATABASE_URL", world.url)
    at = run_page("mapping")
    assert any("python -m core taxonomy import-google" in c.value for c in at.caption)
    assert std_keys(at) == [] and not at.radio


def test_the_table_lists_every_master_category_with_its_google_category_id_confidence_and_flag(world):
    at = google_page(world)
    assert "python -m core taxonomy import-google" not in " ".join(c.value for c in at.caption)
    table = table_of(at)
    assert list(table["master category"]) == master_paths()
    for _, row in table.iterrows():
        if row["master category"] in SUGGESTED:
            path, conf, ambiguous, _ = SUGGESTED[row["master category"]]
            assert (row["status"], row["Google category"], row["Google id"]) == ("suggested", path, GOOGLE[path])
            assert row["confidence"] == pytest.approx(conf) and row["ambiguous"] == ambiguous
        else:
            assert (row["status"], row["Google category"], row["Google id"]) == ("not suggested yet", "", "")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Master categories": str(len(master_paths())), "Confirmed": "0", "Suggested": str(len(SUGGESTED))}

    at.selectbox(key="std_status").set_value("unmapped").run()
    assert list(table_of(at)["master category"]) == [p for p in master_paths() if p not in SUGGESTED]


def test_a_selected_master_category_shows_its_suggestion_and_runner_up_with_their_signals(world):
    at = google_page(world, SHIRTS)
    path, conf, _, runner_up = SUGGESTED[SHIRTS]
    assert f"Suggested: {path} (id {GOOGLE[path]}), confidence {conf:.2f}, ambiguous: the runner-up is close" in texts(at)
    candidates = candidates_of(at)
    assert list(candidates["Google category"]) == [path, runner_up]
    assert list(candidates["Google id"]) == [GOOGLE[path], GOOGLE[runner_up]]
    assert list(candidates["confidence"]) == pytest.approx([conf, 1 - conf])
    assert list(candidates["name"]) == pytest.approx([0.6, 0.2]) and list(candidates["centroid"]) == pytest.approx([0.7, 0.3])


def test_confirm_stores_the_google_category_as_an_audited_decision_and_undo_takes_it_back(world):
    at = google_page(world, TEES)
    at.button(key="std_confirm").click().run()
    assert not at.exception, at.exception
    assert decision(world.url, world.nodes[TEES]) == ("confirmed", TOPS)
    (event,) = events(world.url, "decide_standard")
    assert event.actor == "merchandiser" and event.after["status"] == "confirmed"
    assert event.after["category_id"] == world.cats[TOPS] and event.before["status"] == "suggested"
    assert f"Confirmed: {TOPS} (id {GOOGLE[TOPS]})" in texts(at) and at.success
    assert {m.label: m.value for m in at.metric}["Confirmed"] == "1"

    at.button(key=f"map_undo_{event.id}").click().run()
    assert not at.exception, at.exception
    assert decision(world.url, world.nodes[TEES]) == ("suggested", TOPS)
    assert events(world.url, "undo")[-1].undo_of_id == event.id


def test_change_confirms_the_google_category_picked_instead_of_the_suggestion(world):
    at = google_page(world, SHIRTS)
    picker = at.selectbox(key=f"std_pick_{world.nodes[SHIRTS]}")
    assert picker.value == world.cats[SUGGESTED[SHIRTS][0]]  # the suggestion preselected
    assert len(picker.options) == len(GOOGLE)
    picker.set_value(world.cats[CLOTHING]).run()
    at.button(key="std_change").click().run()
    assert not at.exception, at.exception
    assert decision(world.url, world.nodes[SHIRTS]) == ("confirmed", CLOTHING)
    with get_sessionmaker(world.url)() as s:
        assert s.scalar(select(StandardMapping.origin).where(StandardMapping.master_node_id == world.nodes[SHIRTS])) == "human"


def test_reject_records_the_rejection(world):
    at = google_page(world, "Footwear")
    at.button(key="std_reject").click().run()
    assert not at.exception, at.exception
    assert decision(world.url, world.nodes["Footwear"]) == ("rejected", SHOES)
    assert [e.after["status"] for e in events(world.url, "decide_standard")] == ["rejected"]
    assert at.button(key="std_reject").disabled and f"Rejected suggestion: {SHOES} (id {GOOGLE[SHOES]})" in texts(at)


def test_bulk_confirm_shows_how_many_before_pressing_and_confirms_exactly_those(world):
    at = google_page(world)
    above = lambda low: [m for m, (_, conf, _, _) in SUGGESTED.items() if conf >= low]  # noqa: E731
    assert at.button(key="std_bulk").label == f"Confirm {len(above(0.9))} suggestions >= 0.90"
    at.slider(key="std_bulk_min").set_value(0.5).run()
    wanted = above(0.5)
    assert at.button(key="std_bulk").label == f"Confirm {len(wanted)} suggestions >= 0.50"
    assert events(world.url, "decide_standard") == []  # nothing happens before the press
    at.button(key="std_bulk").click().run()
    assert not at.exception, at.exception
    for master, (path, _, _, _) in SUGGESTED.items():
        assert decision(world.url, world.nodes[master]) == ("confirmed" if master in wanted else "suggested", path)
    decided = events(world.url, "decide_standard")
    assert sorted(e.after["node_id"] for e in decided) == sorted(world.nodes[m] for m in wanted)  # one per node
    assert at.button(key="std_bulk").disabled  # none left at >= 0.50


def feed_of(at, managers: list, storages: list) -> list[dict[str, str]]:
    """The bytes the feed's download button serves when pressed: its deferred callable, run as the browser's press
    asks the latest run's media manager to (`media_managers`), read from that run's store (`media_stores`)."""
    (button,) = at.get("download_button")
    assert button.proto.deferred_file_id
    url = managers[-1].execute_deferred(button.proto.deferred_file_id)
    served = storages[-1].get_file(url.rsplit("/", 1)[-1])
    assert (served.filename, served.mimetype) == ("shopping_feed.csv", "text/csv")
    return list(csv.DictReader(io.StringIO(served.content.decode("utf-8"))))


def test_the_feed_download_gives_every_product_the_confirmed_google_category_of_it_or_its_nearest_ancestor(
    world, media_managers, media_stores
):
    at = google_page(world, TEES)
    at.button(key="std_confirm").click().run()  # Tshirts -> Shirts & Tops
    at.selectbox(key="std_node").set_value(world.nodes["Footwear"]).run()
    at.button(key="std_confirm").click().run()  # Footwear -> Shoes: every shoe below it inherits it
    assert not at.exception, at.exception
    confirmed = {TEES: TOPS, "Footwear": SHOES}

    def google_of(path: str) -> str:
        names = path.split(" > ")
        return next((confirmed[a] for d in range(len(names), 0, -1) if (a := " > ".join(names[:d])) in confirmed), "")

    rows = {r["id"]: r for r in feed_of(at, media_managers, media_stores)}
    assert sorted(rows) == sorted(sku for sku, _, _ in SHOP)
    for sku, title, path in SHOP:
        row, want = rows[sku], google_of(path)
        assert (row["title"], row["master_path"], row["google_product_category_path"]) == (title, path, want)
        assert row["google_product_category"] == (GOOGLE[want] if want else "")
    assert {r["google_product_category"] for r in rows.values()} == {GOOGLE[TOPS], GOOGLE[SHOES], ""}


def test_a_google_category_name_with_markup_is_shown_as_those_characters(world):
    at = google_page(world, SPORTS)
    assert ODD in list(table_of(at)["Google category"]) and ODD in list(candidates_of(at)["Google category"])
    assert f"Suggested: {ODD} (id {GOOGLE[ODD]}), confidence 0.30" in texts(at)
    at.button(key="std_confirm").click().run()
    assert not at.exception, at.exception
    assert decision(world.url, world.nodes[SPORTS]) == ("confirmed", ODD)
    (success,) = at.success  # the flash names the category, escaped
    assert "**bold** _it_ [x](http://e.com) :red[y]" in shown(success.value)
    assert not [s for s in rendered_as_markdown(at) if "**bold**" in s]


def test_suggest_button_queues_one_standard_job_for_google(world, no_spawn):
    at = google_page(world)
    at.button(key="std_suggest").click().run()
    assert not at.exception, at.exception
    with get_sessionmaker(world.url)() as s:
        job = s.scalars(select(Job)).one()
    assert (job.kind, job.params["standard"], no_spawn) == ("standard", "google", [job.id])
    at.run()
    assert at.button(key="std_suggest").disabled  # one at a time
    assert f"Suggest job #{job.id} for google" in at.get("progress")[0].proto.text.replace("\\", "")


def test_the_standard_job_stores_a_google_suggestion_for_every_master_category(tmp_path, monkeypatch, no_spawn):
    world = make_world(tmp_path, suggest=False)
    monkeypatch.setenv("DATABASE_URL", world.url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setitem(ENCODERS, "stand-in-text", HashedWordsText)
    record_encoders(EncoderChoice(text="stand-in-text", image=None))
    at = google_page(world)
    assert set(table_of(at)["status"]) == {"not suggested yet"}
    at.button(key="std_suggest").click().run()
    assert jobs.run_job(world.url, no_spawn[0])  # the job's process, run here
    at.run()
    assert not at.exception, at.exception
    with get_sessionmaker(world.url)() as s:
        stored = list(s.scalars(select(StandardMapping)))
    assert sorted(m.master_node_id for m in stored) == sorted(world.nodes[p] for p in master_paths())
    assert all(m.status == "suggested" and m.candidates for m in stored)
    assert all(c["category_id"] is None or c["category_id"] in world.cats.values() for m in stored for c in m.candidates)
    assert set(table_of(at)["status"]) == {"suggested"}
    assert any("finished" in s.value and str(len(master_paths())) in s.value for s in at.success)
