"""Catalogue features (core.embed.features): what is embedded with which encoder, the encoder ids, row subsets,
and embedding through the on-disk cache, with small deterministic stand-in encoders registered for the test."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from core.data.dataset import Catalogue
from core.embed.encoders import DEFAULT_ENCODERS, ENCODERS
from core.embed.features import Features, embed_catalogue, embed_plan, encoder_ids

CALLS: list[tuple[str, list]] = []


class StubText:
    """3-d vectors a person can check: (characters, letters "a", 1)."""

    modality = "text"
    id = "text:stub:v1"
    dim = 3

    def embed_masked(self, items, *, batch_size=32, device=None, progress=None):
        CALLS.append((self.id, list(items)))
        if progress:
            progress(len(items), len(items))
        return np.array([[len(t), t.count("a"), 1.0] for t in items], np.float32), np.ones(len(items), bool)


class StubImage:
    """2-d vectors: (file size in bytes, 2)."""

    modality = "image"
    id = "image:stub:v1"
    dim = 2

    def embed_masked(self, items, *, batch_size=32, device=None, progress=None):
        CALLS.append((self.id, list(items)))
        if progress:
            progress(len(items), len(items))
        sizes = [len(open(p, "rb").read()) for p in items]
        return np.array([[n, 2.0] for n in sizes], np.float32), np.ones(len(items), bool)


@pytest.fixture(autouse=True)
def stubs(monkeypatch):
    monkeypatch.setitem(ENCODERS, "stub-text", StubText)
    monkeypatch.setitem(ENCODERS, "stub-image", StubImage)
    CALLS.clear()


def catalogue(images: list[str | None]) -> Catalogue:
    n = len(images)
    titles = ["bag", "sandal", "cap"][:n]
    return Catalogue(
        np.array([10, 20, 30][:n], dtype=np.int64),
        external_ids=[str(i) for i in range(n)],
        platforms=["shop"] * n,
        titles=titles,
        texts=[f"{t}. a description" for t in titles],
        images=images,
        labels=[("A",)] * n,
        label_sources=["platform"] * n,
    )


@pytest.fixture
def photos(tmp_path):
    """Two of three products with a photo file: 5 and 7 bytes (the stand-in reads only the size)."""
    (tmp_path / "p0.jpg").write_bytes(b"x" * 5)
    (tmp_path / "p2.jpg").write_bytes(b"y" * 7)
    return catalogue([str(tmp_path / "p0.jpg"), None, str(tmp_path / "p2.jpg")])


def test_embed_plan_embeds_titles_of_everyone_and_photos_where_present(photos):
    plan = embed_plan(photos, text_encoder="stub-text", image_encoder="stub-image", descriptions=True)
    assert [(m, name) for m, name, _, _ in plan] == [("title", "stub-text"), ("image", "stub-image"), ("text", "stub-text")]
    (_, _, title_rows, titles), (_, _, image_rows, images), (_, _, text_rows, texts) = plan
    assert title_rows.tolist() == [0, 1, 2] and titles == ["bag", "sandal", "cap"]
    assert image_rows.tolist() == [0, 2] and images == [photos.images[0], photos.images[2]]
    assert text_rows.tolist() == [0, 1, 2] and texts[1] == "sandal. a description"
    without = embed_plan(photos, text_encoder="stub-text", image_encoder=None, descriptions=False)
    assert [m for m, *_ in without] == ["title"]


def test_embed_plan_of_a_catalogue_without_photos_has_no_image_rows():
    plan = embed_plan(catalogue([None, None]), text_encoder="stub-text", image_encoder="stub-image", descriptions=False)
    assert [m for m, *_ in plan] == ["title", "image"] and plan[1][2].tolist() == [] and plan[1][3] == []


def test_encoder_ids_name_each_modality_without_embedding(photos):
    ids = encoder_ids(photos, text_encoder="stub-text", image_encoder="stub-image", descriptions=True)
    assert ids == {"title": "text:stub:v1", "image": "image:stub:v1", "text": "text:stub:v1"}
    assert encoder_ids(photos, text_encoder="stub-text", image_encoder=None) == {"title": "text:stub:v1"}
    assert CALLS == []


def test_the_defaults_are_the_bundled_encoders_written_once():
    for fn in (embed_catalogue, encoder_ids):
        params = inspect.signature(fn).parameters
        assert params["text_encoder"].default == DEFAULT_ENCODERS["text"] == "minilm"
        assert params["image_encoder"].default == DEFAULT_ENCODERS["image"] == "efficientnet-lite0"


def test_embed_catalogue_fills_blocks_and_masks_and_reuses_the_cache(photos, tmp_path):
    ticks = []
    args = dict(text_encoder="stub-text", image_encoder="stub-image", cache_dir=tmp_path / "cache")
    feats = embed_catalogue(photos, **args, progress=lambda stage, done, total: ticks.append(stage))
    assert feats.product_ids.tolist() == [10, 20, 30] and set(feats.blocks) == {"title", "image"}
    np.testing.assert_array_equal(feats.blocks["title"], [[3, 1, 1], [6, 2, 1], [3, 1, 1]])  # bag, sandal, cap
    np.testing.assert_array_equal(feats.blocks["image"], [[5, 2], [0, 0], [7, 2]])  # zeros without a photo
    assert feats.masks["title"].tolist() == [True, True, True] and feats.masks["image"].tolist() == [True, False, True]
    assert feats.encoder_ids == {"title": "text:stub:v1", "image": "image:stub:v1"}
    assert feats.stats["title"]["items"] == 3 and feats.stats["title"]["misses"] == 3 and feats.stats["title"]["hits"] == 0
    assert feats.stats["image"]["items"] == 2 and feats.stats["image"]["misses"] == 2
    assert ticks == ["embed title", "embed image"]
    assert [ids for ids, _ in CALLS] == ["text:stub:v1", "image:stub:v1"]
    again = embed_catalogue(photos, **args)
    assert len(CALLS) == 2  # nothing embedded a second time
    assert again.stats["title"]["hits"] == 3 and again.stats["title"]["misses"] == 0
    assert again.stats["title"]["items_per_s"] is None  # nothing embedded, no speed
    assert again.stats["image"]["hits"] == 2 and again.stats["image"]["misses"] == 0
    for m in feats.blocks:
        np.testing.assert_array_equal(again.blocks[m], feats.blocks[m])
        np.testing.assert_array_equal(again.masks[m], feats.masks[m])


def test_a_missing_photo_file_is_masked_and_titles_are_cached_by_text(tmp_path):
    (tmp_path / "p0.jpg").write_bytes(b"z" * 4)
    cat = catalogue([str(tmp_path / "p0.jpg"), str(tmp_path / "gone.jpg")])
    feats = embed_catalogue(cat, text_encoder="stub-text", image_encoder="stub-image", cache_dir=tmp_path / "cache")
    assert feats.masks["image"].tolist() == [True, False] and feats.blocks["image"][1].tolist() == [0.0, 0.0]
    assert CALLS[1] == ("image:stub:v1", [str(tmp_path / "p0.jpg")])  # an unreadable file is never handed over
    cat.titles = ["bag", "tote"]  # one new title: only it is embedded
    embed_catalogue(cat, text_encoder="stub-text", image_encoder=None, cache_dir=tmp_path / "cache")
    assert CALLS[2] == ("text:stub:v1", ["tote"])


def test_embed_catalogue_with_descriptions_adds_the_text_block(photos, tmp_path):
    feats = embed_catalogue(photos, text_encoder="stub-text", image_encoder=None, descriptions=True, cache_dir=tmp_path)
    assert set(feats.blocks) == {"title", "text"}
    assert feats.blocks["text"][0].tolist() == [18, 2, 1]  # "bag. a description": 18 characters, an "a" in "bag" and "a"


def test_features_subset_keeps_rows_aligned():
    feats = Features(
        np.array([10, 20, 30]),
        {"title": np.arange(6, dtype=np.float32).reshape(3, 2)},
        {"title": np.array([True, False, True])},
        {"title": "text:stub:v1"},
        {"title": {"items": 3}},
    )
    part = feats.subset(np.array([2, 0]))
    assert part.product_ids.tolist() == [30, 10]
    assert part.blocks["title"].tolist() == [[4, 5], [0, 1]] and part.masks["title"].tolist() == [True, True]
    assert part.encoder_ids == feats.encoder_ids and part.encoder_ids is not feats.encoder_ids
    assert part.stats == feats.stats and part.stats is not feats.stats
