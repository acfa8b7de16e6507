"""Real browser: a catalogue map larger than the density threshold is drawn as a density image with a sample of points,
and a box drawn on it lists every product inside the box (resolved on the server against all the map's rows)."""

from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.scatter import DENSITY_ABOVE, SAMPLE_POINTS
from core.steps.maps import save_map
from db.models import Product
from db.session import get_sessionmaker
from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROWS = DENSITY_ABOVE + 20_000


def large_map(app_db) -> tuple[np.ndarray, np.ndarray]:
    """ROWS rows: one row per product of the database, product k at (k % 13, k // 13) give or take 0.2, then every
    other row the first product's, spread evenly over the whole map (uniform, seed 7). A box then holds a few single
    rows of their own, most of which the drawn sample (1 row in 6) leaves out: only a selection resolved against
    every row lists them all. Written as the app's catalogue map."""
    with get_sessionmaker(app_db)() as s:
        products = np.array(s.scalars(select(Product.id).order_by(Product.id)).all())
    rng = np.random.default_rng(7)
    k = np.arange(len(products))
    own = np.stack([k % 13, k // 13], axis=1) + rng.uniform(-0.2, 0.2, size=(len(products), 2))
    rest = rng.uniform([-1, -1], [13, 1 + len(products) // 13], size=(ROWS - len(products), 2))
    ids = np.concatenate([products, np.full(len(rest), products[0])])
    xy = np.concatenate([own, rest]).astype(np.float32)
    save_map("all", product_ids=ids, xy=xy, clusters=np.arange(ROWS) % 3, meta={"timings": {"view": 1.0}})
    return ids, xy.astype(np.float64)


def test_a_large_map_is_a_density_view_and_a_box_lists_every_product_inside_it(app_page, app_db, app_data_dir, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(app_data_dir))  # save_map writes under DATA_DIR: the app's own
    ids, xy = large_map(app_db)
    page = app_page.page
    app_page.open("clusters")
    expect(page.locator('[data-testid="stImage"] img').first).to_be_visible()  # first a picture of the map
    with app_page.rerun():
        page.get_by_text("Select on the map", exact=True).click()
    plot = page.locator(".stPlotlyChart .js-plotly-plot")
    expect(plot).to_be_visible()
    drawn = page.evaluate(
        """() => { const p = document.querySelector('.stPlotlyChart .js-plotly-plot');
        return {images: (p._fullLayout.images || []).length, meta: p._fullLayout.meta,
                shown: p._fullData.reduce((n, t) => n + t.x.length, 0)}; }"""
    )
    assert drawn == {"images": 1, "meta": {"points": ROWS, "shown": SAMPLE_POINTS}, "shown": SAMPLE_POINTS}
    expect(page.get_by_text(f"shaded by the density of all {ROWS:,}")).to_be_visible()

    page.locator('.modebar-btn[data-title="Box Select"]').first.click()
    box = plot.locator(".nsewdrag").first.bounding_box()
    with app_page.rerun():
        page.mouse.move(box["x"] + box["width"] * 0.30, box["y"] + box["height"] * 0.35)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.50, steps=8)
        page.mouse.move(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.65, steps=8)
        page.mouse.up()
    chosen = page.evaluate(
        """() => { const s = document.querySelector('.stPlotlyChart .js-plotly-plot')._fullLayout.selections[0];
        return [s.x0, s.x1, s.y0, s.y1]; }"""
    )
    x0, x1 = sorted(chosen[:2])
    y0, y1 = sorted(chosen[2:])
    inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    expected = set(ids[inside].tolist())
    drawn_ids = page.evaluate(
        """() => [...new Set(document.querySelector('.stPlotlyChart .js-plotly-plot')._fullData
                 .flatMap(t => Array.from(t.customdata)))]"""
    )
    assert expected - set(drawn_ids)  # products in the box that are not among the drawn points
    expected = len(expected)
    expect(page.get_by_role("heading", name=f"{expected:,} selected products")).to_be_visible()
    screenshot(page, "clusters_map_density_selection")
