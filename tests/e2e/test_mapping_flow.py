"""Real browser: a second platform's category confirmed on the Mapping page is counted under its master category on
the Taxonomy page; the master tree gains no root of the second platform's."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from core import config
from core.steps.ingest import ingest
from db import mappings, repo
from db.models import Label, Platform, PlatformCategory, Product, TaxonomyNode
from db.session import get_sessionmaker, transaction, upgrade
from tests.app.helpers import slice_paths
from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

OUTLET = "outlet"  # the second platform: its own two-level tree, never seeding the master taxonomy
CONFIDENCE = 0.88


@pytest.fixture(scope="module")
def target_leaf(app_tree) -> str:
    return max(app_tree.leaves(), key=app_tree.products)  # the biggest leaf of the test's own slice


@pytest.fixture(scope="module")
def outlet_rows(app_frame, target_leaf):
    """Six products of the target leaf (photos included) re-filed under the outlet's own category."""
    in_leaf = [i for i, path in slice_paths(app_frame).items() if path == target_leaf]
    rows = app_frame[app_frame["id"].astype(str).isin(in_leaf)].head(6).copy()
    rows["id"] = "O-" + rows["id"].astype(str)
    rows["master_category"], rows["sub_category"], rows["article_type"] = (
        "Outlet",
        f"{target_leaf.rsplit(' > ', 1)[-1]} deals",
        "",
    )
    return rows


@pytest.fixture(scope="module")
def app_db(tmp_path_factory, app_frame, outlet_rows, target_leaf) -> str:
    """The conftest's database (the slice, platform myntra, seeding the master taxonomy), then the outlet ingested and
    a suggestion stored for its category: the target leaf, with the leaf's first sibling as runner-up."""
    folder = tmp_path_factory.mktemp("e2e-mapping")
    url = f"sqlite:///{folder / 'e2e.db'}"
    upgrade(url)
    app_frame.to_parquet(folder / "slice.parquet")
    ingest(folder / "slice.parquet", platform="myntra", db_url=url, images_root=config.catalog_dir())
    outlet_rows.to_parquet(folder / "outlet.parquet")
    ingest(folder / "outlet.parquet", platform=OUTLET, db_url=url, images_root=config.catalog_dir())
    with transaction(get_sessionmaker(url)) as s:
        category = s.scalar(select(PlatformCategory).join(Platform).where(Platform.name == OUTLET, PlatformCategory.depth == 2))
        leaf = repo.node_by_path(s, target_leaf)
        other = s.scalar(select(TaxonomyNode).where(TaxonomyNode.parent_id == leaf.parent_id, TaxonomyNode.id != leaf.id))
        candidates = [
            {"node_id": leaf.id, "path": leaf.path, "confidence": CONFIDENCE, "vote": 0.9, "name": 0.5, "centroid": 0.8}
        ]
        if other is not None:
            candidates.append(
                {"node_id": other.id, "path": other.path, "confidence": 0.1, "vote": 0.1, "name": 0.3, "centroid": 0.4}
            )
        suggestion = {"category_id": category.id, "node_id": leaf.id, "confidence": CONFIDENCE, "ambiguous": False}
        mappings.store_suggestions(s, platform=OUTLET, suggestions=[{**suggestion, "candidates": candidates}], actor="test")
    return url


def test_confirm_a_suggested_mapping_and_see_its_products_counted_under_the_master_category(
    app_page, app_db, app_tree, target_leaf, outlet_rows
):
    page, n_outlet = app_page.page, len(outlet_rows)
    outlet_category = f"Outlet > {target_leaf.rsplit(' > ', 1)[-1]} deals"

    app_page.open("mapping")
    expect(page.get_by_role("heading", name="Mapping")).to_be_visible()
    expect(page.get_by_role("combobox", name="Platform", exact=True)).to_have_value(OUTLET)
    expect(page.get_by_role("combobox", name="Category (type to search)", exact=True)).to_have_value(
        f"{outlet_category} ({n_outlet})"
    )
    expect(page.get_by_text(f"Suggested: {target_leaf}, confidence {CONFIDENCE:.2f}", exact=True)).to_be_visible()
    samples = page.get_by_test_id("stText").filter(has_text=outlet_rows.iloc[0]["title"])
    for title in outlet_rows["title"]:  # every sample title, as text
        expect(samples).to_contain_text(f"· {title}")
    expect(page.get_by_test_id("stImage").first).to_be_visible()  # and its photo
    page.set_viewport_size({"width": 1400, "height": 1800})  # the whole page in one picture (Streamlit scrolls inside)
    screenshot(page, "mapping_page")
    page.set_viewport_size({"width": 1400, "height": 1000})

    with app_page.rerun():
        page.get_by_role("button", name="Confirm", exact=True).click()
    done = f"Mapping confirmed: its {n_outlet} products now carry the master label. Undo it under Recent decisions."
    expect(page.get_by_test_id("stAlert").get_by_text(done, exact=True)).to_be_visible()  # escaped, shown as written
    expect(page.get_by_text(f"Confirmed: {target_leaf}", exact=True)).to_be_visible()
    with get_sessionmaker(app_db)() as s:
        labelled = s.execute(
            select(Product.external_id, TaxonomyNode.path)
            .join(Label, Label.product_id == Product.id)
            .join(TaxonomyNode, TaxonomyNode.id == Label.node_id)
            .where(Label.source == "mapping")
        ).all()
    assert sorted(labelled) == sorted((e, target_leaf) for e in outlet_rows["id"])

    with app_page.rerun():
        page.get_by_role("link", name="Taxonomy").click()
    expect(page.get_by_role("heading", name="Taxonomy")).to_be_visible()
    page.get_by_label("Search categories").fill(target_leaf)
    with app_page.rerun():
        page.get_by_label("Search categories").press("Enter")
    total = app_tree.products(target_leaf) + n_outlet  # the slice's own products and the outlet's, from the test's data
    expect(page.get_by_role("combobox", name="Category")).to_have_value(f"{target_leaf} ({total})")
    expect(page.get_by_test_id("stMetric").filter(has_text="Products").first).to_contain_text(str(total))
    expect(page.get_by_text(f"{OUTLET}: {outlet_category}", exact=True)).to_be_visible()
    screenshot(page, "taxonomy_after_mapping")

    # the master tree: the slice's roots and no root of the outlet's
    with app_page.rerun():
        page.get_by_role("link", name="Overview").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    roots = page.get_by_role("tabpanel", name="Tree").get_by_test_id("stExpander")
    expect(roots).to_have_count(len(app_tree.paths(1)))
    for root in app_tree.paths(1):
        expect(roots.filter(has_text=f"{root} ·")).to_have_count(1)
    expect(roots.filter(has_text="Outlet")).to_have_count(0)
