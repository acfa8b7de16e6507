"""The Ray engine (`core.engine`) against the local engine on small slices: the same vectors (bit for bit), the same
stored predictions and the same review queue, through a local Ray instance of 2 CPUs started once for the module;
and the local engine never imports Ray.

The small catalogue's stand-in encoders (`tests.core.ml_helpers`) are shipped to the Ray actors as objects (the
registry they are in exists in this process only); the workers import this repository through PYTHONPATH.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

import core.embed.cache as ec
from core import cli, config
from core.embed.cache import EmbeddingCache, cached_embed, content_keys
from core.embed.encoders import ENCODERS, HFTextEncoder, get_encoder
from core.engine import RayEngine, open_engine
from core.steps.embed import embed
from core.steps.predict import predict
from core.steps.review import run_review
from core.steps.train import train
from db.models import Prediction, ReviewItem
from tests.core.conftest import quiet
from tests.core.ml_helpers import CORPUS, tiny_roberta

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 256  # distinct missing texts per chunk (production: 2,048): small here, so that a few hundred make 3 chunks


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray instance (2 CPUs, no dashboard) for the module; the engine runs on it and leaves it running."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield ray
    ray.shutdown()


@pytest.fixture
def ray_calls(monkeypatch) -> list[str]:
    """The names of the `RayEngine` methods called (each still does its work): proof that the Ray engine ran."""
    calls: list[str] = []

    def spying(name: str, real):
        def spy(self, *args, **kwargs):
            calls.append(name)
            return real(self, *args, **kwargs)

        return spy

    for name in ("embed_chunks", "predict", "run_folds"):
        monkeypatch.setattr(RayEngine, name, spying(name, getattr(RayEngine, name)))
    return calls


def distinct_texts(n: int) -> list[str]:
    """`n` distinct titles of 1 to 12 words (lengths vary, so the encoder's longest-first order and padding matter)."""
    words = " ".join(CORPUS).split()
    rng = np.random.default_rng(3)
    out: list[str] = []
    while len(out) < n:
        text = " ".join(rng.choice(words, size=int(rng.integers(1, 13)))) + f" {len(out)}"
        out.append(text)
    return out


def test_the_local_engine_never_imports_ray(tmp_path):
    code = (
        "import sys\n"
        "import core.cli\n"
        "from core.embed.cache import cached_embed\n"
        "from core.engine import open_engine\n"
        "from tests.core.ml_helpers import FakeEncoder\n"
        "with open_engine('local') as engine:\n"
        "    got = cached_embed(FakeEncoder(), ['a', 'b', 'a'], cache_dir=sys.argv[1], engine=engine)\n"
        "print(engine is None, got.misses, 'ray' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "3", "False"]


def test_cli_embed_on_ray_caches_the_local_engines_vectors_bit_for_bit(ray_instance, ray_calls, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    original = ec._fill_missing  # chunks of CHUNK distinct inputs on both engines (as test_embed_cache does)
    monkeypatch.setattr(ec, "_fill_missing", lambda *a, **kw: original(*a, chunk=CHUNK, **kw))
    folder = tiny_roberta(tmp_path / "roberta")  # a real (tiny) transformer through ONNX Runtime, as on any CPU
    monkeypatch.setitem(ENCODERS, "tiny-roberta", lambda **_: HFTextEncoder(folder, name="tiny"))
    encoder = get_encoder("tiny-roberta")
    texts = distinct_texts(2 * CHUNK + 100)  # three chunks, the last one short
    texts += texts[:50]  # repeated texts are embedded once, stored for every row
    local = cached_embed(encoder, texts, cache_dir=tmp_path / "local", batch_size=16, device="cpu")
    pq.write_table(pa.table({"name": texts}), tmp_path / "titles.parquet")
    argv = ["embed", "--input", str(tmp_path / "titles.parquet"), "--title-column", "name", "--text", "tiny-roberta"]
    argv += ["--image", "none", "--batch-size", "16", "--device", "cpu", "--engine", "ray"]
    assert cli.main([*argv, "--db", f"sqlite:///{tmp_path / 'x.db'}"]) == 0
    assert ray_calls == ["embed_chunks"]
    assert f"{len(texts)} titles (tiny-roberta), 0 cached, {len(texts)} embedded now" in capsys.readouterr().out
    folder = config.data_dir() / "embeddings"
    stored, found = EmbeddingCache(folder, encoder.id, encoder.dim).lookup(content_keys(texts, "text"))
    assert local.ok.all() and found.all()
    assert np.array_equal(stored, local.vectors)  # bitwise: the same model, settings and chunks
    assert np.abs(local.vectors).sum(1).min() > 0  # real vectors on both sides, not zeros
    assert len(list(folder.rglob("shard-*.keys.npy"))) == 3  # the driver stored one shard per chunk


def stored_predictions(factory, version_id: int) -> list[tuple]:
    with factory() as s:
        rows = s.execute(
            select(Prediction.product_id, Prediction.level, Prediction.node_id, Prediction.confidence, Prediction.stage)
            .where(Prediction.model_version_id == version_id)
            .order_by(Prediction.product_id, Prediction.level)
        )
        return [tuple(r) for r in rows]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_ray_embeds_and_predicts_what_the_local_engine_stores(ray_instance, ray_calls, small_db, small_catalogue, factory):
    version_id = train(small_db, log=quiet)
    assert predict(small_db, log=quiet) == len(small_catalogue)
    local_predictions, local_feats = stored_predictions(factory, version_id), embed(small_db)
    shutil.rmtree(config.data_dir() / "embeddings")  # the Ray engine embeds every title and photo again
    with open_engine("ray") as engine:
        feats = embed(small_db, engine=engine)
        engine.predict_rows = 64  # 240 products: 4 batches over the 2 actors
        assert predict(small_db, force=True, log=quiet, engine=engine) == len(small_catalogue)
    assert ray_calls == ["embed_chunks", "embed_chunks", "predict"]  # titles, photos, then the cascade
    photos = sum(p is not None for p in small_catalogue.photos)
    assert (feats.stats["title"]["misses"], feats.stats["image"]["misses"]) == (len(small_catalogue), photos)
    for m in ("title", "image"):
        assert np.array_equal(feats.masks[m], local_feats.masks[m]) and np.array_equal(feats.blocks[m], local_feats.blocks[m])
    ray = stored_predictions(factory, version_id)
    assert len(local_predictions) == len(ray) == 3 * len(small_catalogue)  # every product on a 3-level path
    assert [r[:3] + r[4:] for r in ray] == [r[:3] + r[4:] for r in local_predictions]  # products, levels, nodes, stages
    gap = max(abs(a[3] - b[3]) for a, b in zip(ray, local_predictions))
    assert gap <= 1e-6  # the confidences: float32 rounding of batches of 64 rows against one batch of 240
    assert {r[4] for r in local_predictions} == {1, 2}  # both stages ran


def review_queue(factory) -> list[tuple]:
    with factory() as s:
        rows = s.execute(
            select(ReviewItem.product_id, ReviewItem.score, ReviewItem.margin, ReviewItem.flagged, ReviewItem.suggested_node_id)
            .where(ReviewItem.status == "open")
            .order_by(ReviewItem.product_id)
        )
        return [tuple(r) for r in rows]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_ray_review_queues_the_local_engines_scores(ray_instance, ray_calls, small_db, factory):
    run_review(small_db, folds=3, log=quiet)
    local = review_queue(factory)
    with open_engine("ray") as engine:
        run_review(small_db, folds=3, log=quiet, engine=engine)
    ray = review_queue(factory)
    assert ray_calls == ["run_folds"]  # the features were cached: only the folds ran on Ray
    assert local and ray == local  # the classes overlap: some labels look wrong to the out-of-fold models
