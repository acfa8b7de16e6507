"""`python -m core discover --benchmark`: hide the level below a node, discover on the node, and score what
discovery finds against the hidden level, beside the plain UMAP + HDBSCAN pipeline and BERTopic on the same features.

Every method is scored at two levels of its own hierarchy:

- "default": the proposals a merchandiser would see first (discovery and plain: the tree of their clusters cut at
  the label-free default, near-duplicates shown as one; BERTopic: its topics as found);
- "hidden_level": the level with as many groups as there are hidden types (discovery and plain: the tree cut there,
  near-duplicates not merged, so exactly that many groups, or all the tree's leaves when it has fewer; BERTopic:
  `reduce_topics` to that count);
- "major_types_level": the same at the number of hidden types that hold at least 2% of the products.

At each: ARI, NMI and purity over the assigned products, the unassigned share and name accuracy (share of the
assigned products whose group's top suggested name is their group's majority hidden type, case and plural endings
ignored). The flat clusters (the tree's leaves) are scored too.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import numpy as np

from core.data.dataset import PATH_SEP
from core.discover.features import make_pipeline, min_cluster_size_for, node_products
from core.discover.levels import Hierarchy
from core.discover.metrics import level_scores, name_accuracy
from core.discover.pipeline import DiscoveryPipeline, plain_pipeline, score_clusters
from core.embed.choice import EncoderChoice, chosen_encoders
from core.steps.catalogue import catalogue_and_brands
from core.steps.discover import HIERARCHY, node_encoder, node_features, node_photo_features
from db.session import get_sessionmaker

DISCOVERY = "discovery (SimCLR + UMAP + cascade + tree)"
HEAD_ONLY = "discovery in the head's space (set aside by the raw fallback)"
PLAIN = "plain (UMAP + HDBSCAN + the same tree)"
BERTOPIC = "BERTopic (same embeddings, reduce_topics)"


def node_sample(cat, node_path: str, *, max_products: int | None, seed: int) -> np.ndarray:
    """Rows of the products under `node_path`; a seeded random sample of `max_products` of them when there are more."""
    rows = node_products(cat, node_path)
    if max_products and len(rows) > max_products:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_products, replace=False))
    return rows


def benchmark(
    db_url: str,
    *,
    node_path: str = "Footwear > Shoes",
    seed: int = 0,
    min_cluster_size: int | None = None,
    max_unassigned: float | None = 0.2,
    max_products: int | None = None,
    hierarchy: dict | None = None,
    bertopic: bool = True,
    choice: EncoderChoice | None = None,
    device=None,
    progress=None,
) -> dict[str, Any]:
    """Hide the level below `node_path`, discover on `node_path` (a sample of `max_products` when given), score
    discovery, the plain pipeline and (with `bertopic`) BERTopic against the hidden level in the same run.

    `hierarchy` overrides the tree settings (`core.steps.discover.HIERARCHY`); the features come from the text
    encoder of `choice` (default: the recorded choice).
    """
    choice = choice or chosen_encoders()
    factory = get_sessionmaker(db_url)
    cat, brands = catalogue_and_brands(factory)
    rows = node_sample(cat, node_path, max_products=max_products, seed=seed)
    depth = len(node_path.split(PATH_SEP))
    truth = np.array([cat.labels[i][depth] if len(cat.labels[i]) > depth else "" for i in rows])
    encoder = node_encoder(choice)
    X = node_features(factory, cat.product_ids[rows], encoder=encoder, device=device, progress=progress)
    size = min_cluster_size or min_cluster_size_for(len(rows))
    tree = {**HIERARCHY, **(hierarchy or {})}
    data = {
        "titles": [cat.titles[i] for i in rows],
        "brands": [brands[i] for i in rows],
        "descriptions": [cat.descriptions[i] for i in rows] if cat.descriptions else None,
        "truth": truth,
        "node": node_path.split(PATH_SEP)[-1],
    }
    results = {
        "node": node_path,
        "n_products": len(rows),
        "sampled": bool(max_products and len(node_products(cat, node_path)) > len(rows)),
        "hidden_types": sorted(set(truth.tolist())),
        "settings": {
            "features": f"{choice.text} ({encoder.dim}-d): title without brand and colours | "
            "title without brand + description without care text",
            "encoder": encoder.id,
            "seed": seed,
            "min_cluster_size": size,
            "max_unassigned": max_unassigned,
            "hierarchy": tree,
        },
        "runs": run_methods(X, data, brands=brands, seed=seed, size=size, max_unassigned=max_unassigned, tree=tree),
    }
    if bertopic:
        results["runs"][BERTOPIC] = score_bertopic(X, data=data, seed=seed)
    return results


def benchmark_classes(
    db_url: str,
    classes: list[str],
    *,
    name: str,
    seed: int = 0,
    max_products: int | None = 2000,
    hierarchy: dict | None = None,
    choice: EncoderChoice | None = None,
    device=None,
) -> dict[str, Any]:
    """A node made of several top-level classes of a photo-only catalogue (Fashion-MNIST: "Sandal", "Sneaker", "Ankle
    boot"), the classes hidden: discovery and the plain pipeline on the photo embeddings (`choice`'s image encoder),
    a seeded sample of `max_products`. BERTopic is left out: it needs texts, and these products have none."""
    choice = choice or chosen_encoders()
    factory = get_sessionmaker(db_url)
    cat, _ = catalogue_and_brands(factory)
    rows = np.array([i for i, lab in enumerate(cat.labels) if lab and lab[0] in set(classes)], dtype=np.int64)
    sampled = bool(max_products and len(rows) > max_products)
    if sampled:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_products, replace=False))
    truth = np.array([cat.labels[i][0] for i in rows])
    X, encoder = node_photo_features(cat, rows, choice, device=device)
    size = min_cluster_size_for(len(rows))
    tree = {**HIERARCHY, **(hierarchy or {})}
    data = {"titles": None, "brands": [None] * len(rows), "truth": truth, "node": name}
    return {
        "node": name,
        "n_products": len(rows),
        "sampled": sampled,
        "hidden_types": sorted(set(truth.tolist())),
        "settings": {"features": f"photos only, {encoder.id} ({encoder.dim}-d)", "seed": seed, "min_cluster_size": size},
        "runs": run_methods(X, data, brands=[], seed=seed, size=size, max_unassigned=0.2, tree=tree, blocks=(X.shape[1],)),
    }


def run_methods(
    X, data: dict, *, brands, seed: int, size: int, max_unassigned, tree: dict, blocks: tuple[int, ...] | None = None
) -> dict[str, Any]:
    """Discovery and the plain pipeline on X, each with the same tree over its clusters, scored against the truth;
    `blocks`: the widths of X's blocks (default two halves: the two text views)."""
    with tempfile.TemporaryDirectory() as cache:
        discovery = make_pipeline(
            brands=sorted({b for b in brands if b}),
            taxonomy_names=[],
            cache_dir=cache,
            n=len(X),
            blocks=blocks or (X.shape[1] // 2, X.shape[1] // 2),
            seed=seed,
            min_cluster_size=size,
            max_unassigned=max_unassigned,
        )
        discovery.view_reducer = None
        plain = plain_pipeline(cache_dir=cache, seed=seed, min_cluster_size=size)
        runs = {DISCOVERY: score_run(discovery, X, data=data, tree=tree, space="head")}
        if getattr(discovery, "space_", "head") == "raw":
            runs[HEAD_ONLY] = score_set_aside_head(discovery, X, data=data, tree=tree)
        runs[PLAIN] = score_run(plain, X, data=data, tree=tree, space="input")
        return runs


def score_set_aside_head(pipe: DiscoveryPipeline, X: np.ndarray, *, data: dict, tree: dict) -> dict[str, Any]:
    """What discovery would have given in the head's space it set aside for the raw one (its cascade on the head's
    projection, the tree over the head's space), scored as `score_run` scores a run."""
    embedding, low = pipe.head_space_
    labels = pipe.clusterer.fit(low, embeddings=X).labels_
    hier = Hierarchy(node_name=data["node"], seed=0, **tree).fit(
        embedding, labels, data["titles"], brands=data["brands"], descriptions=data.get("descriptions")
    )
    return score_levels(hier, labels, data["truth"])


def score_run(pipe: DiscoveryPipeline, X: np.ndarray, *, data: dict, tree: dict, space: str) -> dict[str, Any]:
    """Fit `pipe` on X, build the tree of its clusters (over the head's space or the input features) and score its
    leaves, its default level and its hidden-type level against `data["truth"]`."""
    started = time.perf_counter()
    pipe.fit(X, docs=data["titles"])
    hier = Hierarchy(node_name=data["node"], seed=0, **tree).fit(
        pipe.embedding_ if space == "head" else X,
        pipe.labels_,
        data["titles"],
        brands=data["brands"],
        descriptions=data.get("descriptions"),
    )
    out = {
        **score_levels(hier, pipe.labels_, data["truth"]),
        "seconds": round(time.perf_counter() - started, 1),
        "timings": {k: round(v, 1) for k, v in pipe.timings_.items()},
        "space": getattr(pipe, "space_", "input"),
        "space_scores": {k: [round(v, 4) for v in pair] for k, pair in getattr(pipe, "space_scores_", {}).items()},
    }
    return out


def score_levels(hier: Hierarchy, labels: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """The leaves (`labels`), the default, hidden-type and major-type levels of `hier` scored against `truth`."""
    out = {
        "leaves": score_clusters(labels, truth)._asdict(),
        "default": level_entry(hier, None, truth),
        "hidden_level": level_entry(hier, len(set(truth.tolist())), truth),
        "major_types_level": level_entry(hier, major_types(truth), truth),
    }
    out["default"]["names"] = [proposal_label(g) for g in hier.level()]
    return out


def proposal_label(group: dict) -> str:
    """A proposal's name, with its parts' names when it shows merged near-duplicates: "Heels (Heels + Peep Toes)"."""
    parts = " + ".join(p["name"] for p in group["parts"])
    return f"{group['name']} ({parts})" if parts else group["name"]


def major_types(truth: np.ndarray, *, share: float = 0.02) -> int:
    """How many hidden types hold at least `share` of the products (at least 1): the level a node with many tiny
    types (Topwear: 19 types, 4 of them 90% of the products) is also scored at."""
    _, counts = np.unique(truth, return_counts=True)
    return max(int((counts >= share * len(truth)).sum()), 1)


def level_entry(hier: Hierarchy, k: int | None, truth: np.ndarray) -> dict[str, Any]:
    """Scores of one level of `hier`: k None, the default level as shown (near-duplicates as one proposal); else
    exactly the k groups of the tree's cut."""
    groups = hier.level(k, merge_duplicates=k is None)
    lookup = {leaf: g for g, group in enumerate(groups) for leaf in group["leaves"]}
    labels = np.array([lookup.get(int(v), -1) for v in hier.labels_], dtype=int)
    scores = level_scores(labels, truth)
    return {
        "k": int(hier.default_k_ if k is None else k),
        "proposals": len(groups),
        **scores,
        "name_accuracy": name_accuracy(labels, {g: x["name"] for g, x in enumerate(groups)}, truth),
    }


def score_bertopic(X: np.ndarray, *, data: dict, seed: int) -> dict[str, Any]:
    """BERTopic with its default settings (5-D UMAP, HDBSCAN min_cluster_size 10, c-TF-IDF) on the same features and
    titles; its topics as found, then `reduce_topics` to the hidden-type count; names: its two top words."""
    from bertopic import BERTopic
    from hdbscan import HDBSCAN
    from umap import UMAP

    started = time.perf_counter()
    truth, titles = data["truth"], data["titles"]
    model = BERTopic(
        umap_model=UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=seed),
        hdbscan_model=HDBSCAN(min_cluster_size=10, metric="euclidean", cluster_selection_method="eom", prediction_data=True),
        calculate_probabilities=False,
    )
    topics = np.asarray(model.fit_transform(titles, embeddings=X)[0])
    out = {"default": bertopic_level(model, topics, truth)}
    outliers = int((topics == -1).any())
    for level, k in (("hidden_level", len(set(truth.tolist()))), ("major_types_level", major_types(truth))):
        model.reduce_topics(titles, nr_topics=k + outliers)  # from the last reduction: the levels are nested
        out[level] = bertopic_level(model, np.asarray(model.topics_), truth)
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def bertopic_level(model, topics: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Scores of BERTopic's current topics; each topic named by its two top words."""
    labels = np.where(topics < 0, -1, topics)
    info = model.get_topics()
    names = {int(t): " ".join(w for w, _ in words[:2]) for t, words in info.items() if t != -1}
    scores = level_scores(labels, truth)
    return {
        "k": scores["n_groups"],
        "proposals": scores["n_groups"],
        **scores,
        "name_accuracy": name_accuracy(labels, names, truth),
        "names": [names[t] for t in sorted(names)][:15],
    }
