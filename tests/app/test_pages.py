"""Streamlit AppTest for every page, on a database holding a real catalogue slice."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core import config
from core.ingest import ingest
from db import repo
from db.models import AuditEvent, Product, TaxonomyNode
from db.session import get_sessionmaker, upgrade

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app_env(tmp_path, monkeypatch, slice_file):
    """DATABASE_URL pointing at a fresh SQLite database with 80 real products; returns the URL."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    ingest(slice_file(80), platform="myntra", db_url=url, images_root=config.catalog_dir())
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    return url


def node_id(url: str, path: str) -> int:
    with get_sessionmaker(url)() as s:
        return repo.node_by_path(s, path).id


def first_leaf(url: str) -> dict:
    with get_sessionmaker(url)() as s:
        return next(r for r in repo.taxonomy_rows(s) if r["children"] == 0)


def run_page(name: str) -> AppTest:
    at = AppTest.from_file(ROOT / "pages" / f"{name}.py", default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_main_builds_navigation_and_renders_overview(app_env):
    at = AppTest.from_file(ROOT / "app" / "main.py", default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Overview"
    assert at.sidebar.text_input(key="actor").label.startswith("Your name")


def test_overview_counts_and_tree(app_env):
    at = run_page("overview")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Products"] == "80" and metrics["Labelled"] == "100.0%" and metrics["With photo"] == "80"
    with get_sessionmaker(app_env)() as s:
        rows = repo.taxonomy_rows(s)
    roots = [r for r in rows if r["parent_id"] is None]
    plural = lambda n: f"{n:,} product" + ("" if n == 1 else "s")  # noqa: E731
    assert sorted(e.label for e in at.expander) == sorted(f"{r['name']} · {plural(r['products'])}" for r in roots)
    tree_text = "\n".join(m.value for m in at.markdown)
    for row in (r for r in rows if r["parent_id"] is not None):
        assert f"**{row['name']}** · {row['products']:,}" in tree_text


def test_overview_on_an_empty_database_explains_what_to_do(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    at = run_page("overview")
    assert "catalogue is empty" in at.info[0].value


def test_rename_with_confirmation_then_undo(app_env):
    leaf = first_leaf(app_env)
    at = run_page("taxonomy")
    at.selectbox(key="tax_node").set_value(leaf["id"]).run()
    at.text_input(key=f"rename_name_{leaf['id']}").input("Renamed Leaf").run()
    at.button(key="rename_btn").click().run()
    assert "Rename" in at.warning[0].value and node_id(app_env, leaf["path"]) == leaf["id"]  # not yet renamed
    at.button(key="confirm_action").click().run()
    assert not at.exception, at.exception
    new_path = leaf["path"].rsplit(" > ", 1)[0] + " > Renamed Leaf"
    assert node_id(app_env, new_path) == leaf["id"]
    assert "Done" in at.success[0].value
    with get_sessionmaker(app_env)() as s:
        event = s.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()))
    assert event.action == "rename_node"
    at.button(key=f"undo_{event.id}").click().run()
    assert node_id(app_env, leaf["path"]) == leaf["id"]
    assert "Undid" in at.success[0].value


def test_cancel_leaves_everything_as_it_was(app_env):
    leaf = first_leaf(app_env)
    at = run_page("taxonomy")
    at.selectbox(key="tax_node").set_value(leaf["id"]).run()
    at.text_input(key="add_name").input("New child").run()
    at.button(key="add_btn").click().run()
    at.button(key="cancel_action").click().run()
    assert not at.warning
    with get_sessionmaker(app_env)() as s:
        assert repo.node_by_path(s, leaf["path"] + " > New child") is None


def test_refused_action_shows_the_reason_and_changes_nothing(app_env):
    leaf = first_leaf(app_env)
    at = run_page("taxonomy")
    at.selectbox(key="tax_node").set_value(leaf["id"]).run()
    at.button(key="retire_btn").click().run()  # no target while it holds products
    at.button(key="confirm_action").click().run()
    assert "choose where they go" in at.error[0].value
    with get_sessionmaker(app_env)() as s:
        assert s.get(TaxonomyNode, leaf["id"]).status == "active"


def test_merge_moves_the_products(app_env):
    with get_sessionmaker(app_env)() as s:
        leaves = [r for r in repo.taxonomy_rows(s) if r["children"] == 0][:2]
    at = run_page("taxonomy")
    at.selectbox(key="tax_node").set_value(leaves[0]["id"]).run()
    at.selectbox(key="merge_target").set_value(leaves[1]["id"]).run()
    at.button(key="merge_btn").click().run()
    at.button(key="confirm_action").click().run()
    with get_sessionmaker(app_env)() as s:
        counts = repo.node_counts(s)
    assert counts[leaves[1]["id"]][0] == leaves[0]["products"] + leaves[1]["products"]
    assert counts[leaves[0]["id"]] == (0, 0)


def test_product_grid_shows_the_node_products(app_env):
    leaf = first_leaf(app_env)
    at = run_page("taxonomy")
    at.selectbox(key="tax_node").set_value(leaf["id"]).run()
    captions = [c.value for c in at.caption]
    assert sum(leaf["path"] in c for c in captions) == min(leaf["products"], 18)


@pytest.fixture
def with_predictions(app_env):
    """An active model predicting every product's label, except one product sent to another leaf."""
    from db import predictions as preds
    from db.session import transaction

    factory = get_sessionmaker(app_env)
    with transaction(factory) as s:
        rows, leaves = repo.taxonomy_rows(s), {}
        by_path = {r["path"]: r["id"] for r in rows}
        leaves = [r["path"] for r in rows if r["children"] == 0]
        version = preds.register_model_version(s, name="late-fusion", metrics={"hf1": 0.991}, params={}, artifact=None)
        preds.activate_model_version(s, version_id=version.id, actor="test")
        eff = repo.effective_labels_subquery()
        labelled = s.execute(
            select(eff.c.product_id, TaxonomyNode.path).join(TaxonomyNode, TaxonomyNode.id == eff.c.node_id)
        ).all()
        out, wrong = [], labelled[0]
        for pid, path in labelled:
            target = next(p for p in leaves if p != path) if pid == wrong.product_id else path
            parts = target.split(" > ")
            for level in range(1, len(parts) + 1):
                conf = 0.4 if pid == wrong.product_id else 0.97
                out.append(
                    {
                        "product_id": pid,
                        "level": level,
                        "node_id": by_path[" > ".join(parts[:level])],
                        "confidence": conf,
                        "stage": 2 if pid == wrong.product_id else 1,
                    }
                )
        preds.replace_predictions(s, model_version_id=version.id, rows=out)
        s.get(Product, wrong.product_id).image_status = "none"  # one card without a photo
    return wrong


def test_predictions_page_without_a_model_explains_what_to_do(app_env):
    at = run_page("predictions")
    assert "No predictions yet" in at.info[0].value


def test_predictions_page_filters_and_exports(with_predictions):
    at = run_page("predictions")
    assert "late-fusion" in at.caption[0].value
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Products"] == "80" and metrics["Agree with label"] == "98.8%"
    at.selectbox(key="pred_agree").set_value("disagrees with label").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Products"] == "1" and metrics["Sent to stage 2"] == "100.0%"
    assert any("disagrees" in c.value for c in at.caption)
    at.selectbox(key="pred_agree").set_value("all").run()
    at.slider(key="pred_range").set_value((0.5, 1.0)).run()
    assert {m.label: m.value for m in at.metric}["Products"] == "79"


@pytest.fixture
def with_proposals(app_env):
    """Two open proposals under the first category that has at least four products."""
    from db import proposals as props
    from db.session import transaction

    factory = get_sessionmaker(app_env)
    with transaction(factory) as s:
        node = next(r for r in repo.taxonomy_rows(s) if r["products"] >= 4 and r["children"] == 0)
        products, _ = repo.products_in_node(s, node_id=node["id"], limit=4)
        ids = [p.id for p in products]
        props.replace_open_proposals(
            s,
            parent_node_id=node["id"],
            run_key="t",
            clusters=[
                {
                    "name": "alpha",
                    "members": ids[:2],
                    "coords": [[0, 0], [0, 1]],
                    "suggested_names": ["alpha", "beta"],
                    "scores": {"size": 2, "coherence": 0.8, "top_terms": ["alpha"]},
                },
                {
                    "name": "gamma",
                    "members": ids[2:],
                    "coords": [[5, 5], [5, 6]],
                    "suggested_names": ["gamma"],
                    "scores": {"size": 2, "coherence": 0.7, "top_terms": ["gamma"]},
                },
            ],
        )
        pids = [p.id for p in props.list_proposals(s, parent_node_id=node["id"])]
    return node, ids, pids


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
    from db.models import Proposal

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
    found = [c.value for c in at.caption[before:] if "#" in c.value]
    assert found and sum(node["path"] in c for c in found) >= min(node["products"], 12) // 2
    at.text_input(key="clu_query").input("").run()
    at.selectbox(key="clu_anchor").set_value(ids[0]).run()
    with get_sessionmaker(app_env)() as s:
        anchor = s.get(Product, ids[0]).external_id
    grid = [c.value for c in at.caption[before:] if "#" in c.value][-min(12, node["products"] - 1) :]
    assert len(grid) == min(12, node["products"] - 1)  # the node's other products, nearest first
    assert all(f"#{anchor} " not in c for c in grid)  # never the product itself


@pytest.fixture
def no_spawn(monkeypatch):
    """Jobs are queued but their process is not started (the job runner is tested in tests/core/test_jobs.py)."""
    launched = []
    monkeypatch.setattr("core.jobs.launch", lambda url, job_id: launched.append(job_id))
    return launched


@pytest.fixture
def with_review(app_env):
    """Three products in the review queue, each suggested another leaf; scores 0.9, 0.8, 0.7."""
    from db import review
    from db.session import transaction

    with transaction(get_sessionmaker(app_env)) as s:
        rows = repo.taxonomy_rows(s)
        leaves = [r for r in rows if r["children"] == 0 and r["products"]]
        products = []
        for leaf in leaves[:3]:
            products += [(p.id, leaf) for p in repo.products_in_node(s, node_id=leaf["id"], limit=1)[0]]
        items = []
        for k, (pid, leaf) in enumerate(products):
            other = next(r for r in leaves if r["id"] != leaf["id"])
            items.append(
                {
                    "product_id": pid,
                    "score": 0.9 - 0.1 * k,
                    "self_confidence": 0.1 + 0.1 * k,
                    "margin": -0.4,
                    "flagged": k == 0,
                    "label_node_id": leaf["id"],
                    "suggested_node_id": other["id"],
                    "suggested_confidence": 0.8,
                    "levels": [{"level": 1, "self_confidence": 0.5, "margin": 0.1, "flag": False}],
                }
            )
        review.replace_open_items(s, run_key="t", rows=items)
    return [(pid, leaf["path"], next(r for r in leaves if r["id"] != leaf["id"])["path"]) for pid, leaf in products]


def label_path(url, product_id):
    with get_sessionmaker(url)() as s:
        node, source = repo.product_label(s, product_id)
        return node.path, source


def test_review_page_without_a_queue_starts_scoring_in_the_background(app_env, no_spawn):
    from db.models import Job

    at = run_page("review")
    assert "No review queue yet" in at.info[0].value
    at.button(key="review_rescore").click().run()
    assert not at.exception, at.exception
    with get_sessionmaker(app_env)() as s:
        job = s.scalars(select(Job)).one()
    assert job.kind == "review" and job.status == "queued" and no_spawn == [job.id]
    at.button(key="review_rescore").click().run()  # a second start is refused, with the reason
    assert any("already running" in e.value for e in at.error)


def test_review_page_accept_keep_choose_skip_and_undo(app_env, with_review):
    (p1, l1, s1), (p2, l2, _), (p3, l3, _) = with_review
    key = lambda action, pid: f"review_{action}_{item_id(app_env, pid)}"  # noqa: E731
    at = run_page("review")
    assert {m.label: m.value for m in at.metric}["To review"] == "3"
    assert at.subheader[0].value == repo_title(app_env, p1)  # the highest score first
    at.button(key=key("accept", p1)).click().run()
    assert label_path(app_env, p1) == (s1, "human")
    assert at.subheader[0].value == repo_title(app_env, p2) and "labelled" in at.success[0].value
    at.button(key=key("skip", p2)).click().run()
    assert at.subheader[0].value == repo_title(app_env, p3)
    target = first_leaf(app_env)
    at.selectbox(key=f"review_choice_{item_id(app_env, p3)}").set_value(target["id"]).run()
    at.button(key=key("choose", p3)).click().run()
    assert label_path(app_env, p3) == (target["path"], "human")
    assert at.subheader[0].value == repo_title(app_env, p2)  # only the skipped one is left
    at.button(key=key("skip", p2)).click().run()  # skipping the last one starts the round again
    assert at.subheader[0].value == repo_title(app_env, p2)
    at.button(key=key("keep", p2)).click().run()
    assert label_path(app_env, p2) == (l2, "human")
    assert "Nothing left to review" in at.success[-1].value
    undo = next(b for b in at.button if b.key and b.key.startswith("undo_"))
    undo.click().run()
    assert label_path(app_env, p2) == (l2, "platform")  # back to the platform's label, and open again
    assert {m.label: m.value for m in at.metric}["To review"] == "1"


def test_review_page_filters_by_score(app_env, with_review):
    at = run_page("review")
    at.slider(key="review_min").set_value(0.75).run()
    assert "2 shown" in at.subheader[-2].value


def repo_title(url, product_id):
    with get_sessionmaker(url)() as s:
        return s.get(Product, product_id).title


def item_id(url, product_id):
    from db.models import ReviewItem

    with get_sessionmaker(url)() as s:
        return s.scalar(select(ReviewItem.id).where(ReviewItem.product_id == product_id))


@pytest.fixture
def two_versions(app_env, with_predictions):
    """Version #1 (archived) predicts one leaf wrong for every product of the first leaf; #2 (active) is right."""
    from db import predictions as preds
    from db.models import ModelVersion, Prediction
    from db.session import transaction

    with transaction(get_sessionmaker(app_env)) as s:
        first = preds.active_model_version(s)
        ids = sorted({r.product_id for r in s.scalars(select(Prediction))})
        node_ids = {r["path"]: r["id"] for r in repo.taxonomy_rows(s)}
        first.metrics = {"hf1": 0.98, "level_accuracy": [1.0, 0.99, 0.98], "test_product_ids": ids}
        first.params = {"split": "hash", "node_ids": node_ids, "n_test": len(ids)}
        second = preds.register_model_version(
            s,
            name="retrained",
            metrics={"hf1": 0.999, "level_accuracy": [1, 1, 1], "test_product_ids": ids},
            params={"split": "hash", "node_ids": node_ids, "n_test": len(ids)},
            artifact=None,
        )
        eff = repo.effective_labels_subquery()
        rows = []
        for pid, node_id in s.execute(select(eff.c.product_id, eff.c.node_id)):
            path = s.get(TaxonomyNode, node_id).path.split(" > ")
            for level in range(1, len(path) + 1):
                rows.append(
                    {
                        "product_id": pid,
                        "level": level,
                        "node_id": node_ids[" > ".join(path[:level])],
                        "confidence": 0.99,
                        "stage": 1,
                    }
                )
        preds.replace_predictions(s, model_version_id=second.id, rows=rows)
        preds.activate_model_version(s, version_id=second.id, actor="retrain")
        assert s.get(ModelVersion, first.id).status == "archived"
    return first.id, second.id


def test_models_page_compares_versions_and_rolls_back(app_env, two_versions, no_spawn):
    from db import predictions as preds

    first, second = two_versions
    at = run_page("models")
    assert not at.exception, at.exception
    versions = at.dataframe[0].value
    assert list(versions["version"]) == [f"#{second}", f"#{first}"] and list(versions["status"]) == ["active", "archived"]
    levels = at.dataframe[1].value
    assert levels[f"accuracy #{second}"].tolist()[-1] == 1.0 and levels[f"accuracy #{first}"].tolist()[-1] < 1.0
    nodes = at.dataframe[2].value
    assert len(nodes) >= 1 and (nodes["change"] > 0).any()  # the leaf #1 got wrong improved
    at.selectbox(key=f"activate_pick_{second}_{second}").set_value(first).run()
    at.button(key="activate_btn").click().run()
    at.button(key="confirm_action").click().run()
    assert not at.exception, at.exception
    with get_sessionmaker(app_env)() as s:
        assert preds.active_model_version(s).id == first


def test_models_page_retrain_button_queues_one_job(app_env, two_versions, no_spawn):
    from db.models import Job

    at = run_page("models")
    at.button(key="retrain_btn").click().run()
    assert not at.exception, at.exception
    with get_sessionmaker(app_env)() as s:
        job = s.scalars(select(Job)).one()
    assert job.kind == "retrain" and no_spawn == [job.id]
    at.run()
    assert at.button(key="retrain_btn").disabled  # one retrain at a time


@pytest.fixture
def with_maps(app_env, with_proposals):
    """Maps on disk: the proposals' node (its products) and the whole catalogue (two clusters)."""
    import numpy as np

    from core.maps import save_map, slug_for

    node, ids, pids = with_proposals
    with get_sessionmaker(app_env)() as s:
        every = s.scalars(select(Product.id).order_by(Product.id)).all()
        in_node, _ = repo.products_in_node(s, node_id=node["id"], limit=1000)
    node_ids = np.array([p.id for p in in_node])
    save_map(
        slug_for(node["id"]),
        product_ids=node_ids,
        xy=np.random.default_rng(0).normal(size=(len(node_ids), 2)),
        clusters=np.zeros(len(node_ids)),
        meta={"timings": {"view": 1.0}, "unassigned": 0.184, "unclear_groups": 6},
    )
    every = np.array(every)
    save_map(
        "all",
        product_ids=every,
        xy=np.random.default_rng(1).normal(size=(len(every), 2)),
        clusters=np.where(np.arange(len(every)) % 3 == 0, -1, np.arange(len(every)) % 2),
        meta={"timings": {"cluster": 2.0}},
    )
    return node, ids, pids, len(every)


def chart_traces(at) -> list[dict]:
    import json

    return json.loads(at.get("plotly_chart")[0].proto.spec)["data"]


def test_clusters_page_all_products_view_coloured_three_ways(app_env, with_maps, with_predictions):
    node, ids, pids, n = with_maps
    at = run_page("clusters")
    at.selectbox(key="clu_view").set_value("all").run()
    traces = chart_traces(at)
    assert sum(len(t["x"]) for t in traces) == n
    assert sorted(t["name"].split(" (")[0] for t in traces) == ["cluster 0", "cluster 1", "unassigned"]
    at.radio(key="clu_colour_all").set_value("label").run()
    with get_sessionmaker(app_env)() as s:
        level2 = {" > ".join(r["path"].split(" > ")[:2]) for r in repo.taxonomy_rows(s) if r["depth"] >= 2 and r["products"]}
    names = {t["name"].split(" (")[0] for t in chart_traces(at)}
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
