"""The Overview page: catalogue counts, mapping coverage per platform, and the taxonomy tree."""

from __future__ import annotations

import pytest

from db import mappings
from db.session import get_sessionmaker, transaction
from tests.app.helpers import run_page
from tests.app.mapping_data import HM, SHOP, SUGGESTED, hm_products, make_world


def test_overview_counts_and_tree(app_env, tree):
    at = run_page("overview")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Products"] == "80" and metrics["Labelled"] == "100.0%" and metrics["With photo"] == "80"
    plural = lambda n: f"{n:,} product" + ("" if n == 1 else "s")  # noqa: E731
    assert sorted(e.label for e in at.expander) == sorted(f"{root} · {plural(tree.products(root))}" for root in tree.paths(1))
    tree_text = "\n".join(m.value for m in at.markdown)
    for path in (p for p in tree.paths() if " > " in p):
        assert f"**{path.rsplit(' > ', 1)[-1]}** · {tree.products(path):,}" in tree_text


def test_overview_on_an_empty_database_explains_what_to_do(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    at = run_page("overview")
    assert "catalogue is empty" in at.info[0].value


def test_overview_shows_each_platforms_mapping_coverage(tmp_path, monkeypatch):
    world = make_world(tmp_path)
    tee, lamp = "Garment Upper body > T-shirt", "Furniture > Lamp"
    with transaction(get_sessionmaker(world.url)) as s:
        mappings.confirm_mapping(s, category_id=world.cats[tee], actor="ana")
        mappings.reject_mapping(s, category_id=world.cats[lamp], actor="ana", no_equivalent=True)
    monkeypatch.setenv("DATABASE_URL", world.url)
    at = run_page("overview")
    assert "Mapping coverage" in [h.value for h in at.subheader]
    table = next(d.value for d in at.dataframe if "mapped products" in d.value.columns).set_index("platform")
    hm_categories, shop_categories = {p for _, _, p in HM}, {p for _, _, p in SHOP}
    assert table.loc["hm"].to_dict() == {
        "role": "mapped",
        "products": len(HM),
        "mapped products": len(hm_products(tee)),
        "mapped": pytest.approx(len(hm_products(tee)) / len(HM)),
        "categories": len(hm_categories),
        "confirmed": 1,
        "suggested": len(SUGGESTED) - 2,
        "rejected": 0,
        "no equivalent": 1,
        "not suggested": len(hm_categories - set(SUGGESTED)),
    }
    shop = table.loc["shop"]  # the seeding platform: every category an identity mapping
    assert (shop["role"], shop["products"], shop["mapped products"]) == ("seeds the master taxonomy", len(SHOP), len(SHOP))
    assert (shop["categories"], shop["confirmed"], shop["suggested"]) == (len(shop_categories), len(shop_categories), 0)


def test_overview_with_one_platform_shows_no_mapping_coverage(app_env):
    at = run_page("overview")
    assert "Mapping coverage" not in [h.value for h in at.subheader] and "Platforms" in [h.value for h in at.subheader]
