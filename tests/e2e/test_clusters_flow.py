"""Real browser: rename a discovered proposal, accept it, and see the new category on the Taxonomy page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from db import proposals as props
from db import repo
from db.session import get_sessionmaker, transaction
from tests.e2e.conftest import screenshot
from tests.e2e.test_taxonomy_flow import busy_done

pytestmark = pytest.mark.e2e


def test_rename_then_accept_a_proposal(page, app_url, app_db):
    factory = get_sessionmaker(app_db)
    with transaction(factory) as s:
        node = max((r for r in repo.taxonomy_rows(s) if r["children"] == 0), key=lambda r: r["products"])
        products, _ = repo.products_in_node(s, node_id=node["id"], limit=6)
        ids = [p.id for p in products]
        props.replace_open_proposals(
            s,
            parent_node_id=node["id"],
            run_key="e2e",
            clusters=[
                {
                    "name": "canvas lace",
                    "members": ids[:3],
                    "coords": [[0, 0], [0.2, 0.1], [0.1, 0.3]],
                    "suggested_names": ["canvas lace"],
                    "scores": {"size": 3, "coherence": 0.9, "top_terms": ["canvas"]},
                },
                {
                    "name": "leather",
                    "members": ids[3:],
                    "coords": [[3, 3], [3.1, 3.2], [2.9, 3.1]],
                    "suggested_names": ["leather"],
                    "scores": {"size": 3, "coherence": 0.8, "top_terms": ["leather"]},
                },
            ],
        )
    page.goto(f"{app_url}/clusters")
    expect(page.get_by_role("heading", name="Clusters")).to_be_visible()
    busy_done(page)
    name_box = page.get_by_label("Name", exact=True)
    name_box.fill("Canvas Sneakers")
    name_box.press("Enter")
    busy_done(page)
    page.get_by_role("button", name="Rename").click()
    busy_done(page)
    page.get_by_role("button", name="Accept…").click()
    expect(page.get_by_text(f"Create '{node['path']} > Canvas Sneakers' with 3 products?")).to_be_visible()
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Done: Create")).to_be_visible()
    busy_done(page)
    screenshot(page, "clusters_after_accept")
    page.get_by_role("link", name="Taxonomy").click()
    busy_done(page)
    page.get_by_label("Search categories").fill("Canvas Sneakers")
    page.get_by_label("Search categories").press("Enter")
    busy_done(page)
    expect(page.get_by_role("combobox", name="Category")).to_have_value(f"{node['path']} > Canvas Sneakers (3)")
    screenshot(page, "taxonomy_after_accept")
    with factory() as s:
        created = repo.node_by_path(s, f"{node['path']} > Canvas Sneakers")
        assert created is not None and [repo.product_label(s, i)[0].id for i in ids[:3]] == [created.id] * 3
