"""The whole pipeline (ingest -> embed -> train -> predict -> discover -> review -> retrain) on three catalogue
shapes: text only, photos only, text with photos for some. The stand-in encoders of test_cli_steps (hashed words;
a photo's mean colour), registered for the test, run through the real embedding cache; titles carry class words
that overlap, photo colours overlap, so the models can be wrong and a shuffled control would fail the accuracy checks."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from core.data.ingest import ColumnMap
from core.embed import encoders
from core.embed.choice import EncoderChoice
from core.steps.catalogue import load_catalogue
from core.steps.discover import discover
from core.steps.embed import catalogue_features, embed
from core.steps.ingest import ingest
from core.steps.predict import predict
from core.steps.retrain import retrain
from core.steps.review import run_review
from core.steps.train import train
from db import predictions as preds
from db.models import ModelVersion, Prediction, Proposal, ReviewItem
from db.session import get_sessionmaker
from tests.core.test_cli_steps import HashedWordsText, MeanColourImage

LEAVES = ["Apparel > Topwear > Shirts", "Apparel > Topwear > Tshirts", "Footwear > Shoes > Heels", "Footwear > Shoes > Flats"]
WORDS = [
    ["collar", "button", "oxford"],
    ["crew", "cotton", "graphic"],
    ["stiletto", "pointed", "tall"],
    ["ballet", "slip", "round"],
]
SHARED = ["classic", "new", "everyday", "soft", "smart", "casual"]
COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]


def write_catalogue(folder, *, text: bool, photo_share: float, n: int = 240, seed: int = 0):
    """A CSV of `n` products over LEAVES (the two shoe leaves: 120 products under Footwear > Shoes)."""
    rng = np.random.default_rng(seed)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = ["sku,name,category,photo"]
    for i in range(n):
        k = i % len(LEAVES)
        title = " ".join([rng.choice(WORDS[k]), *rng.choice(SHARED, size=3)]) if text else ""
        photo = ""
        if rng.random() < photo_share:
            colour = np.clip(np.array(COLOURS[k]) + rng.normal(scale=60, size=3), 0, 255).astype(np.uint8)
            Image.fromarray(np.tile(colour, (8, 8, 1))).save(folder / "img" / f"{i}.png")
            photo = f"img/{i}.png"
        rows.append(f"P{i},{title},{LEAVES[k]},{photo}")
    (folder / "cat.csv").write_text("\n".join(rows) + "\n")
    return folder / "cat.csv"


SHAPES = {  # text?, share of products with a photo, the image encoder
    "text only": (True, 0.0, None),
    "photos only": (False, 1.0, "test-image"),
    "text and photos for some": (True, 0.4, "test-image"),
}


@pytest.fixture
def db_url(tmp_path, sqlite_template) -> str:
    """SQLite only: the shapes exercise the pipeline, the two backends are compared by the db tests."""
    shutil.copy(sqlite_template, tmp_path / "shapes.db")
    return f"sqlite:///{tmp_path / 'shapes.db'}"


@pytest.fixture
def factory(db_url):
    return get_sessionmaker(db_url)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_whole_pipeline_runs_on_each_catalogue_shape(shape, db_url, factory, tmp_path, monkeypatch):
    text, photo_share, image_encoder = SHAPES[shape]
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setitem(encoders.ENCODERS, "test-text", HashedWordsText)
    monkeypatch.setitem(encoders.ENCODERS, "test-image", MeanColourImage)
    choice = EncoderChoice(text="test-text", image=image_encoder)
    title = ["title=name"] if text else ["title=none"]
    mapping = ColumnMap.parse(["id=sku", *title, "path=category", "image=photo", "description=none", "brand=none"])
    report = ingest(
        write_catalogue(tmp_path, text=text, photo_share=photo_share), platform="shop", db_url=db_url, mapping=mapping
    )
    assert report.inserted == 240
    feats = embed(db_url, choice=choice)
    assert ("title" in feats.blocks) == text and ("image" in feats.blocks) == (choice.image is not None)
    lines: list[str] = []
    first = train(db_url, log=lines.append)
    with factory() as s:
        manifest = s.get(ModelVersion, first).params
        hf1 = s.get(ModelVersion, first).metrics["hf1"]
    assert manifest["modalities"]["text"] == text and manifest["modalities"]["image"] == (photo_share > 0)
    assert any("modalities:" in line for line in lines)
    assert hf1 > 0.8  # well above a majority-class model (one leaf of four equal ones: hF1 about 0.4)
    assert predict(db_url, log=lambda *_: None) == 240
    with factory() as s:
        assert s.scalar(select(func.count(func.distinct(Prediction.product_id)))) == 240
    assert discover(db_url, node_path="Footwear > Shoes", log=lambda *_: None) >= 0
    stored = run_review(db_url, folds=3, log=lambda *_: None)
    second = retrain(db_url, log=lambda *_: None)
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(ReviewItem)) == stored
        assert s.scalar(select(func.count()).select_from(Proposal)) >= 0
        assert preds.active_model_version(s).id == second != first
        assert s.get(ModelVersion, second).params["modalities"] == manifest["modalities"]


def test_a_text_model_predicts_a_second_platforms_photo_only_products_too(db_url, factory, tmp_path, monkeypatch):
    """A second platform's photo-only rows next to a text-trained model: every product is predicted; and when no
    product at all has a title, `titles=True` (what predict asks for with a text model) still gives the block."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setitem(encoders.ENCODERS, "test-text", HashedWordsText)
    mapping = ColumnMap.parse(["id=sku", "title=name", "path=category", "image=none", "description=none", "brand=none"])
    ingest(write_catalogue(tmp_path / "a", text=True, photo_share=0.0), platform="shop", db_url=db_url, mapping=mapping)
    embed(db_url, choice=EncoderChoice(text="test-text", image=None))
    train(db_url, log=lambda *_: None)
    photos = ColumnMap.parse(["id=sku", "title=none", "path=category", "image=photo", "description=none", "brand=none"])
    ingest(write_catalogue(tmp_path / "b", text=False, photo_share=1.0, n=30), platform="other", db_url=db_url, mapping=photos)
    assert predict(db_url, log=lambda *_: None) == 270
    with factory() as s:
        assert s.scalar(select(func.count(func.distinct(Prediction.product_id)))) == 270
        cat = load_catalogue(s)
    untitled = cat.subset(np.flatnonzero([not t for t in cat.titles]))
    assert len(untitled) == 30
    assert "title" not in catalogue_features(untitled, choice=EncoderChoice(text="test-text", image=None)).blocks
    assert catalogue_features(untitled, choice=EncoderChoice(text="test-text", image=None), titles=True).blocks[
        "title"
    ].shape == (30, 32)
