"""`python -m core discover`: propose finer subcategories under a taxonomy node and store them as open proposals,
with the node's map and run record; `NodeSearch` finds similar products of a node for the Clusters page.

The discovery features (`core.discover.features`) are text only: two blocks from the chosen text encoder
(`core.embed.choice`), so the SimCLR head's block widths are that encoder's dim; photos are not used.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import select

from core.config import data_dir, google_taxonomy_file
from core.data.google_taxonomy import TaxonomyFileError, read_google_taxonomy
from core.discover.ann import AnnIndex
from core.discover.clustering import cluster_coherence
from core.discover.explain import explain_groups
from core.discover.features import colour_pattern, colour_vocabulary, feature_texts, make_pipeline, node_products
from core.discover.levels import Hierarchy
from core.discover.naming import ctfidf, name_key, nearest_names_by_embedding, top_terms, without_brand
from core.discover.pipeline import DiscoveryPipeline
from core.embed.cache import cached_embed
from core.embed.choice import EncoderChoice, chosen_encoders
from core.embed.encoders import Encoder, get_encoder
from core.embed.features import embed_catalogue
from core.keys import content_key
from core.runs import RunRecord
from core.steps.catalogue import catalogue_and_brands
from core.steps.maps import load_map, map_file, record_pipeline_stages, save_map, slug_for
from db import proposals as props
from db.models import Product, TaxonomyNode
from db.repo import node_by_path
from db.session import get_sessionmaker, transaction

Log = Callable[[str], None]
MIN_PRODUCTS = 50
# The tree over a run's clusters (core.discover.levels.Hierarchy), chosen on held-out nodes: BENCHMARKS.md
HIERARCHY = {"linkage": "average", "represent": "combined", "embedding_weight": 0.3, "default": "gap", "k_min": 4, "k_max": 12}
N_ALTERNATIVES = 3
DESCRIPTION_CHARS = 300  # the start of a description that discovery reads (as `load_catalogue` keeps it)


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


# the last stage that runs on every core (ONNX Runtime's threads); after it discovery trains and projects on one thread
# (core.steps.fill starts the other steps beside it then)
LAST_PARALLEL_STAGES = ("embed title + description", "embed photos")


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
    X, encoder = _features(factory, cat, rows, photos_only=photos_only, choice=choice, device=device, progress=progress)
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
    titles = None if photos_only else [cat.titles[i] for i in rows]
    node = NodeRun(node_path, product_ids, X, titles, [brands[i] for i in rows], names)
    hier = node_tree(pipe, node, seed=seed, descriptions=None if photos_only else [cat.descriptions[i] for i in rows])
    record.stage("tree")
    _describe_run(record, pipe, node_path=node_path, product_ids=product_ids, X=X, encoder=encoder)
    run_key = time.strftime("%Y%m%d-%H%M%S")
    alternatives = None if photos_only else name_alternatives(factory, encoder, device=device)
    levels = all_levels(LeafRun.of(pipe), hier, node, alternatives=alternatives, text_dim=encoder.dim)
    record.stage("levels")
    with transaction(factory) as s:
        n = props.replace_open_proposals(s, parent_node_id=node_id, run_key=run_key, clusters=levels[str(hier.default_k_)])
    record.stage("store")
    record.outputs.update(proposals=n, default_k=int(hier.default_k_), leaf_clusters=int(hier.tree_.n_leaves))
    if pipe.coords_ is not None:  # the levels serve the map's tree: kept only beside a map
        save_levels(slug_for(node_id), run_key, levels)
    _save_node_map(node_id, node_path, run_key, pipe, product_ids, record, tree=hier.as_dict())
    log(_summary(node_path, len(rows), n, hier, pipe, encoder, photos_only=photos_only))
    return n


def _summary(node_path: str, n_rows: int, n: int, hier: Hierarchy, pipe, encoder: Encoder, *, photos_only: bool) -> str:
    if photos_only:
        features = f"photos, {encoder.id} ({encoder.dim}-d); the products have no titles"
    else:
        features = f"text encoder {encoder.id} ({encoder.dim}-d), photos not used"
    return (
        f"{node_path}: {n_rows} products -> {n} proposals ({hier.tree_.n_leaves} clusters in a tree, default level "
        f"{hier.default_k_}; {(pipe.labels_ < 0).mean():.1%} unassigned) in {sum(pipe.timings_.values()):.0f}s; "
        f"features: {features}"
    )


def node_tree(pipe: DiscoveryPipeline, node: NodeRun, *, seed: int = 0, descriptions: list[str] | None = None) -> Hierarchy:
    """The named tree (`HIERARCHY` settings) over the clusters of a fitted pipeline, in the space of its head; the
    products' `descriptions` (`short_description`) name the groups whose titles name no type."""
    hier = Hierarchy(node_name=node.path.split(" > ")[-1], taken=node.children, seed=seed, **HIERARCHY)
    return hier.fit(pipe.embedding_, pipe.labels_, node.titles, brands=node.brands, descriptions=descriptions)


def short_description(text: str | None) -> str:
    """A description as discovery reads it (`core.steps.catalogue.load_catalogue`'s: spaces collapsed, its start)."""
    return " ".join((text or "").split())[:DESCRIPTION_CHARS]


class LevelSource(NamedTuple):
    """What every level of a node's discovery tree is built from: read once per run (`level_source`), then each level
    costs only `level_clusters`."""

    run_key: str
    leaves: LeafRun
    hier: Hierarchy
    node: NodeRun
    alternatives: dict[str, Any]
    text_dim: int


def level_source(db_url: str, node_id: int, *, choice: EncoderChoice | None = None, device=None) -> LevelSource:
    """The node's last discovery run as its map left it (leaves, 2-D view, tree with its stored levels), with the
    products' features, titles and brands and the names a proposal may be matched to. ValueError when the node has
    no discovery map with a tree."""
    factory = get_sessionmaker(db_url)
    saved = load_map(slug_for(node_id))
    tree = (saved["meta"].get("tree") or {}) if saved is not None else {}
    if not (tree.get("levels") and "directions" in tree):
        raise ValueError("this node has no discovery run with a tree: run `python -m core discover` first")
    _, children = node_and_children(factory, saved["meta"].get("node") or "")
    product_ids, labels = saved["product_ids"], saved["clusters"]
    with factory() as s:
        columns = (Product.id, Product.title, Product.brand, Product.description)
        rows = {r.id: r for r in s.execute(select(*columns).where(Product.id.in_(product_ids.tolist())))}
    titles, brands = [rows[int(p)].title for p in product_ids], [rows[int(p)].brand for p in product_ids]
    descriptions = [short_description(rows[int(p)].description) for p in product_ids]
    encoder = node_encoder(choice)
    X = node_features(factory, product_ids, encoder=encoder, device=device)
    return LevelSource(
        run_key=str(saved["meta"].get("run_key", "")),
        leaves=LeafRun(labels, saved["xy"], *cluster_coherence(X, labels)),
        hier=Hierarchy.restore(tree, labels, titles, brands=brands, descriptions=descriptions),
        node=NodeRun(saved["meta"].get("node") or "", product_ids, X, titles, brands, children),
        alternatives=name_alternatives(factory, encoder, device=device),
        text_dim=encoder.dim,
    )


def store_level(db_url: str, node_path: str, k: int, *, choice: EncoderChoice | None = None, device=None) -> int:
    """Store the proposals of the level of `k` groups of the node's last discovery run (its map's tree) as the node's
    open proposals, without re-running discovery (read from the run's precomputed levels, else built from its tree);
    returns how many. ValueError when the node has no discovery map."""
    factory = get_sessionmaker(db_url)
    node_id, _ = node_and_children(factory, node_path)
    saved = load_map(slug_for(node_id))
    run_key = str(saved["meta"].get("run_key", "")) if saved is not None else ""
    clusters = stored_level(slug_for(node_id), run_key, k) if saved is not None else None
    if clusters is None:
        try:
            src = level_source(db_url, node_id, choice=choice, device=device)
        except ValueError:
            raise ValueError(f"{node_path!r} has no discovery run with a tree: run `python -m core discover` first") from None
        clusters = level_clusters(src.leaves, src.hier, src.node, k=k, alternatives=src.alternatives, text_dim=src.text_dim)
    with transaction(factory) as s:
        return props.replace_open_proposals(s, parent_node_id=node_id, run_key=f"{run_key}:k{k}", clusters=clusters)


def levels_dir(slug: str) -> Path:
    """The proposals of every level of a node map's tree as its discovery run built them, one file per level:
    data/maps/<slug>.levels/<k>.json.gz."""
    return map_file(slug).with_suffix(".levels")


def level_file(slug: str, k: int) -> Path:
    return levels_dir(slug) / f"{int(k)}.json.gz"


def all_levels(pipe: LeafRun, hier: Hierarchy, node: NodeRun, *, alternatives=None, text_dim: int | None = None) -> dict:
    """{str(k): `level_clusters` at k} for every level the tree's map holds (1 .. min(k_max, leaves), as
    `Hierarchy.as_dict`) and the default level: what "Show level k" then reads instead of building it."""
    ks = sorted(set(range(1, min(hier.k_max, hier.tree_.n_leaves) + 1)) | {int(hier.default_k_)})
    return {str(k): level_clusters(pipe, hier, node, k=k, alternatives=alternatives, text_dim=text_dim) for k in ks}


def save_levels(slug: str, run_key: str, levels: dict) -> Path:
    """Write a run's precomputed levels (`all_levels`) beside its map, each tagged with the run's key (an earlier
    run's are removed first)."""
    folder = levels_dir(slug)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.json.gz"):
        old.unlink()
    for k, clusters in levels.items():
        tmp = folder / f"{int(k)}.tmp"
        tmp.write_bytes(gzip.compress(json.dumps({"run_key": run_key, "clusters": clusters}).encode(), compresslevel=5))
        tmp.replace(level_file(slug, int(k)))
    return folder


def stored_level(slug: str, run_key: str, k: int) -> list[dict] | None:
    """The precomputed proposals of level `k` of the map's run `run_key`, or None when that run stored none (an older
    run, or a file left by another run)."""
    try:
        data = json.loads(gzip.decompress(level_file(slug, k).read_bytes()))
    except (OSError, ValueError):
        return None
    return data.get("clusters") if isinstance(data, dict) and data.get("run_key") == run_key else None


def stored_levels(slug: str, run_key: str) -> dict[str, list[dict]]:
    """{str(k): proposals} of every level the map's run `run_key` stored ({} for a run that stored none)."""
    ks = sorted(int(p.name.split(".")[0]) for p in levels_dir(slug).glob("*.json.gz"))
    found = {str(k): stored_level(slug, run_key, k) for k in ks}
    return {k: v for k, v in found.items() if v is not None}


def _features(factory, cat, rows, *, photos_only: bool, choice, device, progress) -> tuple[np.ndarray, Encoder]:
    """(the node's discovery features, their encoder): photo vectors when its products have no titles, else the two
    text blocks of `node_features`."""
    if photos_only:
        return node_photo_features(cat, rows, choice or chosen_encoders(), device=device, progress=progress)
    encoder = node_encoder(choice)
    return node_features(factory, cat.product_ids[rows], encoder=encoder, device=device, progress=progress), encoder


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
        "unclear_groups": len(pipe.clusterer_.unclear_),
    }


def _save_node_map(
    node_id: int, node_path: str, run_key: str, pipe: DiscoveryPipeline, product_ids, record: RunRecord, *, tree: dict
) -> None:
    """Every product of the node on the Clusters page, not only the clustered ones (when the pipeline made a 2-D view);
    its "clusters" are the tree's leaves, and the meta's "tree" (`Hierarchy.as_dict`) maps them to every level."""
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
            "tree": tree,
        },
        run=record,
    )


class LeafRun(NamedTuple):
    """The tree's leaves as a run left them: each product's cluster (-1 unassigned), its 2-D map position (or None),
    and each cluster's coherence."""

    labels_: np.ndarray
    coords_: np.ndarray | None
    cluster_ids: np.ndarray
    coherence: np.ndarray

    @classmethod
    def of(cls, pipe: DiscoveryPipeline) -> LeafRun:
        return cls(pipe.labels_, pipe.coords_, pipe.clusterer_.cluster_ids_, pipe.clusterer_.coherence_)


class NodeRun(NamedTuple):
    """What a discovery run read of its node: products (ids, feature rows, titles, brands) and existing children."""

    path: str
    product_ids: np.ndarray
    X: np.ndarray
    titles: list[str] | None
    brands: list[str | None]
    children: list[str]


def name_alternatives(factory, encoder: Encoder, *, device=None) -> dict[str, Any]:
    """The names a proposal's name may be matched to: every active category of the master taxonomy (source
    "taxonomy") and every category of the Google Product Taxonomy file when it is there (source "google"), each with
    its path and its vector from `encoder` (cached by text)."""
    with factory() as s:
        master = [
            (name, path)
            for name, path in s.execute(select(TaxonomyNode.name, TaxonomyNode.path).where(TaxonomyNode.status == "active"))
        ]
    entries = [{"name": n, "path": p, "source": "taxonomy"} for n, p in master]
    try:
        google = read_google_taxonomy(google_taxonomy_file())
    except TaxonomyFileError:
        google = []
    entries += [{"name": c.path[-1], "path": " > ".join(c.path), "source": "google"} for c in google]
    vectors = (
        cached_embed(encoder, [e["name"] for e in entries], device=device).vectors if entries else np.zeros((0, encoder.dim))
    )
    return {"entries": entries, "vectors": np.asarray(vectors, dtype=np.float32)}


def nearest_alternatives(centroids: np.ndarray, alternatives: dict[str, Any] | None, names: list[str]) -> list[list[dict]]:
    """Per group, the `N_ALTERNATIVES` nearest distinct names of each source (cosine of the group's title centroid to
    the name's vector), the group's own name left out (a name at several paths counts once, at its nearest)."""
    if not alternatives or not alternatives["entries"] or not len(centroids):
        return [[] for _ in names]
    entries = alternatives["entries"]
    out = []
    for i, name in enumerate(names):
        picked = []
        for source in ("taxonomy", "google"):
            idx = [j for j, e in enumerate(entries) if e["source"] == source and name_key(e["name"]) != name_key(name)]
            if not idx:
                continue
            near = nearest_names_by_embedding(
                centroids[i : i + 1], alternatives["vectors"][idx], [str(j) for j in idx], top_n=4 * N_ALTERNATIVES
            )[0]
            seen: set[str] = set()
            for j, score in near:
                key = name_key(entries[int(j)]["name"])
                if key not in seen and len(seen) < N_ALTERNATIVES:
                    seen.add(key)
                    picked.append({**entries[int(j)], "score": round(score, 3)})
        out.append(picked)
    return out


def level_clusters(
    pipe: LeafRun,
    hier: Hierarchy,
    node: NodeRun,
    *,
    k: int | None = None,
    alternatives=None,
    text_dim: int | None = None,
) -> list[dict[str, Any]]:
    """The proposals of one level of the tree (default: its default level) as `db.proposals.replace_open_proposals`
    takes them; what each holds is listed in `cluster_dict`."""
    groups = hier.level(k)
    lookup = {leaf: g for g, group in enumerate(groups) for leaf in group["leaves"]}
    level = np.array([lookup.get(int(v), -1) for v in pipe.labels_], dtype=int)
    titles = node.titles or [""] * len(level)
    terms = _level_terms(titles, node.brands, level) if node.titles else {}
    explained = explain_groups(node.X, level, titles, top_terms=terms)
    title_block = node.X[:, : text_dim or node.X.shape[1]]
    centroids = np.stack([title_block[level == g].mean(axis=0) for g in range(len(groups))]) if groups else np.zeros((0, 1))
    near = nearest_alternatives(centroids, alternatives, [g["name"] for g in groups])
    return [cluster_dict(pipe, hier, node, g, group, level, explained, near[g], groups) for g, group in enumerate(groups)]


def _level_terms(titles: list[str], brands: list[str | None], level: np.ndarray) -> dict[int, list[str]]:
    """{group: its top c-TF-IDF terms} over the titles (each without its brand) of one level."""
    if not (level >= 0).any():
        return {}
    ids, weights, vocab = ctfidf([without_brand(t, b) for t, b in zip(titles, brands)], level)
    return {int(g): t for g, t in zip(ids, top_terms(weights, vocab, top_n=10))}


def cluster_dict(
    pipe: LeafRun, hier: Hierarchy, node: NodeRun, g: int, group: dict, level, explained: dict, near: list, groups
) -> dict:
    """One proposal: name, suggested names (own candidates, then the nearest master-taxonomy and Google names),
    members, coords and, in `scores`: size, coherence, top terms, the tree level it belongs to ("level"), its
    "parts" (near-duplicates shown as one) and "subgroups" (each {"node", "name", "leaves", "size", "members"}), the
    nearest existing names ("alternatives": {"name", "path", "source", "score"}), the existing child its best name
    would repeat ("existing_child", else None) and its "explanation"."""
    members = np.flatnonzero(level == g)
    ids, coords = node.product_ids, pipe.coords_
    expl = explained.get(g, {})
    coherence = pipe.coherence[np.isin(pipe.cluster_ids, group["leaves"])]
    return {
        "name": group["name"],
        "suggested_names": [group["name"], *group["alternatives"], *(a["name"] for a in near)],
        "members": ids[members].tolist(),
        "coords": coords[members].round(4).tolist() if coords is not None else [],
        "scores": {
            "size": int(len(members)),
            "coherence": round(float(coherence.mean()), 4) if len(coherence) else None,
            "top_terms": expl.get("top_terms", [])[:10],
            "level": {
                "k": hier_k(hier, groups),
                "default_k": int(hier.default_k_),
                "tree_nodes": group["nodes"],
                "leaves": group["leaves"],
            },
            "parts": [_with_members(pipe, ids, part) for part in group["parts"]],
            "subgroups": [_with_members(pipe, ids, sub) for t in group["nodes"] for sub in hier.subgroups(t)],
            "alternatives": near,
            "existing_child": group.get("existing"),
            "explanation": _explanation(expl, node, groups),
        },
    }


def hier_k(hier: Hierarchy, groups: list[dict]) -> int:
    """The tree level (number of tree groups) that `groups` show: merged near-duplicates count once per tree node."""
    return int(sum(len(g["nodes"]) for g in groups))


def _with_members(pipe: LeafRun, ids: np.ndarray, entry: dict) -> dict:
    return {**entry, "members": ids[np.isin(pipe.labels_, entry["leaves"])].tolist()}


def _explanation(expl: dict, node: NodeRun, groups: list[dict]) -> dict:
    """The explanation of `core.discover.explain.explain_groups` with products as {"id", "title"} and the nearest
    sibling by name."""
    titles = node.titles or [""] * len(node.product_ids)
    sibling = expl.get("nearest_sibling")

    def shown(positions) -> list[dict]:
        return [{"id": int(node.product_ids[i]), "title": titles[i]} for i in positions]

    return {
        "typical": shown(expl.get("typical", [])),
        "doubtful": shown(expl.get("doubtful", [])),
        "nearest_sibling": groups[sibling]["name"] if sibling is not None else None,
        "more_here": expl.get("more_here", []),
        "more_there": expl.get("more_there", []),
    }


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
