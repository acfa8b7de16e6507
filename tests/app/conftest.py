"""Fixtures of the page tests: a database holding a real catalogue slice, and predictions, proposals, a review
queue, model versions and maps on top of it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from core import config
from core.steps.ingest import ingest
from core.steps.maps import save_map, slug_for
from db import predictions as preds
from db import proposals as props
from db import repo, review
from db.models import ModelVersion, Prediction, Product, TaxonomyNode
from db.session import get_sessionmaker, transaction, upgrade
from tests.app.helpers import (
    RIGHT_CONFIDENCE,
    WRONG_CONFIDENCE,
    CatalogueTree,
    Misplaced,
    add_people,
    external_ids,
    node_id,
    node_ids,
    slice_paths,
)


@pytest.fixture
def app_slice(slice_file):
    """The 80 real products the page tests ingest (a Parquet file)."""
    return slice_file(80)


@pytest.fixture
def app_env(tmp_path, monkeypatch, app_slice):
    """DATABASE_URL pointing at a fresh SQLite database with the 80 products of `app_slice`, and one user of each role
    (`PEOPLE`: the pages run signed in as the admin, see `run_page`); returns the URL."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    ingest(app_slice, platform="myntra", db_url=url, images_root=config.catalog_dir())
    add_people(url)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    return url


@pytest.fixture
def tree(app_slice) -> CatalogueTree:
    """The taxonomy the 80 products make, computed from the file (not from what the pages read)."""
    return CatalogueTree.of(pd.read_parquet(app_slice))


@pytest.fixture
def with_predictions(app_env, app_slice, tree) -> Misplaced:
    """An active model predicting every product's label (read from the slice file) at 0.97 per level, except the
    first product, sent to the first other leaf at 0.4 per level (stage 2) and shown without a photo."""
    by_path, leaves = node_ids(app_env), tree.leaves()
    paths, ext = slice_paths(pd.read_parquet(app_slice)), external_ids(app_env)
    first = min(ext)
    wrong = Misplaced(first, ext[first], paths[ext[first]], next(p for p in leaves if p != paths[ext[first]]))
    with transaction(get_sessionmaker(app_env)) as s:
        version = preds.register_model_version(s, name="late-fusion", metrics={"hf1": 0.991}, params={}, artifact=None)
        preds.activate_model_version(s, version_id=version.id, actor="test")
        out = []
        for pid, external in ext.items():
            parts = (wrong.predicted if pid == wrong.product_id else paths[external]).split(" > ")
            for level in range(1, len(parts) + 1):
                out.append(
                    {
                        "product_id": pid,
                        "level": level,
                        "node_id": by_path[" > ".join(parts[:level])],
                        "confidence": WRONG_CONFIDENCE if pid == wrong.product_id else RIGHT_CONFIDENCE,
                        "stage": 2 if pid == wrong.product_id else 1,
                    }
                )
        preds.replace_predictions(s, model_version_id=version.id, rows=out)
        s.get(Product, wrong.product_id).image_status = "none"  # one card without a photo
    return wrong


@pytest.fixture
def media_stores(monkeypatch) -> list:
    """The in-memory media stores AppTest makes, one per run (what a download button's URL serves comes from it);
    each knows its run's media file manager as `.manager` (what builds a deferred download when it is clicked)."""
    import streamlit.testing.v1.app_test as app_test

    made = []

    class Recorded(app_test.MemoryMediaFileStorage):
        def __init__(self, endpoint: str) -> None:
            super().__init__(endpoint)
            made.append(self)

    class Manager(app_test.MediaFileManager):
        def __init__(self, storage) -> None:
            super().__init__(storage)
            storage.manager = self

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Recorded)
    monkeypatch.setattr(app_test, "MediaFileManager", Manager)
    return made


def leaf_node(url: str, tree: CatalogueTree, path: str) -> dict:
    """A leaf as the tests use it: id (from the database), path, name and product count (from the file)."""
    return {"id": node_id(url, path), "path": path, "name": path.rsplit(" > ", 1)[-1], "products": tree.products(path)}


@pytest.fixture
def with_proposals(app_env, tree):
    """Two open proposals under the first category that has at least four products."""
    node = leaf_node(app_env, tree, next(p for p in tree.leaves() if tree.products(p) >= 4))
    with transaction(get_sessionmaker(app_env)) as s:
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


@pytest.fixture
def no_spawn(monkeypatch):
    """Jobs are queued but their process is not started (the job runner is tested in tests/core/test_jobs.py)."""
    launched = []
    monkeypatch.setattr("core.jobs.launch", lambda url, job_id: launched.append(job_id))
    return launched


@pytest.fixture
def with_review(app_env, tree):
    """Three products in the review queue, each suggested another leaf; scores 0.9, 0.8, 0.7."""
    leaves = [leaf_node(app_env, tree, p) for p in tree.leaves()]
    with transaction(get_sessionmaker(app_env)) as s:
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


def _predict_labels(s, model_version_id: int, node_ids_by_path: dict[str, int]) -> None:
    """Store predictions equal to every product's current label (confidence 0.99, stage 1)."""
    eff = repo.effective_labels_subquery()
    rows = []
    for pid, label_node in s.execute(select(eff.c.product_id, eff.c.node_id)):
        path = s.get(TaxonomyNode, label_node).path.split(" > ")
        for level in range(1, len(path) + 1):
            rows.append(
                {
                    "product_id": pid,
                    "level": level,
                    "node_id": node_ids_by_path[" > ".join(path[:level])],
                    "confidence": 0.99,
                    "stage": 1,
                }
            )
    preds.replace_predictions(s, model_version_id=model_version_id, rows=rows)


@pytest.fixture
def two_versions(app_env, with_predictions):
    """Version #1 (archived) is `with_predictions` (one product sent to another leaf); #2 (active) predicts every label."""
    by_path = node_ids(app_env)
    with transaction(get_sessionmaker(app_env)) as s:
        first = preds.active_model_version(s)
        ids = sorted({r.product_id for r in s.scalars(select(Prediction))})
        first.metrics = {"hf1": 0.98, "level_accuracy": [1.0, 0.99, 0.98], "test_product_ids": ids}
        first.params = {"split": "hash", "node_ids": by_path, "n_test": len(ids)}
        second = preds.register_model_version(
            s,
            name="retrained",
            metrics={"hf1": 0.999, "level_accuracy": [1, 1, 1], "test_product_ids": ids},
            params={"split": "hash", "node_ids": by_path, "n_test": len(ids)},
            artifact=None,
        )
        _predict_labels(s, second.id, by_path)
        preds.activate_model_version(s, version_id=second.id, actor="retrain")
        assert s.get(ModelVersion, first.id).status == "archived"
    return first.id, second.id


@pytest.fixture
def with_maps(app_env, with_proposals):
    """Maps on disk: the proposals' node (its products) and the whole catalogue (two clusters)."""
    node, ids, pids = with_proposals
    with get_sessionmaker(app_env)() as s:
        every = s.scalars(select(Product.id).order_by(Product.id)).all()
        in_node, _ = repo.products_in_node(s, node_id=node["id"], limit=1000)
    in_node_ids = np.array([p.id for p in in_node])
    save_map(
        slug_for(node["id"]),
        product_ids=in_node_ids,
        xy=np.random.default_rng(0).normal(size=(len(in_node_ids), 2)),
        clusters=np.zeros(len(in_node_ids)),
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
