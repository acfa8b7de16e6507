"""`python -m core discover`: propose finer subcategories under a taxonomy node and store them as open proposals,
with the node's map and run record; `NodeSearch` finds similar products of a node for the Clusters page.

The discovery features (`core.discover.features`) are text only: two blocks from the chosen text encoder
(`core.embed.choice`), so the SimCLR head's block widths are that encoder's dim; photos are not used.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import select

from core.config import data_dir
from core.discover.ann import AnnIndex
from core.discover.features import colour_pattern, colour_vocabulary, feature_texts, make_pipeline, node_products
from core.discover.pipeline import DiscoveryPipeline
from core.embed.cache import cached_embed
from core.embed.choice import EncoderChoice, chosen_encoders
from core.embed.encoders import Encoder, get_encoder
from core.embed.features import embed_catalogue
from core.keys import content_key
from core.runs import RunRecord
from core.steps.catalogue import catalogue_and_brands
from core.steps.maps import record_pipeline_stages, save_map, slug_for
from db import proposals as props
from db.models import Product
from db.repo import node_by_path
from db.session import get_sessionmaker, transaction

Log = Callable[[str], None]
MIN_PRODUCTS = 50


def node_encoder(choice: EncoderChoice | None = None) -> Encoder:
    """The text encoder of the discovery features: `choice` (default: the recorded choice)."""
    return get_encoder((choice or chosen_encoders()).text)


def node_texts(factory, product_ids: np.ndarray) -> tuple[list[str], list[str]]:
    """The two feature texts (see `feature_texts`) of each of `product_ids`, in that order."""
    with factory() as s:
        colours = colour_pattern(colour_vocabulary(a for (a,) in s.execute(select(Product.attributes))))
        rows = {r.id: r for r in s.execute(select(Product.id, Product.title, Product.description, Product.brand)).all()}
    pairs = [feature_texts(rows[int(p)].title, rows[int(p)].description, rows[int(p)].brand, colours) for p in product_ids]
    return [a for a, _ in pairs], [b for _, b in pairs]


def node_features(factory, product_ids: np.ndarray, *, encoder: Encoder | None = None, device=None, progress=None) -> np.ndarray:
    """`(n, 2 * D) float32`: the two text blocks of `product_ids` from `encoder` (default `node_encoder()`),
    cached by text."""
    encoder = encoder or node_encoder()
    titles, texts = node_texts(factory, product_ids)
    blocks = []
    for name, items in (("titles", titles), ("title + description", texts)):
        tick = (lambda done, total, n=name: progress(f"embed {n}", done, total)) if progress else None
        blocks.append(cached_embed(encoder, items, device=device, progress=tick).vectors)
    return np.concatenate(blocks, axis=1).astype(np.float32)


def node_photo_features(cat, rows: np.ndarray, choice: EncoderChoice, *, device=None, progress=None):
    """(`(n, D)` photo embeddings, the image encoder) of a node whose products have no titles (photos only)."""
    encoder = get_encoder(choice.image) if choice.image else None
    if encoder is None or not all(cat.images[i] for i in rows):
        raise ValueError("the node's products have no titles and not all have a photo: nothing to discover by")
    tick = (lambda done, total: progress("embed photos", done, total)) if progress else None
    result = cached_embed(encoder, [cat.images[i] for i in rows], device=device, progress=tick)
    return result.vectors.astype(np.float32), encoder


def node_and_children(factory, node_path: str) -> tuple[int, list[str]]:
    """(node id, names of its active children) of the active category `node_path`; ValueError when there is none."""
    with factory() as s:
        node = node_by_path(s, node_path)
        if node is None or node.status != "active":
            raise ValueError(f"no active category {node_path!r}")
        return node.id, [r.name for r in props.child_names(s, node_id=node.id)]


def discover(
    db_url: str,
    *,
    node_path: str,
    seed: int = 0,
    min_cluster_size: int | None = None,
    max_unassigned: float | None = 0.2,
    choice: EncoderChoice | None = None,
    device=None,
    progress=None,
    log: Log = print,
) -> int:
    """Cluster the products under `node_path` and store the clusters as open proposals; returns how many.

    Re-running replaces the node's open proposals of earlier runs (decided ones are kept). The features come
    from the text encoder of `choice` (default: the recorded choice).
    """
    factory = get_sessionmaker(db_url)
    record = RunRecord("discover", settings={"seed": seed, "max_unassigned": max_unassigned})
    node_id, names = node_and_children(factory, node_path)
    cat, brands = catalogue_and_brands(factory)
    rows = node_products(cat, node_path)
    if len(rows) < MIN_PRODUCTS:
        raise ValueError(f"{node_path!r} holds {len(rows)} products: too few to discover subcategories")
    product_ids = cat.product_ids[rows]
    record.stage("load")
    photos_only = not any(cat.titles[i].strip() for i in rows)
    if photos_only:
        X, encoder = node_photo_features(cat, rows, choice or chosen_encoders(), device=device, progress=progress)
    else:
        encoder = node_encoder(choice)
        X = node_features(factory, product_ids, encoder=encoder, device=device, progress=progress)
    record.stage("features")
    pipe = make_pipeline(
        brands=sorted({b for b in brands if b}),
        taxonomy_names=names,
        cache_dir=data_dir() / "discovery",
        n=len(rows),
        blocks=(encoder.dim,) if photos_only else (encoder.dim, encoder.dim),
        seed=seed,
        min_cluster_size=min_cluster_size,
        max_unassigned=max_unassigned,
    )
    pipe.fit(X, docs=None if photos_only else [cat.texts[i] for i in rows])
    record_pipeline_stages(record, pipe)
    _describe_run(record, pipe, node_path=node_path, product_ids=product_ids, X=X, encoder=encoder)
    run_key = time.strftime("%Y%m%d-%H%M%S")
    with transaction(factory) as s:
        n = props.replace_open_proposals(s, parent_node_id=node_id, run_key=run_key, clusters=_clusters(pipe, product_ids))
    record.stage("store")
    record.outputs["proposals"] = n
    _save_node_map(node_id, node_path, run_key, pipe, product_ids, record)
    log(
        f"{node_path}: {len(rows)} products -> {n} proposals ({(pipe.labels_ < 0).mean():.1%} unassigned) "
        f"in {sum(pipe.timings_.values()):.0f}s; features: "
        + (f"photos, {encoder.id} ({encoder.dim}-d); the products have no titles" if photos_only
           else f"text encoder {encoder.id} ({encoder.dim}-d), photos not used")
    )
    return n


def _describe_run(record: RunRecord, pipe: DiscoveryPipeline, *, node_path: str, product_ids, X, encoder: Encoder) -> None:
    """The settings the pipeline ran with, what it read (node, products, encoder, content key) and what it found."""
    record.settings.update(min_cluster_size=pipe.clusterer.min_cluster_size, head=pipe.head.config())
    record.inputs = {
        "node": node_path,
        "products": len(product_ids),
        "encoders": {"text": encoder.id},
        "key": content_key(product_ids, X),
    }
    record.outputs = {
        "clusters": len(pipe.summaries_),
        "unassigned": round(float((pipe.labels_ < 0).mean()), 4),
        "unclear_groups": len(pipe.clusterer.unclear_),
    }


def _save_node_map(node_id: int, node_path: str, run_key: str, pipe: DiscoveryPipeline, product_ids, record: RunRecord) -> None:
    """Every product of the node on the Clusters page, not only the clustered ones (when the pipeline made a 2-D view)."""
    if pipe.coords_ is None:
        return
    save_map(
        slug_for(node_id),
        product_ids=product_ids,
        xy=pipe.coords_,
        clusters=pipe.labels_,
        meta={
            "node": node_path,
            "run_key": run_key,
            "timings": {k: round(v, 1) for k, v in pipe.timings_.items()},
            "unassigned": record.outputs["unassigned"],
            "unclear_groups": record.outputs["unclear_groups"],
        },
        run=record,
    )


def _clusters(pipe: DiscoveryPipeline, product_ids: np.ndarray) -> list[dict[str, Any]]:
    coords = pipe.coords_
    out = []
    for summary in pipe.summaries_:
        members = np.asarray(summary.members)
        out.append(
            {
                "name": summary.name,
                "suggested_names": [summary.name, *(name for name, _score in summary.nearest_names)],
                "members": product_ids[members].tolist(),
                "coords": coords[members].round(4).tolist() if coords is not None else [],
                "scores": {"size": int(summary.size), "coherence": float(summary.coherence), "top_terms": summary.top_terms[:10]},
            }
        )
    return out


class NodeSearch:
    """FAISS nearest neighbours of a node's products, and free-text search over them.

    Neighbours of a product use the discovery features (what kind of product it is: brand, colour and care text
    left out). A text query is matched against the products' full-title vectors instead (the same chosen text
    encoder), so that every word a merchandiser types counts: on Footwear > Shoes, queries "<colour> <type>" found
    12 products of that colour and type with precision 0.75 this way (MiniLM), against 0.55 through the discovery
    features, which have no colours.
    """

    def __init__(self, db_url: str, node_path: str, *, choice: EncoderChoice | None = None, device=None):
        choice = choice or chosen_encoders()
        factory = get_sessionmaker(db_url)
        cat, _ = catalogue_and_brands(factory)
        rows = node_products(cat, node_path)
        self.product_ids = cat.product_ids[rows]
        self.encoder = node_encoder(choice)
        self.index = AnnIndex(kind="auto").build(
            node_features(factory, self.product_ids, encoder=self.encoder, device=device), ids=self.product_ids
        )
        titles = embed_catalogue(cat.subset(rows), text_encoder=choice.text, image_encoder=None, device=device).blocks["title"]
        self.text_index = AnnIndex(kind="auto").build(titles, ids=self.product_ids)
        self.device = device

    def neighbours(self, product_id: int, *, k: int = 8) -> list[int]:
        """The `k` products most similar to `product_id` (itself excluded)."""
        _, ids = self.index.neighbours(int(product_id), k)
        return [int(i) for i in np.ravel(ids) if i >= 0]

    def search(self, query: str, *, k: int = 12) -> list[int]:
        """Products whose title is closest to the free-text `query`."""
        q = self.encoder.embed([query], device=self.device)
        _, ids = self.text_index.search(q, k)
        return [int(i) for i in ids[0] if i >= 0]
