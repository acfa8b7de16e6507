"""`python -m core discover --benchmark`: hide the level below a node, discover on the node, and score what
discovery finds (and the plain UMAP + HDBSCAN baseline on the same features) against the hidden level."""

from __future__ import annotations

import tempfile
import time
from typing import Any

import numpy as np

from core.data.dataset import PATH_SEP
from core.discover.features import make_pipeline, min_cluster_size_for, node_products
from core.discover.pipeline import DiscoveryPipeline, plain_pipeline, score_clusters
from core.embed.choice import EncoderChoice, chosen_encoders
from core.steps.catalogue import catalogue_and_brands
from core.steps.discover import node_encoder, node_features
from db.session import get_sessionmaker


def benchmark(
    db_url: str,
    *,
    node_path: str = "Footwear > Shoes",
    seed: int = 0,
    min_cluster_size: int | None = None,
    max_unassigned: float | None = 0.2,
    choice: EncoderChoice | None = None,
    device=None,
    progress=None,
) -> dict[str, Any]:
    """Hide the level below `node_path`, discover on `node_path`, score against the hidden level.

    The same run scores the plain pipeline (UMAP + HDBSCAN on the same raw embeddings with the same minimum
    cluster size: no SimCLR, no cascade, no noise assignment). The features come from the text encoder of
    `choice` (default: the recorded choice).
    """
    choice = choice or chosen_encoders()
    factory = get_sessionmaker(db_url)
    cat, brands = catalogue_and_brands(factory)
    rows = node_products(cat, node_path)
    depth = len(node_path.split(PATH_SEP))
    truth = np.array([cat.labels[i][depth] if len(cat.labels[i]) > depth else "" for i in rows])
    encoder = node_encoder(choice)
    X = node_features(factory, cat.product_ids[rows], encoder=encoder, device=device, progress=progress)
    size = min_cluster_size or min_cluster_size_for(len(rows))
    results = {
        "node": node_path,
        "n_products": len(rows),
        "hidden_types": sorted(set(truth.tolist())),
        "settings": {
            "features": f"{choice.text} ({encoder.dim}-d): title without brand and colours | "
            "title without brand + description without care text",
            "encoder": encoder.id,
            "seed": seed,
            "min_cluster_size": size,
            "max_unassigned": max_unassigned,
        },
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as cache:
        runs = {
            "discovery (SimCLR + UMAP + cascade)": make_pipeline(
                brands=sorted({b for b in brands if b}),
                taxonomy_names=[],
                cache_dir=cache,
                n=len(rows),
                blocks=(encoder.dim, encoder.dim),
                seed=seed,
                min_cluster_size=min_cluster_size,
                max_unassigned=max_unassigned,
            ),
            "plain (UMAP + HDBSCAN, raw embeddings)": plain_pipeline(cache_dir=cache, seed=seed, min_cluster_size=size),
        }
        for name, pipe in runs.items():
            results["runs"][name] = score_run(pipe, X, docs=[cat.texts[i] for i in rows], truth=truth)
    return results


def score_run(pipe: DiscoveryPipeline, X: np.ndarray, *, docs: list[str], truth: np.ndarray) -> dict[str, Any]:
    """Fit `pipe` on X and score its clusters (and the clusters before stage 4) against `truth`."""
    started = time.perf_counter()
    pipe.fit(X, docs=docs)
    return {
        **score_clusters(pipe.labels_, truth)._asdict(),
        "seconds": round(time.perf_counter() - started, 1),
        "timings": {k: round(v, 1) for k, v in pipe.timings_.items()},
        "unclear_left_out": [{"coherence": coh, "size": size} for _, coh, size in pipe.clusterer.unclear_],
        "before_stage_4": score_clusters(pipe.clusterer.stage3_labels_, truth)._asdict(),
    }
