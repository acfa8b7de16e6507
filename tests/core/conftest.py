"""Fixtures of the ML-step tests: a small database with deterministic stand-in features.

The encoders themselves are tested in test_encoders.py; here `embed_catalogue` is replaced by
class-dependent Gaussian vectors so that the database, split, cascade and storage paths run in seconds.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from core.data.ingest import ColumnMap
from core.embed.features import Features
from core.steps.ingest import ingest

LEAVES = ["Apparel > Topwear > Shirts", "Apparel > Topwear > Tshirts", "Footwear > Shoes > Heels", "Footwear > Shoes > Flats"]


def fake_embed(cat, **_):
    """Text: leaf centroid + noise (every product); image: the same, for even product ids only."""
    rng = np.random.default_rng(0)
    centroids = {leaf: rng.normal(size=24) for leaf in LEAVES}
    n = len(cat)
    text = np.stack([centroids[t.split(" | ")[1]] + rng.normal(scale=0.6, size=24) for t in cat.texts]).astype(np.float32)
    image = text + rng.normal(scale=0.3, size=text.shape).astype(np.float32)
    has = cat.product_ids % 2 == 0
    image[~has] = 0
    title = text + rng.normal(scale=0.3, size=text.shape).astype(np.float32)
    blocks = {"title": title, "text": text, "image": image}
    masks = {"title": np.ones(n, bool), "text": np.ones(n, bool), "image": has}
    return Features(cat.product_ids, blocks, masks, {m: f"fake-{m}" for m in blocks}, {})


def patch_everywhere(monkeypatch, name: str, value) -> None:
    """Replace `name` in core.embed.features and in every loaded core module that imported it."""
    import core.embed.features  # noqa: F401  (loaded, so it is patched too)

    original = getattr(core.embed.features, name)
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("core.") and getattr(module, name, None) is original:
            monkeypatch.setattr(module, name, value)


@pytest.fixture
def small_db(db_url, tmp_path, monkeypatch):
    patch_everywhere(monkeypatch, "embed_catalogue", fake_embed)
    patch_everywhere(monkeypatch, "encoder_ids", lambda cat, **_: {m: f"fake-{m}" for m in ("title", "text", "image")})
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    lines = ["sku,name,category"]
    for i in range(240):
        leaf = LEAVES[i % 4]
        lines.append(f"{i},item {i} | {leaf},{leaf}")
    (tmp_path / "cat.csv").write_text("\n".join(lines) + "\n")
    mapping = ColumnMap.parse(["id=sku", "title=name", "path=category", "image=none", "description=none", "brand=none"])
    ingest(tmp_path / "cat.csv", platform="shop", db_url=db_url, mapping=mapping)
    return db_url


def quiet(*_):
    pass
