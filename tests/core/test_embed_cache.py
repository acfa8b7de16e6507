"""On-disk embedding cache: hits and misses, content keys, .npy-only storage, concurrent use."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from core.embed.cache import EmbeddingCache, cached_embed, content_keys
from tests.core.ml_helpers import FakeEncoder, write_images

TEXTS = ["red shirt", "blue jeans", "white sneakers", "red shirt", "black cap"]


def test_second_run_embeds_nothing(tmp_path):
    enc = FakeEncoder()
    first = cached_embed(enc, TEXTS, cache_dir=tmp_path)
    assert (first.hits, first.misses) == (0, 5)
    assert enc.n_embedded == 4  # the duplicate "red shirt" is embedded once
    np.testing.assert_array_equal(first.vectors[0], first.vectors[3])
    second = cached_embed(enc, TEXTS, cache_dir=tmp_path)
    assert (second.hits, second.misses) == (5, 0) and enc.n_embedded == 4
    np.testing.assert_array_equal(first.vectors, second.vectors)
    assert second.ok.all()


def test_only_new_or_changed_items_are_embedded(tmp_path):
    enc = FakeEncoder()
    cached_embed(enc, TEXTS, cache_dir=tmp_path)
    changed = ["red shirt", "blue jeans, slim", "white sneakers", "green scarf"]
    out = cached_embed(enc, changed, cache_dir=tmp_path)
    assert enc.calls[-1] == ["blue jeans, slim", "green scarf"]
    assert (out.hits, out.misses) == (2, 2)
    reference, _ = FakeEncoder().embed_masked(changed)
    np.testing.assert_allclose(out.vectors, reference)


def test_storage_is_npy_only_and_pickle_free(tmp_path):
    cached_embed(FakeEncoder(), TEXTS, cache_dir=tmp_path)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} == {".npy", ".json"}
    assert not any(p.name.endswith(".tmp") for p in files)
    for path in files:
        if path.suffix == ".npy":
            np.load(path, allow_pickle=False)


def test_encoders_do_not_share_entries(tmp_path):
    a, b = FakeEncoder(id="text:fake:v1"), FakeEncoder(id="text:fake:v2", dim=4)
    cached_embed(a, TEXTS, cache_dir=tmp_path)
    out = cached_embed(b, TEXTS, cache_dir=tmp_path)
    assert out.hits == 0 and out.vectors.shape == (5, 4)
    assert len(list(tmp_path.iterdir())) == 2


def test_image_keys_follow_content_and_missing_files_fail_softly(tmp_path):
    paths = write_images(tmp_path / "img", 3)
    items = [*paths, tmp_path / "img" / "missing.jpg"]
    enc = FakeEncoder(id="image:fake:v1", modality="image")
    out = cached_embed(enc, items, cache_dir=tmp_path / "cache")
    assert out.ok.tolist() == [True, True, True, False] and not out.vectors[3].any()
    assert enc.n_embedded == 3  # the missing file has no key and is not sent to the encoder
    paths[1].write_bytes(paths[0].read_bytes())  # new content at an old path
    again = cached_embed(enc, items, cache_dir=tmp_path / "cache")
    assert (again.hits, again.misses) == (3, 1) and enc.n_embedded == 3
    np.testing.assert_array_equal(again.vectors[1], again.vectors[0])


def test_stat_keys_change_with_mtime(tmp_path):
    path = write_images(tmp_path, 1)[0]
    before = content_keys([path], "image", image_key="stat")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert content_keys([path], "image", image_key="stat") != before
    assert content_keys([path], "image") == content_keys([path], "image")  # content key ignores mtime
    assert content_keys(["a"], "text") != content_keys(["b"], "text")


def test_failed_rows_are_retried_not_cached(tmp_path):
    class Flaky(FakeEncoder):
        def embed_masked(self, items, **kw):
            out, ok = super().embed_masked(items, **kw)
            ok[[i for i, t in enumerate(items) if t == "bad"]] = False
            return out * ok[:, None], ok

    enc = Flaky()
    first = cached_embed(enc, ["good", "bad"], cache_dir=tmp_path)
    assert first.ok.tolist() == [True, False]
    second = cached_embed(enc, ["good", "bad"], cache_dir=tmp_path)
    assert (second.hits, second.misses) == (1, 1) and enc.calls[-1] == ["bad"]


def test_cache_rejects_wrong_shapes(tmp_path):
    cache = EmbeddingCache(tmp_path, "text:x", 4)
    with pytest.raises(ValueError):
        cache.add(["k"], np.zeros((1, 3)))
    assert cache.add([], np.zeros((0, 4))) is None


def test_concurrent_writers_and_readers_then_compact(tmp_path):
    dim, n_writers, per_writer = 4, 4, 25
    errors: list[BaseException] = []
    expected = {
        f"{w:02d}{i:02d}".ljust(40, "0"): np.full(dim, w * 100 + i, np.float32)
        for w in range(n_writers)
        for i in range(per_writer)
    }

    def writer(w):
        cache = EmbeddingCache(tmp_path, "text:conc", dim)
        for i in range(per_writer):
            key = f"{w:02d}{i:02d}".ljust(40, "0")
            cache.add([key], expected[key][None])

    def reader():
        cache = EmbeddingCache(tmp_path, "text:conc", dim)
        try:
            for _ in range(40):
                vectors, found = cache.lookup(list(expected))
                for key, vec, hit in zip(expected, vectors, found):
                    assert not hit or np.array_equal(vec, expected[key])
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(n_writers)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    cache = EmbeddingCache(tmp_path, "text:conc", dim)
    assert cache.compact() == n_writers * per_writer
    assert len(list(cache.folder.glob("*.keys.npy"))) == 1
    vectors, found = cache.lookup(list(expected))
    assert found.all()
    np.testing.assert_array_equal(vectors, np.stack(list(expected.values())))


def test_an_interrupted_run_keeps_its_finished_chunks(tmp_path, monkeypatch):
    import core.embed.cache as ec

    class Crashing(FakeEncoder):
        def embed_masked(self, items, **kw):
            if len(self.calls) == 2:  # the third chunk fails
                raise KeyboardInterrupt
            return super().embed_masked(items, **kw)

    items = [f"item {i}" for i in range(10)]
    original = ec._fill_missing
    monkeypatch.setattr(ec, "_fill_missing", lambda *a, **kw: original(*a, chunk=3, **kw))
    with pytest.raises(KeyboardInterrupt):
        cached_embed(Crashing(), items, cache_dir=tmp_path)
    enc = FakeEncoder()
    again = cached_embed(enc, items, cache_dir=tmp_path)
    assert (again.hits, again.misses) == (6, 4) and enc.n_embedded == 4
    ticks = []
    cached_embed(FakeEncoder(id="text:fake:v2"), items, cache_dir=tmp_path, progress=lambda d, t: ticks.append((d, t)))
    assert ticks[-1] == (10, 10) and all(t == 10 for _, t in ticks)
