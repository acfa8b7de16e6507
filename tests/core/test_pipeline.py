"""train / predict / evaluate plumbing on a small database, with deterministic stand-in features.

The encoders themselves are tested in test_encoders.py; here `embed_catalogue` is replaced by
class-dependent Gaussian vectors so that the database, split, cascade and storage paths run in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from core.bench.evaluate import evaluate
from core.steps.catalogue import load_catalogue
from core.steps.predict import predict
from core.steps.retrain import retrain
from core.steps.train import train
from db import curation, repo
from db import predictions as preds
from db.models import ModelVersion, Prediction, TaxonomyNode
from db.session import transaction
from tests.core.conftest import LEAVES, fake_embed, quiet


def test_train_registers_an_active_version_and_is_idempotent(small_db, factory):
    version_id = train(small_db, log=quiet)
    with factory() as s:
        version = preds.active_model_version(s)
        assert version.id == version_id and version.metrics["hf1"] > 0.9 and version.metrics["path_validity"] == 1.0
        assert set(version.params["node_ids"]) >= set(LEAVES)
        assert version.metrics["per_node_f1"]["Footwear > Shoes > Heels"]["support"] > 0
    assert train(small_db, log=quiet) is None  # nothing changed
    assert train(small_db, force=True, log=quiet) == version_id + 1
    with factory() as s:
        assert preds.active_model_version(s).id == version_id  # a retrain is a candidate until activated


def test_predict_stores_valid_paths_for_every_product_and_follows_curation(small_db, factory):
    train(small_db, log=quiet)
    assert predict(small_db, log=quiet) == 240
    assert predict(small_db, log=quiet) == 0  # already done
    with factory() as s:
        version = preds.active_model_version(s)
        table = preds.prediction_table(s, model_version_id=version.id)
    assert len(table) == 240 and all(r["predicted"] in LEAVES for r in table)
    assert np.mean([r["agrees"] for r in table]) > 0.9
    with transaction(factory) as s:
        heels, flats = repo.node_by_path(s, LEAVES[2]), repo.node_by_path(s, LEAVES[3])
        curation.rename_node(s, node_id=flats.id, new_name="Ballet Flats", actor="t")
        curation.merge_node(s, source_id=heels.id, target_id=flats.id, actor="t")
    predict(small_db, force=True, log=quiet)
    with factory() as s:
        leaf_paths = s.scalars(
            select(TaxonomyNode.path).join(Prediction, Prediction.node_id == TaxonomyNode.id).where(Prediction.level == 3)
        ).all()
    assert "Footwear > Shoes > Ballet Flats" in leaf_paths and "Footwear > Shoes > Heels" not in leaf_paths


def test_predict_without_a_model_says_what_to_do(small_db):
    with pytest.raises(ValueError, match="run `python -m core train` first"):
        predict(small_db, log=quiet)


class StubEncoder:
    """Stands in for MiniLM / EfficientNet in the end-to-end timing: 24-d vectors like fake_embed's."""

    def __init__(self, name):
        self.name = name
        self.id = {"minilm": "fake-title", "efficientnet-lite0": "fake-image"}[name]

    def embed(self, texts, **_):
        rng = np.random.default_rng(0)
        centroids = {leaf: rng.normal(size=24) for leaf in LEAVES}
        return np.stack([centroids[t.split(" | ")[1]] for t in texts]).astype(np.float32)

    def embed_masked(self, paths, **_):
        vectors = self.embed(["x | " + LEAVES[0]] * len(paths))
        return vectors, np.ones(len(paths), bool)


def test_evaluate_scores_the_production_model_on_the_model_versions_held_out_products(small_db, factory, monkeypatch):
    """`core evaluate`'s cascade row is the ModelBundle that `train` fits, on the same hash split: same products,
    same hF1 as the model version records."""
    monkeypatch.setattr("core.bench.evaluate.get_encoder", StubEncoder)
    version_id = train(small_db, log=quiet)
    with factory() as s:
        cat = load_catalogue(s)
        version = s.get(ModelVersion, version_id)
        recorded_hf1, recorded_test = version.metrics["hf1"], set(version.metrics["test_product_ids"])
    result = evaluate(cat, fake_embed(cat), seed=0, train_options={"epochs": 5})
    rows = {(r["model"], r["population"]): r for r in result["rows"]}
    assert result["split"]["test"] == len(recorded_test) == rows[("two-stage cascade", "all")]["n_test"]
    assert rows[("two-stage cascade", "all")]["hf1"] == pytest.approx(recorded_hf1, abs=1e-9)
    assert result["split"]["rule"] == "hash of (platform, external id)"


def test_a_seeded_retrain_is_repeatable(small_db, factory):
    first = retrain(small_db, log=quiet)
    second = retrain(small_db, log=quiet)
    with factory() as s:
        a, b = (
            sorted(
                (p.product_id, p.level, p.node_id, round(p.confidence, 5))
                for p in s.scalars(select(Prediction).where(Prediction.model_version_id == v))
            )
            for v in (first, second)
        )
        metrics = [s.get(ModelVersion, v).metrics for v in (first, second)]
    assert a == b and len(a) == 240 * 3
    assert metrics[0]["hf1"] == metrics[1]["hf1"] and metrics[0]["per_node_f1"] == metrics[1]["per_node_f1"]
