"""Session fixtures of the quality guards: seeded slices of the shared catalogue, ingested into SQLite through
`core.steps.ingest` and embedded with the real bundled encoders (MiniLM titles, EfficientNet-Lite0 photos) through
`core.steps.embed`, once per test session (the embedding cache lives in a session folder).

Each test works on its own copy of a slice's database, with its own data folder that shares the session's
embedding cache (a symlink) and encoder choice, so no test sees another's model versions or review queue.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from core import config
from core.data.dataset import PATH_SEP
from core.embed.choice import CHOICE_FILE, EncoderChoice

SEED = 0
PLATFORM = "myntra"
# classification and review slice: about 3,000 products of the leaves holding >= 10 products in the catalogue
N_PRODUCTS = 3000
MIN_PER_LEAF = 10
N_PHOTOS = 300  # photos cost ~30/s on this machine's CPU; the rest of the slice's photos are left out
# the classifier-versus-baseline slice: larger, so that the model's small lead is resolved (see that test)
N_PRODUCTS_LARGE = 8000
# discovery slice: products of one node whose next level is hidden from the pipeline
NODE = "Footwear > Shoes"
N_NODE = 1500


@dataclass(frozen=True)
class SliceDb:
    """An ingested, embedded slice: the database file and the data folder holding its embedding cache."""

    path: Path
    data_dir: Path
    n_products: int
    n_photos: int
    n_leaves: int

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"


@dataclass(frozen=True)
class NodeSlice:
    """The discovery slice: features of the node's products (two MiniLM blocks), the hidden next level, texts."""

    db: SliceDb
    X: np.ndarray
    truth: np.ndarray
    docs: list[str]
    brands: list[str]


def leaf_paths(frame) -> object:
    return frame.master_category + PATH_SEP + frame.sub_category + PATH_SEP + frame.article_type


def stratified_slice(frame, *, n: int, min_per_leaf: int, seed: int):
    """About `n` products of the leaves that hold at least `min_per_leaf` products (99.5% of the catalogue):
    each such leaf gets `min_per_leaf`, the rest of `n` is shared in proportion to leaf size; seeded."""
    paths = leaf_paths(frame)
    counts = paths.value_counts()
    counts = counts[counts >= min_per_leaf].sort_index()
    extra, rest = n - min_per_leaf * len(counts), (counts - min_per_leaf).sum()
    rng = np.random.default_rng(seed)
    rows: list[int] = []
    for leaf, count in counts.items():
        take = min(int(count), min_per_leaf + int(round(extra * (count - min_per_leaf) / rest)))
        rows += rng.choice(np.flatnonzero((paths == leaf).to_numpy()), size=take, replace=False).tolist()
    return frame.iloc[np.sort(rows)].copy()


def keep_photos(frame, *, n_photos: int, seed: int):
    """Keep the photo of a seeded `n_photos` of the products that have one; the others go without."""
    has = np.flatnonzero((frame.image != "").to_numpy())
    keep = np.random.default_rng(seed).choice(has, size=min(n_photos, len(has)), replace=False)
    image = np.full(len(frame), "", dtype=object)
    image[keep] = frame.image.to_numpy()[keep]
    frame["image"] = image
    return frame


def build_slice(tmp_path_factory, name: str, frame, *, embed_products: bool) -> SliceDb:
    """Write `frame` as Parquet, ingest it into a new SQLite database and (optionally) embed it with the bundled
    encoders, with DATA_DIR set to the slice's own data folder."""
    from core.steps.embed import embed
    from core.steps.ingest import ingest
    from db.session import upgrade

    folder = tmp_path_factory.mktemp(name)
    parquet = folder / "slice.parquet"
    frame.to_parquet(parquet)
    db = SliceDb(
        folder / "quality.db",
        folder / "data",
        n_products=len(frame),
        n_photos=int((frame.image != "").sum()),
        n_leaves=int(leaf_paths(frame).nunique()),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATA_DIR", str(db.data_dir))
        upgrade(db.url)
        report = ingest(parquet, platform=PLATFORM, db_url=db.url, images_root=config.catalog_dir())
        assert report.inserted == len(frame) and report.image_status.get("ok", 0) == db.n_photos, report.summary()
        if embed_products:
            embed(db.url, choice=EncoderChoice())
    (db.data_dir / "embeddings").mkdir(parents=True, exist_ok=True)
    return db


@pytest.fixture(scope="session")
def classification_slice(tmp_path_factory, catalog_frame) -> SliceDb:
    """~3,000 products stratified by leaf (every leaf >= 10), 300 of them with their photo, embedded."""
    frame = stratified_slice(catalog_frame, n=N_PRODUCTS, min_per_leaf=MIN_PER_LEAF, seed=SEED)
    frame = keep_photos(frame, n_photos=N_PHOTOS, seed=SEED)
    return build_slice(tmp_path_factory, "quality-classification", frame, embed_products=True)


@pytest.fixture(scope="session")
def large_classification_slice(tmp_path_factory, catalog_frame) -> SliceDb:
    """~8,000 products stratified by leaf (every leaf >= 10), 300 of them with their photo, embedded."""
    frame = stratified_slice(catalog_frame, n=N_PRODUCTS_LARGE, min_per_leaf=MIN_PER_LEAF, seed=SEED)
    frame = keep_photos(frame, n_photos=N_PHOTOS, seed=SEED)
    return build_slice(tmp_path_factory, "quality-classification-large", frame, embed_products=True)


@pytest.fixture(scope="session")
def node_slice(tmp_path_factory, catalog_frame) -> NodeSlice:
    """A seeded 1,500 of the products of Footwear > Shoes (text only: discovery reads no photo), their discovery
    features from the bundled text encoder, and their article type (the level discovery must find)."""
    from core.discover.features import node_products
    from core.steps.catalogue import catalogue_and_brands
    from core.steps.discover import node_encoder, node_features
    from db.session import get_sessionmaker

    top, sub = NODE.split(PATH_SEP)
    frame = catalog_frame[(catalog_frame.master_category == top) & (catalog_frame.sub_category == sub)]
    frame = frame.sample(n=N_NODE, random_state=SEED).sort_values("id").copy()
    frame["image"] = ""
    db = build_slice(tmp_path_factory, "quality-discovery", frame, embed_products=False)
    factory = get_sessionmaker(db.url)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATA_DIR", str(db.data_dir))
        cat, brands = catalogue_and_brands(factory)
        rows = node_products(cat, NODE)
        X = node_features(factory, cat.product_ids[rows], encoder=node_encoder(EncoderChoice()))
    truth = np.array([cat.labels[i][2] for i in rows])
    return NodeSlice(db, X, truth, [cat.texts[i] for i in rows], sorted({b for b in brands if b}))


@pytest.fixture
def private_copy(tmp_path, monkeypatch):
    """Function(slice) -> URL of this test's own copy of the slice's database; DATA_DIR becomes a fresh folder that
    shares the session's embedding cache and recorded encoder choice."""

    def make(db: SliceDb) -> str:
        data = tmp_path / "data"
        data.mkdir()
        (data / "embeddings").symlink_to(db.data_dir / "embeddings", target_is_directory=True)
        if (db.data_dir / CHOICE_FILE).exists():
            shutil.copy(db.data_dir / CHOICE_FILE, data / CHOICE_FILE)
        monkeypatch.setenv("DATA_DIR", str(data))
        path = tmp_path / "quality.db"
        shutil.copy(db.path, path)
        return f"sqlite:///{path}"

    return make
