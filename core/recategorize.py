"""`python -m core discover`: propose finer subcategories under a taxonomy node, and the benchmark
that hides a known level and scores what discovery finds against it.

Features of a node's products: MiniLM of the title with the brand removed (brands dominate raw title
neighbourhoods) and MiniLM of title + description, as two blocks for the SimCLR head's modality views.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from db.models import PATH_SEP

Log = Callable[[str], None]


def debrand(title: str, brand: str | None) -> str:
    """The title without its brand name (case-insensitive, whole words)."""
    if not brand:
        return title
    cleaned = re.sub(rf"\b{re.escape(brand)}\b", " ", title, flags=re.IGNORECASE)
    return " ".join(cleaned.split()) or title


def node_products(cat, node_path: str | None) -> np.ndarray:
    """Rows of `cat` whose label is `node_path` or below it (all labelled rows when None)."""
    prefix = tuple(node_path.split(PATH_SEP)) if node_path else ()
    return np.array([i for i, lab in enumerate(cat.labels) if lab and lab[: len(prefix)] == prefix], dtype=np.int64)


def node_features(cat, brands: list[str | None], rows: np.ndarray, *, device=None, progress=None) -> np.ndarray:
    """`(n, 768) float32`: debranded-title and title+description MiniLM blocks of `rows` (cached)."""
    from core.embed_cache import cached_embed
    from core.encoders import get_encoder

    encoder = get_encoder("minilm")
    titles = [debrand(cat.titles[i], brands[i]) for i in rows]
    texts = [cat.texts[i] for i in rows]
    blocks = []
    for name, items in (("titles without brand", titles), ("title + description", texts)):
        tick = (lambda done, total, n=name: progress(f"embed {n}", done, total)) if progress else None
        blocks.append(cached_embed(encoder, items, device=device, progress=tick).vectors)
    return np.concatenate(blocks, axis=1).astype(np.float32)


def min_cluster_size_for(n: int) -> int:
    """40 products for a large node (tuned on Footwear > Shoes, 7k products); 5% of a small one, at least 10."""
    return max(10, min(40, n // 20))


def make_pipeline(*, brands: list[str], taxonomy_names: list[str], cache_dir, n: int, seed: int = 0):
    from core.clustering import CascadeClusterer
    from core.discovery import DiscoveryPipeline
    from core.naming import ClusterNamer
    from core.simclr import SimCLRHead

    namer = ClusterNamer(taxonomy_names=taxonomy_names, extra_stop_words=[b for b in brands if b])
    return DiscoveryPipeline(
        head=SimCLRHead(blocks=(384, 384), seed=seed, threads=1),
        clusterer=CascadeClusterer(min_cluster_size=min_cluster_size_for(n), seed=seed),
        namer=namer,
        cache_dir=cache_dir,
        seed=seed,
    )


def _catalogue_and_brands(factory):
    from sqlalchemy import select

    from core.dataset import load_catalogue
    from db.models import Product

    with factory() as s:
        cat = load_catalogue(s)
        brand_of = dict(s.execute(select(Product.id, Product.brand)).all())
    return cat, [brand_of.get(int(pid)) for pid in cat.product_ids]


def discover(db_url: str, *, node_path: str, seed: int = 0, device=None, progress=None, log: Log = print) -> int:
    """Cluster the products under `node_path` and store the clusters as open proposals; returns how many.

    Re-running replaces the node's open proposals of earlier runs (decided ones are kept).
    """
    from core.config import data_dir
    from db import proposals as props
    from db.repo import node_by_path
    from db.session import get_sessionmaker, transaction

    factory = get_sessionmaker(db_url)
    with factory() as s:
        node = node_by_path(s, node_path)
        if node is None or node.status != "active":
            raise ValueError(f"no active category {node_path!r}")
        node_id = node.id
        names = [r.name for r in props.child_names(s, node_id=node_id)]
    cat, brands = _catalogue_and_brands(factory)
    rows = node_products(cat, node_path)
    if len(rows) < 50:
        raise ValueError(f"{node_path!r} holds {len(rows)} products: too few to discover subcategories")
    X = node_features(cat, brands, rows, device=device, progress=progress)
    pipe = make_pipeline(
        brands=sorted({b for b in brands if b}), taxonomy_names=names, cache_dir=data_dir() / "discovery", n=len(rows), seed=seed
    )
    pipe.fit(X, docs=[cat.texts[i] for i in rows])
    run_key = time.strftime("%Y%m%d-%H%M%S")
    from core.maps import save_map, slug_for

    if pipe.coords_ is not None:  # every product of the node on the Clusters page, not only the clustered ones
        save_map(
            slug_for(node_id),
            product_ids=cat.product_ids[rows],
            xy=pipe.coords_,
            clusters=pipe.labels_,
            meta={"node": node_path, "run_key": run_key, "timings": {k: round(v, 1) for k, v in pipe.timings_.items()}},
        )
    with transaction(factory) as s:
        n = props.replace_open_proposals(
            s, parent_node_id=node_id, run_key=run_key, clusters=_clusters(pipe, cat.product_ids[rows])
        )
    log(
        f"{node_path}: {len(rows)} products -> {n} proposals ({(pipe.labels_ < 0).mean():.1%} unassigned) "
        f"in {sum(pipe.timings_.values()):.0f}s"
    )
    return n


def _clusters(pipe, product_ids: np.ndarray) -> list[dict[str, Any]]:
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


def benchmark(db_url: str, *, node_path: str = "Footwear > Shoes", seed: int = 0, device=None, progress=None) -> dict[str, Any]:
    """Hide the level below `node_path`, discover on `node_path`, score against the hidden level.

    The same run scores the plain pipeline (UMAP + HDBSCAN on the same raw embeddings with the same minimum
    cluster size: no SimCLR, no cascade, no noise assignment).
    """
    import tempfile

    from core.discovery import plain_pipeline, score_clusters
    from db.session import get_sessionmaker

    cat, brands = _catalogue_and_brands(get_sessionmaker(db_url))
    rows = node_products(cat, node_path)
    depth = len(node_path.split(PATH_SEP))
    truth = np.array([cat.labels[i][depth] if len(cat.labels[i]) > depth else "" for i in rows])
    X = node_features(cat, brands, rows, device=device, progress=progress)
    docs = [cat.texts[i] for i in rows]
    results = {"node": node_path, "n_products": len(rows), "hidden_types": sorted(set(truth.tolist())), "runs": {}}
    brand_list = sorted({b for b in brands if b})
    with tempfile.TemporaryDirectory() as cache:
        runs = {
            "discovery (SimCLR + UMAP + cascade)": make_pipeline(
                brands=brand_list, taxonomy_names=[], cache_dir=cache, n=len(rows), seed=seed
            ),
            "plain (UMAP + HDBSCAN, raw embeddings)": plain_pipeline(
                cache_dir=cache, seed=seed, min_cluster_size=min_cluster_size_for(len(rows))
            ),
        }
        for name, pipe in runs.items():
            started = time.perf_counter()
            pipe.fit(X, docs=docs)
            scores = score_clusters(pipe.labels_, truth)
            results["runs"][name] = {
                **scores._asdict(),
                "seconds": round(time.perf_counter() - started, 1),
                "timings": {k: round(v, 1) for k, v in pipe.timings_.items()},
            }
    return results


class NodeSearch:
    """FAISS nearest neighbours over a node's products (the discovery features), and free-text search.

    A text query is embedded with the same MiniLM and compared with both feature blocks.
    """

    def __init__(self, db_url: str, node_path: str, *, device=None):
        from core.ann import AnnIndex
        from db.session import get_sessionmaker

        cat, brands = _catalogue_and_brands(get_sessionmaker(db_url))
        rows = node_products(cat, node_path)
        self.product_ids = cat.product_ids[rows]
        self.index = AnnIndex(kind="auto").build(node_features(cat, brands, rows, device=device), ids=self.product_ids)
        self.device = device

    def neighbours(self, product_id: int, *, k: int = 8) -> list[int]:
        """The `k` products most similar to `product_id` (itself excluded)."""
        _, ids = self.index.neighbours(int(product_id), k)
        return [int(i) for i in np.ravel(ids) if i >= 0]

    def search(self, query: str, *, k: int = 12) -> list[int]:
        """Products whose title/description is closest to the free-text `query`."""
        from core.encoders import get_encoder

        q = get_encoder("minilm").embed([query], device=self.device)
        _, ids = self.index.search(np.concatenate([q, q], axis=1), k)
        return [int(i) for i in ids[0] if i >= 0]
