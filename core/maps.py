"""2-D maps of products for the Clusters page: every product of a node (written by `discover`) or of the
whole catalogue (`python -m core map`), with the cluster each one fell in.

A map is an .npz under data/maps: `product_ids (N,)`, `xy (N, 2) float32`, `clusters (N,)` (-1: unassigned),
and a JSON side file with how it was made (content key, stage timings).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

ALL = "all"


def slug_for(node_id: int | None) -> str:
    return ALL if node_id is None else f"node-{node_id}"


def map_file(slug: str) -> Path:
    from core.config import data_dir

    return data_dir() / "maps" / f"{slug}.npz"


def save_map(slug: str, *, product_ids: np.ndarray, xy: np.ndarray, clusters: np.ndarray, meta: dict[str, Any]) -> Path:
    path = map_file(slug)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp, product_ids=np.asarray(product_ids, np.int64), xy=np.asarray(xy, np.float32), clusters=np.asarray(clusters, np.int32)
    )
    tmp.replace(path)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1, default=str))
    return path


def load_map(slug: str) -> dict[str, Any] | None:
    """{"product_ids", "xy", "clusters", "meta"} or None when the map was never built."""
    path = map_file(slug)
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        out = {k: data[k] for k in ("product_ids", "xy", "clusters")}
    meta = path.with_suffix(".json")
    out["meta"] = json.loads(meta.read_text()) if meta.exists() else {}
    return out


def build_catalogue_map(
    db_url: str, *, seed: int = 0, force: bool = False, device=None, progress=None, log=print
) -> dict[str, Any]:
    """The discovery pipeline (SimCLR head, UMAP 10-D and 2-D, cascade clustering) over every product's title
    embedding; saves map "all". Skipped when the products and titles are unchanged (unless `force`).

    Returns:
        the map's meta: content key, products, clusters, unassigned share, stage timings in seconds.
    """
    from core.clustering import CascadeClusterer
    from core.config import data_dir
    from core.discovery import DiscoveryPipeline
    from core.features import embed_catalogue
    from core.naming import ClusterNamer
    from core.recategorize import _catalogue_and_brands
    from core.simclr import SimCLRHead
    from db.session import get_sessionmaker

    cat, _ = _catalogue_and_brands(get_sessionmaker(db_url))
    if len(cat) < 50:
        raise ValueError(f"the catalogue holds {len(cat)} products: too few for a map")
    feats = embed_catalogue(cat, image_encoder=None, device=device, progress=progress)
    head = SimCLRHead(seed=seed, threads=2)
    settings = json.dumps({"seed": seed, "head": head.config()}, sort_keys=True).encode()  # a new default refits the map
    key = hashlib.sha256(cat.product_ids.tobytes() + feats.blocks["title"].tobytes() + settings).hexdigest()[:16]
    existing = load_map(ALL)
    if existing is not None and existing["meta"].get("key") == key and not force:
        log(f"the catalogue map is up to date ({len(existing['product_ids'])} products)")
        return existing["meta"]
    X = feats.blocks["title"]
    pipe = DiscoveryPipeline(
        head=head,
        clusterer=CascadeClusterer(min_cluster_size=max(40, len(cat) // 400), seed=seed),
        namer=ClusterNamer(),
        cache_dir=data_dir() / "discovery",
        seed=seed,
    )
    started = time.perf_counter()
    pipe.fit(X, docs=cat.titles)
    meta = {
        "key": key,
        "products": len(cat),
        "features": "MiniLM title embeddings (384-d)",
        "clusters": int(pipe.labels_.max() + 1),
        "unassigned": round(float((pipe.labels_ < 0).mean()), 4),
        "seconds": round(time.perf_counter() - started, 1),
        "timings": {k: round(v, 1) for k, v in pipe.timings_.items()},
        "made": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    save_map(ALL, product_ids=cat.product_ids, xy=pipe.coords_, clusters=pipe.labels_, meta=meta)
    log(
        f"catalogue map: {len(cat)} products, {meta['clusters']} clusters, "
        f"{meta['unassigned']:.1%} unassigned, {meta['seconds']}s"
    )
    return meta


def group_names(
    colour: str, product_ids: np.ndarray, *, clusters=None, proposals=None, labels=None, predictions=None, depth: int = 1
) -> list[str]:
    """The colour group of every product of a map.

    Args:
        colour: "cluster" (the map's clusters), "proposal" ({product id: proposal name}), "label" or "prediction"
            ({product id: full path}, shown cut to `depth` levels).
    """
    if colour == "cluster":
        return [f"cluster {c}" if c >= 0 else "unassigned" for c in clusters]
    if colour == "proposal":
        return [proposals.get(int(p), "unassigned") for p in product_ids]
    source = labels if colour == "label" else predictions
    if source is None:
        raise ValueError(f"no {colour}s to colour by")
    cut = lambda path: " > ".join(path.split(" > ")[:depth]) if path else f"no {colour}"  # noqa: E731
    return [cut(source.get(int(p))) for p in product_ids]


def scatter_groups(product_ids: np.ndarray, xy: np.ndarray, names: list[str], *, max_groups: int = 24) -> list[dict[str, Any]]:
    """Traces for the scatter: the `max_groups - 1` largest groups, then the rest as "other" (coordinates
    rounded to 3 decimals: the page payload is mostly these numbers).

    Returns:
        [{"name", "x", "y", "ids"}], largest first, "unassigned"/"other" last.
    """
    from collections import Counter

    counts = Counter(names)
    special = {n for n in counts if n == "unassigned" or n.startswith("no ")}
    ranked = [n for n, _ in counts.most_common() if n not in special]
    keep = set(ranked[: max_groups - 1])
    final = [n if n in keep or n in special else "other" for n in names]
    order = [n for n in ranked if n in keep] + sorted({n for n in final if n not in keep})
    arr = np.asarray(final)
    xy = np.round(np.asarray(xy, np.float64), 3)
    out = []
    for name in order:
        rows = np.flatnonzero(arr == name)
        if len(rows):
            out.append(
                {
                    "name": f"{name} ({len(rows):,})",
                    "x": xy[rows, 0].tolist(),
                    "y": xy[rows, 1].tolist(),
                    "ids": product_ids[rows].tolist(),
                    "muted": name in special or name == "other",
                }
            )
    return out


def unassigned_note(meta: dict[str, Any]) -> str:
    """ "18% unassigned (6 unclear groups among them) · " for a map's caption; "" when the map does not say."""
    if "unassigned" not in meta:
        return ""
    groups = int(meta.get("unclear_groups") or 0)
    among = f" ({groups} unclear group{'s' if groups != 1 else ''} among them)" if groups else ""
    return f"{float(meta['unassigned']):.0%} unassigned{among} · "
