"""app/cache.py: every cached value follows the versions of the data it is made from (outside a page run)."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select

from app import cache
from core import config
from core.steps.ingest import ingest
from db import actions
from db import proposals as props
from db.models import Product
from db.session import get_sessionmaker, transaction
from db.users import operator
from tests.app.helpers import LEVELS, node_id

NEW_TITLE = "Zebra Striped Velvet Test Slipper"


def perform(url: str, name: str, **kwargs) -> None:
    with transaction(get_sessionmaker(url)) as s:
        actions.perform(s, name, user=operator("tester"), **kwargs)


def ingest_one_more(url: str, slice_path, node_path: str, tmp_path) -> int:
    """Ingest the slice again with one new product in `node_path` titled NEW_TITLE; returns its id."""
    frame = pd.read_parquet(slice_path)
    in_node = frame[[" > ".join(cells) == node_path for cells in zip(*(frame[c] for c in LEVELS))]]
    extra = in_node.iloc[[0]].assign(id=int(frame["id"].max()) + 1, title=NEW_TITLE)
    path = tmp_path / "more.parquet"
    pd.concat([frame, extra]).to_parquet(path)
    ingest(path, platform="myntra", db_url=url, images_root=config.catalog_dir())
    with get_sessionmaker(url)() as s:
        return s.scalar(select(Product.id).where(Product.title == NEW_TITLE))


def test_node_search_follows_relabels_and_ingests_not_proposal_decisions(app_env, app_slice, tree, with_proposals, tmp_path):
    node, ids, pids = with_proposals
    index = cache.node_search(node["path"])
    assert len(index.product_ids) == node["products"] and cache.node_search(node["path"]) is index

    labels, data = cache.labels_version(), cache.data_version()
    perform(app_env, "reject_proposal", proposal_id=pids[0])  # audited, but no product changes category
    assert cache.data_version() != data and cache.labels_version() == labels
    assert cache.node_search(node["path"]) is index

    moved, elsewhere = ids[0], next(p for p in tree.leaves() if p != node["path"])
    with get_sessionmaker(app_env)() as s:
        moved_title = s.get(Product, moved).title
    perform(app_env, "relabel_product", product_id=moved, node_id=node_id(app_env, elsewhere))
    assert cache.labels_version() != labels
    relabelled = cache.node_search(node["path"])
    assert moved in index.product_ids and moved not in relabelled.product_ids
    assert len(relabelled.product_ids) == node["products"] - 1
    assert moved not in relabelled.search(moved_title) and moved not in relabelled.neighbours(ids[1])

    labels = cache.labels_version()
    added = ingest_one_more(app_env, app_slice, node["path"], tmp_path)
    assert cache.labels_version() != labels
    ingested = cache.node_search(node["path"])
    assert added in ingested.product_ids and added not in relabelled.product_ids
    assert ingested.search(NEW_TITLE)[0] == added


def test_proposal_parents_follow_a_discovery_run_which_writes_no_audit_event(app_env, tree):
    leaf = tree.leaves()[0]
    assert cache.proposal_parents() == {}
    data = cache.data_version()
    with transaction(get_sessionmaker(app_env)) as s:  # what `core discover` stores
        props.replace_open_proposals(
            s, parent_node_id=node_id(app_env, leaf), run_key="t", clusters=[{"name": "a", "members": []}]
        )
    assert cache.data_version() == data
    assert cache.proposal_parents() == {node_id(app_env, leaf): leaf}
