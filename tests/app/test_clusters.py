"""The Clusters page: proposals on the map, accept / rename / merge / reject, the search, the map's colourings."""

from __future__ import annotations

import html
import io

import numpy as np
from PIL import Image

from app.scatter import LEGEND_WIDTH
from db import repo
from db.models import Product, Proposal
from db.session import get_sessionmaker
from tests.app.helpers import chart_traces, run_page
from tests.app.shown import shown


def test_clusters_page_without_proposals_explains_what_to_do(app_env):
    assert "No proposals yet" in run_page("clusters").info[0].value


def test_clusters_page_accept_with_a_new_name(app_env, with_proposals):
    node, ids, pids = with_proposals
    at = run_page("clusters")
    assert "2 open of 2 proposals" in at.caption[0].value
    at.selectbox(key="clu_proposal").set_value(pids[0]).run()
    at.text_input(key=f"clu_name_{pids[0]}").input("Alpha Line").run()
    at.button(key="clu_accept").click().run()
    at.button(key="confirm_action").click().run()
    assert not at.exception, at.exception
    with get_sessionmaker(app_env)() as s:
        created = repo.node_by_path(s, node["path"] + " > Alpha Line")
        assert created is not None and [repo.product_label(s, i)[0].id for i in ids[:2]] == [created.id] * 2
    assert "1 open of 2 proposals" in at.caption[0].value


def test_clusters_page_reject_and_merge(app_env, with_proposals):
    _, _, pids = with_proposals
    at = run_page("clusters")
    at.selectbox(key="clu_proposal").set_value(pids[0]).run()
    at.selectbox(key="clu_merge_target").set_value(pids[1]).run()
    at.button(key="clu_merge").click().run()
    at.button(key="clu_reject").click().run()
    with get_sessionmaker(app_env)() as s:
        assert [s.get(Proposal, i).status for i in pids] == ["merged", "rejected"]
    assert "Every proposal here has been decided" in at.success[0].value


def test_clusters_page_text_search_and_neighbours(app_env, with_proposals):
    node, ids, _ = with_proposals
    at = run_page("clusters")
    before = len(at.caption)
    at.text_input(key="clu_query").input(node["name"]).run()
    assert not at.exception, at.exception
    found = [shown(c.value) for c in at.caption[before:] if "#" in c.value]
    assert found and sum(node["path"] in c for c in found) >= min(node["products"], 12) // 2
    at.text_input(key="clu_query").input("").run()
    at.selectbox(key="clu_anchor").set_value(ids[0]).run()
    with get_sessionmaker(app_env)() as s:
        anchor = s.get(Product, ids[0]).external_id
    grid = [shown(c.value) for c in at.caption[before:] if "#" in c.value][-min(12, node["products"] - 1) :]
    assert len(grid) == min(12, node["products"] - 1)  # the node's other products, nearest first
    assert all(f"#{anchor} " not in c for c in grid)  # never the product itself


def test_clusters_page_all_products_view_coloured_three_ways(app_env, tree, with_maps, with_predictions):
    node, ids, pids, n = with_maps
    at = run_page("clusters")
    at.selectbox(key="clu_view").set_value("all").run()
    traces = chart_traces(at)
    assert sum(len(t["x"]) for t in traces) == n
    assert sorted(t["name"].split(" (")[0] for t in traces) == ["cluster 0", "cluster 1", "unassigned"]
    at.radio(key="clu_colour_all").set_value("label").run()
    level2 = set(tree.paths(2))  # every category of the slice holds products
    names = {html.unescape(t["name"]).split(" (")[0] for t in chart_traces(at)}  # Plotly labels: ">" as "&gt;"
    assert names <= level2 | {"other"} and len(names) == min(len(level2), 24)
    at.radio(key="clu_colour_all").set_value("prediction").run()
    assert not at.exception, at.exception
    assert sum(len(t["x"]) for t in chart_traces(at)) == n
    assert "Select products on the map" in at.subheader[0].value


def test_clusters_page_node_view_shows_every_product_of_the_node(app_env, with_maps):
    node, ids, pids, _ = with_maps
    at = run_page("clusters")
    assert at.selectbox(key="clu_view").value == f"node-{node['id']}"
    traces = chart_traces(at)
    assert sum(len(t["x"]) for t in traces) == node["products"]  # members of proposals and the rest
    names = {t["name"].split(" (")[0] for t in traces}
    assert {f"#{pids[0]} alpha", f"#{pids[1]} gamma"} <= names
    assert ("unassigned" in names) == (node["products"] > len(ids))
    assert any("18% unassigned (6 unclear groups among them)" in c.value for c in at.caption)


def test_clusters_page_shows_its_map_as_a_picture_first_and_the_interactive_map_on_request(app_env, with_maps, media_stores):
    node, _, pids, _ = with_maps
    at = run_page("clusters")
    assert not at.get("plotly_chart")  # no plotly.js for the browser to load on a first view
    pictures = len(at.get("image"))
    url = at.get("image")[0].value[0]  # the map: the first picture on the page (the product cards come after it)
    served = media_stores[-1].get_file(url.rsplit("/", 1)[-1].split(".")[0])
    assert served.mimetype == "image/png"
    picture = np.asarray(Image.open(io.BytesIO(served.content)).convert("RGB"))
    assert picture.shape[:2] == (560, 1200)
    drawn = (picture != 255).any(axis=2)
    assert drawn[:, : 1200 - LEGEND_WIDTH].sum() >= 3 * node["products"]  # a dot of several pixels a product
    assert drawn[:, 1200 - LEGEND_WIDTH :].sum() > 1000  # the legend
    assert any("turn on Select on the map" in c.value for c in at.caption)
    traces = chart_traces(at)  # turns "Select on the map" on
    assert at.toggle(key="clu_select_map").value
    assert len(at.get("image")) == pictures - 1  # the chart instead of the picture; the product cards as before
    assert sum(len(t["x"]) for t in traces) == node["products"]
    assert {f"#{pids[0]} alpha", f"#{pids[1]} gamma"} <= {t["name"].split(" (")[0] for t in traces}
    assert any("lasso or box to select" in c.value for c in at.caption)
