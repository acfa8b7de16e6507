"""Real browser: rename a discovered proposal, accept it, and see the new category on the Taxonomy page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from db import proposals as props
from db import repo
from db.session import get_sessionmaker, transaction
from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def propose_two_clusters(app_db, leaf: str) -> list[int]:
    """Two open proposals of three products each under `leaf`; returns the six product ids (first cluster first)."""
    with transaction(get_sessionmaker(app_db)) as s:
        node = repo.node_by_path(s, leaf)
        products, _ = repo.products_in_node(s, node_id=node.id, limit=6)
        ids = [p.id for p in products]
        props.replace_open_proposals(
            s,
            parent_node_id=node.id,
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
    assert len(ids) == 6
    return ids


def test_rename_then_accept_a_proposal_and_find_it_on_taxonomy(app_page, app_db, app_tree):
    page = app_page.page
    leaf = max(app_tree.leaves(), key=app_tree.products)  # the biggest leaf of the test's own slice
    ids = propose_two_clusters(app_db, leaf)
    created = f"{leaf} > Canvas Sneakers"

    app_page.open("clusters")
    expect(page.get_by_role("heading", name="Clusters")).to_be_visible()
    name_box = page.get_by_label("Name", exact=True)
    name_box.fill("Canvas Sneakers")
    with app_page.rerun():
        name_box.press("Enter")
    with app_page.rerun():
        page.get_by_role("button", name="Rename").click()
    with app_page.rerun():
        page.get_by_role("button", name="Accept…").click()
    expect(page.get_by_text(f"Create '{created}' with 3 products?")).to_be_visible()
    with app_page.rerun():
        page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Done: Create")).to_be_visible()
    screenshot(page, "clusters_after_accept")
    with get_sessionmaker(app_db)() as s:
        node = repo.node_by_path(s, created)
        assert node is not None, f"no category {created!r} after Confirm"
        assert [repo.product_label(s, i)[0].id for i in ids] == [node.id] * 3 + [repo.node_by_path(s, leaf).id] * 3

    with app_page.rerun():
        page.get_by_role("link", name="Taxonomy").click()
    page.get_by_label("Search categories").fill("Canvas Sneakers")
    with app_page.rerun():
        page.get_by_label("Search categories").press("Enter")
    expect(page.get_by_role("combobox", name="Category")).to_have_value(f"{created} (3)")
    screenshot(page, "taxonomy_after_accept")
