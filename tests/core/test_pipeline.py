"""train / predict / evaluate plumbing on a small database, with deterministic stand-in features.

The encoders themselves are tested in test_encoders.py; here `embed_catalogue` is replaced by
class-dependent Gaussian vectors so that the database, split, cascade and storage paths run in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from core import classify, pipeline
from core.dataset import load_catalogue
from db import curation, repo
from db import predictions as preds
from db.models import ModelVersion, Prediction, TaxonomyNode
from db.session import transaction
from tests.core.conftest import LEAVES, fake_embed, quiet


def test_train_registers_an_active_version_and_is_idempotent(small_db, factory):
    version_id = pipeline.train(small_db, log=quiet)
    with factory() as s:
        version = preds.active_model_version(s)
        assert version.id == version_id and version.metrics["hf1"] > 0.9 and version.metrics["path_validity"] == 1.0
        assert set(version.params["node_ids"]) >= set(LEAVES)
        assert version.metrics["per_node_f1"]["Footwear > Shoes > Heels"]["support"] > 0
    assert pipeline.train(small_db, log=quiet) is None  # nothing changed
    assert pipeline.train(small_db, force=True, log=quiet) == version_id + 1
    with factory() as s:
        assert preds.active_model_version(s).id == version_id  # a retrain is a candidate until activated


def test_predict_stores_valid_paths_for_every_product_and_follows_curation(small_db, factory):
    pipeline.train(small_db, log=quiet)
    assert pipeline.predict(small_db, log=quiet) == 240
    assert pipeline.predict(small_db, log=quiet) == 0  # already done
    with factory() as s:
        version = preds.active_model_version(s)
        table = preds.prediction_table(s, model_version_id=version.id)
    assert len(table) == 240 and all(r["predicted"] in LEAVES for r in table)
    assert np.mean([r["agrees"] for r in table]) > 0.9
    with transaction(factory) as s:
        heels, flats = repo.node_by_path(s, LEAVES[2]), repo.node_by_path(s, LEAVES[3])
        curation.rename_node(s, node_id=flats.id, new_name="Ballet Flats", actor="t")
        curation.merge_node(s, source_id=heels.id, target_id=flats.id, actor="t")
    pipeline.predict(small_db, force=True, log=quiet)
    with factory() as s:
        leaf_paths = s.scalars(
            select(TaxonomyNode.path).join(Prediction, Prediction.node_id == TaxonomyNode.id).where(Prediction.level == 3)
        ).all()
    assert "Footwear > Shoes > Ballet Flats" in leaf_paths and "Footwear > Shoes > Heels" not in leaf_paths


def test_predict_without_a_model_says_what_to_do(small_db):
    with pytest.raises(ValueError, match="run `python -m core train` first"):
        pipeline.predict(small_db, log=quiet)


class StubEncoder:
    """Stands in for MiniLM / EfficientNet in the end-to-end timing: 24-d vectors like fake_embed's."""

    def __init__(self, name):
        self.name = name

    def embed(self, texts, **_):
        rng = np.random.default_rng(0)
        centroids = {leaf: rng.normal(size=24) for leaf in LEAVES}
        return np.stack([centroids[t.split(" | ")[1]] for t in texts]).astype(np.float32)

    def embed_masked(self, paths, **_):
        return np.zeros((len(paths), 24), np.float32), np.array([p is not None for p in paths], bool)


def test_evaluate_compares_every_model_on_both_populations(small_db, factory, monkeypatch):
    monkeypatch.setattr("core.encoders.get_encoder", StubEncoder)
    with factory() as s:
        cat = load_catalogue(s)
    result = classify.evaluate(cat, fake_embed(cat), seed=0)
    rows = {(r["model"], r["population"]): r for r in result["rows"]}
    names = {
        "tfidf-svm (baseline)",
        "text-only",
        "joint-only",
        "early-fusion",
        "late-fusion",
        "attention-fusion",
        "text-only + tfidf-svm (stacked)",
        "late-fusion + tfidf-svm (stacked)",
        "two-stage cascade",
    }
    assert {(m, p) for m in names for p in ("with_images", "all")} | {("image-only", "with_images")} == set(rows)
    assert all(r["path_validity"] == 1.0 for r in rows.values())
    assert rows[("late-fusion", "all")]["hf1"] > 0.9 and rows[("tfidf-svm (baseline)", "all")]["hf1"] > 0.9
    stacked = rows[("late-fusion + tfidf-svm (stacked)", "all")]
    assert stacked["hf1"] > 0.9 and 0.0 <= stacked["alpha"] <= 1.0 and stacked["temperature"] > 0
    assert rows[("late-fusion", "all")]["n_test"] == result["split"]["test"] == 48
    assert rows[("late-fusion", "with_images")]["n_test"] == 24
    assert 0.0 <= rows[("two-stage cascade", "all")]["share_stage2"] <= 1.0
    assert result["cascade"]["chosen"]["threshold"] in [r["threshold"] for r in result["cascade"]["sweep_on_calibration"]]
    assert "| late-fusion | all |" in classify.markdown_table(result["rows"])
    speed = result["cascade"]["end_to_end"]
    assert speed["n"] == 24 and speed["multimodal_s"] > 0 and speed["cascade_s"] > 0


def test_a_seeded_retrain_is_repeatable(small_db, factory):
    first = pipeline.retrain(small_db, log=quiet)
    second = pipeline.retrain(small_db, log=quiet)
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
