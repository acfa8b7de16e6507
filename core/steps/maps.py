"""2-D maps of products for the Clusters page: every product of a node (written by `discover`) or of the
whole catalogue (`python -m core map`), with the cluster each one fell in.

A map is an .npz under data/maps: `product_ids (N,)`, `xy (N, 2) float32`, `clusters (N,)` (-1: unassigned),
a JSON side file `<slug>.json` with how it was made (content key, unassigned share, stage timings, and the run
record under "run"), and the run record alone in `<slug>.run.json` (`core.runs.RunRecord`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.config import data_dir
from core.data.dataset import Catalogue
from core.discover.clustering import CascadeClusterer
from core.discover.naming import ClusterNamer
from core.discover.pipeline import DiscoveryPipeline
from core.discover.simclr import SimCLRHead
from core.embed.choice import EncoderChoice, chosen_encoders
from core.embed.features import Features, embed_catalogue
from core.keys import content_key
from core.runs import RunRecord
from core.steps.catalogue import catalogue_and_brands
from db.session import get_sessionmaker

ALL = "all"


def slug_for(node_id: int | None) -> str:
    """The map name of a node's discovery run ("node-<id>"), or of the whole catalogue (None: "all")."""
    return ALL if node_id is None else f"node-{node_id}"


def map_file(slug: str) -> Path:
    return data_dir() / "maps" / f"{slug}.npz"


def run_file(slug: str) -> Path:
    """The run record beside a map: data/maps/<slug>.run.json."""
    return map_file(slug).with_suffix(".run.json")


def save_map(
    slug: str,
    *,
    product_ids: np.ndarray,
    xy: np.ndarray,
    clusters: np.ndarray,
    meta: dict[str, Any],
    run: RunRecord | None = None,
) -> Path:
    """Write the map's arrays and meta; with `run`, also its run record (in the meta under "run" and beside it)."""
    path = map_file(slug)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp, product_ids=np.asarray(product_ids, np.int64), xy=np.asarray(xy, np.float32), clusters=np.asarray(clusters, np.int32)
    )
    tmp.replace(path)
    if run is not None:
        meta = {**meta, "run": run.as_dict()}
        run.write(run_file(slug))
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


def load_run(slug: str) -> RunRecord | None:
    """The run record of a map, or None (never built, or built before runs were recorded)."""
    return RunRecord.read(run_file(slug))


def record_pipeline_stages(record: RunRecord, pipe: DiscoveryPipeline) -> None:
    """Close the run's stage that fitted `pipe` and put the pipeline's own stages (head, reduce, ...) in its place."""
    record.stage("pipeline")
    del record.timings["pipeline"]
    record.timings.update({stage: round(seconds, 2) for stage, seconds in pipe.timings_.items()})


def catalogue_pipeline(n: int, *, seed: int) -> DiscoveryPipeline:
    """The pipeline of the catalogue map: SimCLR head on the title vectors, 10-D and 2-D UMAP, cascade clustering."""
    return DiscoveryPipeline(
        head=SimCLRHead(seed=seed, threads=1),  # one thread: two spin against any other busy process (6 s -> 154 s an epoch)
        # a cluster: 1/400 of the products, at least 40, fewer for a small catalogue (under 800: n // 20, 12 of 240)
        clusterer=CascadeClusterer(min_cluster_size=max(min(40, n // 20), n // 400), seed=seed),
        namer=ClusterNamer(),
        cache_dir=data_dir() / "discovery",
        seed=seed,
    )


def pipeline_settings(pipe: DiscoveryPipeline, *, seed: int) -> dict[str, Any]:
    """What the map depends on besides its inputs: a new default of any stage refits the map."""
    return {
        "seed": seed,
        "head": pipe.head.config(),
        "reducer": pipe.reducer.params(),
        "view": pipe.view_reducer.params(),
        "clusterer": dict(vars(pipe.clusterer)),
    }


def map_block(feats: Features) -> str:
    """The block the map is drawn from: the title embeddings, or the photos' for a photo-only catalogue."""
    return "title" if "title" in feats.blocks else "image"


def map_key(cat: Catalogue, feats: Features, settings: dict[str, Any]) -> str:
    """Content key of the catalogue map: the products, their vectors, the encoder and the settings."""
    block = map_block(feats)
    return content_key(cat.product_ids, feats.blocks[block], feats.encoder_ids[block], settings)


def build_catalogue_map(
    db_url: str,
    *,
    seed: int = 0,
    force: bool = False,
    choice: EncoderChoice | None = None,
    device=None,
    progress=None,
    log=print,
) -> dict[str, Any]:
    """The discovery pipeline (SimCLR head, UMAP 10-D and 2-D, cascade clustering) over every product's title
    embedding with the chosen text encoder (`choice`, default the recorded one; photos are not used); saves map
    "all". Skipped when the products, titles, encoder and settings are unchanged (unless `force`).

    Returns:
        the map's meta: content key, products, clusters, unassigned share, stage timings in seconds, the run record.
    """
    choice = choice or chosen_encoders()
    record = RunRecord("map")
    cat, _ = catalogue_and_brands(get_sessionmaker(db_url))
    if len(cat) < 50:
        raise ValueError(f"the catalogue holds {len(cat)} products: too few for a map")
    record.stage("load")
    photos_only = not any(t.strip() for t in cat.titles)  # then the photos are all there is to map by
    image = choice.image if photos_only else None
    feats = embed_catalogue(cat, text_encoder=choice.text, image_encoder=image, device=device, progress=progress)
    record.stage("features")
    pipe = catalogue_pipeline(len(cat), seed=seed)
    settings = pipeline_settings(pipe, seed=seed)
    key = map_key(cat, feats, settings)
    existing = load_map(ALL)
    if existing is not None and existing["meta"].get("key") == key and not force:
        log(f"the catalogue map is up to date ({len(existing['product_ids'])} products)")
        return existing["meta"]
    block = map_block(feats)
    X = feats.blocks[block]
    started = time.perf_counter()
    pipe.fit(X, docs=None if photos_only else cat.titles)
    record_pipeline_stages(record, pipe)
    record.settings = settings
    record.inputs = {"products": len(cat), "encoders": {block: feats.encoder_ids[block]}, "key": key}
    meta = {
        "key": key,
        "products": len(cat),
        "features": (f"{choice.image} photo embeddings ({X.shape[1]}-d); the products have no titles" if photos_only
                     else f"{choice.text} title embeddings ({X.shape[1]}-d); photos not used"),
        "clusters": int(pipe.labels_.max() + 1),
        "unassigned": round(float((pipe.labels_ < 0).mean()), 4),
        "seconds": round(time.perf_counter() - started, 1),
        "timings": {k: round(v, 1) for k, v in pipe.timings_.items()},
        "made": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    record.outputs = {"clusters": meta["clusters"], "unassigned": meta["unassigned"]}
    record.outputs["unclear_groups"] = len(pipe.clusterer_.unclear_)
    save_map(ALL, product_ids=cat.product_ids, xy=pipe.coords_, clusters=pipe.labels_, meta=meta, run=record)
    log(
        f"catalogue map: {len(cat)} products, {meta['clusters']} clusters, "
        f"{meta['unassigned']:.1%} unassigned, {meta['seconds']}s ({meta['features']})"
    )
    return {**meta, "run": record.as_dict()}
