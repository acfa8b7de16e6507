"""The Mapping page: a second platform's categories, their suggestions, and each decision (confirm, change, reject,
"no master equivalent", bulk confirm) checked in the database; markup in names shown literally; the Suggest job.

The data is tests/app/mapping_data.py: `shop` seeds the master taxonomy, `hm` is mapped onto it; expected values
come from its tables (HM, SHOP, SUGGESTED), never from what the page reads."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core import jobs
from core.embed.choice import EncoderChoice, record_encoders
from core.embed.encoders import ENCODERS
from db import mappings
from db.models import AuditEvent, CategoryMapping, Job, Label, Product, TaxonomyNode
from db.session import get_sessionmaker, transaction
from tests.app.helpers import run_page
from tests.app.mapping_data import HM, MARKUP, MARKUP_TITLE, SUGGESTED, MappingWorld, hm_products, make_world
from tests.app.shown import shown
from tests.core.test_cli_steps import HashedWordsText

TEE, SNEAKERS, SLIP_ON, ODD = "Garment Upper body > T-shirt", "Shoes > Sneakers", "Shoes > Slip-on", f"Odd > {MARKUP}"
TROUSERS = "Garment Lower body > Trousers"  # ten products, no suggestion


@pytest.fixture
def world(tmp_path, monkeypatch) -> MappingWorld:
    w = make_world(tmp_path)
    monkeypatch.setenv("DATABASE_URL", w.url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return w


def mapping_labels(url: str) -> dict[str, str]:
    """{sku: master path} of the labels confirmed mappings gave (source "mapping")."""
    with get_sessionmaker(url)() as s:
        rows = s.execute(
            select(Product.external_id, TaxonomyNode.path)
            .join(Label, Label.product_id == Product.id)
            .join(TaxonomyNode, TaxonomyNode.id == Label.node_id)
            .where(Label.source == "mapping")
        )
        return dict(rows.all())


def decision(url: str, category_id: int) -> tuple[str, str | None]:
    """(status, master path or None) of a platform category's mapping."""
    with get_sessionmaker(url)() as s:
        m = s.scalar(select(CategoryMapping).where(CategoryMapping.platform_category_id == category_id))
        return m.status, (s.get(TaxonomyNode, m.master_node_id).path if m.master_node_id else None)


def audit_actions(url: str) -> list[str]:
    with get_sessionmaker(url)() as s:
        return list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def open_category(world: MappingWorld, category: str):
    at = run_page("mapping")
    at.selectbox(key="map_category").set_value(world.cats[category]).run()
    assert not at.exception, at.exception
    return at


def frame_with(at, column: str):
    """The first table of the page that has `column` (the category table: "category"; the candidates: "vote")."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def table_of(at):
    return frame_with(at, "category")


def texts(at) -> list[str]:
    return [t.value for t in at.text]


def sample_titles(at) -> list[str]:
    """The sample products' titles the page lists (one text, a line "· title" each)."""
    lists = [t.splitlines() for t in texts(at) if t.startswith("· ")]
    assert len(lists) == 1, lists
    return [line.removeprefix("· ") for line in lists[0]]


def test_without_a_platform_to_map_the_page_says_how_to_bring_one(tmp_path, monkeypatch):
    world = make_world(tmp_path, second=False)  # only the platform that seeds the master taxonomy
    monkeypatch.setenv("DATABASE_URL", world.url)
    at = run_page("mapping")
    assert "No platform to map yet" in at.info[0].value and "Import page" in at.info[0].value
    assert "mapping suggest --platform" in at.info[0].value and not at.selectbox


def test_the_table_lists_every_category_with_its_count_status_suggestion_and_flag(world):
    at = run_page("mapping")
    assert at.selectbox(key="map_platform").options == ["hm"]  # shop seeds the master taxonomy: nothing to map
    table = table_of(at)
    categories = sorted({path for _, _, path in HM})
    assert list(table["category"]) == categories
    for _, row in table.iterrows():
        assert row["products"] == len(hm_products(row["category"]))
        if row["category"] in SUGGESTED:
            path, conf, ambiguous, _ = SUGGESTED[row["category"]]
            assert row["status"] == "suggested" and row["master category"] == (path or "(no master equivalent)")
            assert row["confidence"] == pytest.approx(conf) and row["ambiguous"] == ambiguous
        else:
            assert row["status"] == "not suggested yet" and row["master category"] == ""
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Categories"] == str(len(categories)) and metrics["Suggested"] == str(len(SUGGESTED))

    with transaction(get_sessionmaker(world.url)) as s:  # someone else confirms one: the status filter finds it
        mappings.confirm_mapping(s, category_id=world.cats[TEE], actor="ana")
    at.run()
    at.selectbox(key="map_status").set_value("confirmed").run()
    assert list(table_of(at)["category"]) == [TEE]
    assert at.selectbox(key="map_category").options == [f"{TEE} ({len(hm_products(TEE))})"]


def test_a_selected_category_shows_sample_titles_its_suggestion_and_runners_up(world):
    at = open_category(world, SLIP_ON)
    path, conf, _, runner_up = SUGGESTED[SLIP_ON]
    assert sample_titles(at) == [title for _, title, p in HM if p == SLIP_ON]
    assert f"Suggested: {path}, confidence {conf:.2f}, ambiguous: the runner-up is close" in texts(at)
    candidates = frame_with(at, "vote")
    assert list(candidates["master category"]) == [path, runner_up]
    assert list(candidates["confidence"]) == pytest.approx([conf, 1 - conf])

    at.selectbox(key="map_category").set_value(world.cats[TROUSERS]).run()
    titles = sample_titles(at)
    assert len(titles) == 8 and set(titles) < {title for _, title, p in HM if p == TROUSERS}  # 8 of its 10
    assert "No suggestion yet: press Suggest mappings, or choose a master category below." in texts(at)
    assert at.button(key="map_confirm").disabled  # nothing to confirm


def test_confirm_labels_the_categorys_products_in_the_database_and_undo_takes_it_back(world):
    path = SUGGESTED[TEE][0]
    at = open_category(world, TEE)
    assert mapping_labels(world.url) == {}
    at.button(key="map_confirm").click().run()
    assert not at.exception, at.exception
    assert decision(world.url, world.cats[TEE]) == ("confirmed", path)
    assert mapping_labels(world.url) == dict.fromkeys(hm_products(TEE), path)
    assert audit_actions(world.url)[-1] == "confirm_mapping" and "confirmed" in at.success[0].value
    assert f"Confirmed: {path}" in texts(at)

    with get_sessionmaker(world.url)() as s:
        event_id = s.scalar(select(AuditEvent.id).where(AuditEvent.action == "confirm_mapping"))
    at.button(key=f"map_undo_{event_id}").click().run()
    assert mapping_labels(world.url) == {} and decision(world.url, world.cats[TEE]) == ("suggested", path)


def test_change_maps_onto_the_master_category_picked_at_any_depth(world):
    at = open_category(world, SLIP_ON)
    cid = world.cats[SLIP_ON]
    assert at.selectbox(key=f"map_pick_{cid}").value == world.nodes[SUGGESTED[SLIP_ON][0]]  # the suggestion preselected
    at.selectbox(key=f"map_pick_{cid}").set_value(world.nodes["Footwear > Shoes"]).run()  # an inner node
    at.button(key="map_change").click().run()
    assert not at.exception, at.exception
    assert decision(world.url, cid) == ("confirmed", "Footwear > Shoes")
    assert mapping_labels(world.url) == dict.fromkeys(hm_products(SLIP_ON), "Footwear > Shoes")
    with get_sessionmaker(world.url)() as s:
        assert s.scalar(select(CategoryMapping.origin).where(CategoryMapping.platform_category_id == cid)) == "human"


def test_reject_and_no_equivalent_record_their_status_and_take_the_labels_away(world):
    with transaction(get_sessionmaker(world.url)) as s:
        mappings.confirm_mapping(s, category_id=world.cats[SNEAKERS], actor="ana")
        mappings.confirm_mapping(s, category_id=world.cats[TEE], actor="ana")
    assert set(mapping_labels(world.url)) == {*hm_products(SNEAKERS), *hm_products(TEE)}
    at = open_category(world, SNEAKERS)
    at.button(key="map_none").click().run()
    assert decision(world.url, world.cats[SNEAKERS]) == ("no_equivalent", None)
    at.selectbox(key="map_category").set_value(world.cats[TEE]).run()
    at.button(key="map_reject").click().run()
    assert decision(world.url, world.cats[TEE]) == ("rejected", SUGGESTED[TEE][0])
    assert mapping_labels(world.url) == {}
    assert audit_actions(world.url)[-2:] == ["reject_mapping", "reject_mapping"]


def test_bulk_confirm_shows_how_many_before_pressing_and_confirms_exactly_those(world):
    at = run_page("mapping")
    assert at.button(key="map_bulk").label == "Confirm 2 suggestions >= 0.90"  # T-shirt 0.95, Sneakers 0.92
    at.slider(key="map_bulk_min").set_value(0.5).run()
    wanted = [c for c, (path, conf, _, _) in SUGGESTED.items() if path and conf >= 0.5]  # Lamp's is "no equivalent"
    assert at.button(key="map_bulk").label == f"Confirm {len(wanted)} suggestions >= 0.50"
    assert mapping_labels(world.url) == {}  # nothing happens before the press
    at.button(key="map_bulk").click().run()
    assert not at.exception, at.exception
    for category, (path, _, _, _) in SUGGESTED.items():
        assert decision(world.url, world.cats[category]) == (("confirmed" if category in wanted else "suggested"), path)
    assert mapping_labels(world.url) == {sku: SUGGESTED[c][0] for c in wanted for sku in hm_products(c)}
    assert audit_actions(world.url)[-1] == "bulk_confirm_mappings"
    assert audit_actions(world.url).count("bulk_confirm_mappings") == 1  # one action, one Undo
    assert at.button(key="map_bulk").disabled  # none left at >= 0.50


MARKDOWN_ELEMENTS = ("markdown", "caption", "success", "error", "warning", "info", "title", "header", "subheader")


def rendered_as_markdown(at) -> list[str]:
    """Every string the page hands to an element that renders markdown (and button, metric and expander labels)."""
    out = [e.value for kind in MARKDOWN_ELEMENTS for e in at.get(kind)]
    out += [b.label for b in at.button] + [m.label for m in at.metric] + [e.label for e in at.get("expander")]
    return out


def test_markup_in_a_category_name_and_a_title_is_shown_as_those_characters(world):
    at = open_category(world, ODD)
    assert f"{ODD} · 1 product" in texts(at) and sample_titles(at) == [MARKUP_TITLE]
    assert ODD in list(table_of(at)["category"])
    assert not [s for s in rendered_as_markdown(at) if "**bold**" in s or "<b>" in s]

    # meanwhile someone marks it "no master equivalent": the refusal names the category, escaped
    with transaction(get_sessionmaker(world.url)) as s:
        mappings.reject_mapping(s, category_id=world.cats[ODD], actor="ana", no_equivalent=True)
    at.button(key="map_none").click().run()
    assert not at.exception, at.exception
    (error,) = at.error
    assert "was rejected by ana a moment ago: reload" in shown(error.value)  # the page's version is stale
    assert "**bold** _it_ [x](http://e.com) :red[y]" in shown(error.value)
    assert not [s for s in rendered_as_markdown(at) if "**bold**" in s]


def test_suggest_button_queues_one_mapping_job_for_the_platform(world, no_spawn):
    at = run_page("mapping")
    at.button(key="map_suggest").click().run()
    assert not at.exception, at.exception
    with get_sessionmaker(world.url)() as s:
        job = s.scalars(select(Job)).one()
    assert (job.kind, job.params["platform"], no_spawn) == ("mapping", "hm", [job.id])
    at.run()
    assert at.button(key="map_suggest").disabled  # one at a time
    assert f"Suggest job #{job.id}" in at.get("progress")[0].proto.text.replace("\\", "")


def test_the_suggest_job_stores_a_suggestion_for_every_category_and_the_page_lists_them(tmp_path, monkeypatch, no_spawn):
    world = make_world(tmp_path, suggest=False)
    monkeypatch.setenv("DATABASE_URL", world.url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setitem(ENCODERS, "stand-in-text", HashedWordsText)
    record_encoders(EncoderChoice(text="stand-in-text", image=None))
    at = run_page("mapping")
    assert set(table_of(at)["status"]) == {"not suggested yet"}
    at.button(key="map_suggest").click().run()
    assert jobs.run_job(world.url, no_spawn[0])  # the job's process, run here
    at.run()
    assert not at.exception, at.exception
    categories = sorted({path for _, _, path in HM})
    with get_sessionmaker(world.url)() as s:
        suggested = select(CategoryMapping).where(CategoryMapping.origin == "suggest")
        stored = {m.platform_category_id: m for m in s.scalars(suggested)}
        master = {n.id for n in s.scalars(select(TaxonomyNode))}
        assert sorted(c for c, cid in world.cats.items() if cid in stored) == categories
        assert all(m.status == "suggested" and m.candidates for m in stored.values())
        assert all(c["node_id"] is None or c["node_id"] in master for m in stored.values() for c in m.candidates)
    assert set(table_of(at)["status"]) == {"suggested"}
    assert any("finished" in s.value and str(len(categories)) in s.value for s in at.success)
