"""`python -m core mapping suggest|export`: suggest where each category of a platform goes in the master taxonomy
(`core.mapping.suggest`), store the suggestions (`db.mappings`), and export the mapping as CSV.

The signals come from the database and the encoders: the active model's stored predictions of the category's
products (the vote), the text encoder on category and node names, and the mean text embedding of a seeded sample of
each category's products against that of each master node's labelled products (photo embeddings for products
without text). Sampling keeps this fast on large catalogues: `sample` products per category and per master leaf.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from core.config import database_url
from core.data.dataset import product_text
from core.data.export import safe_cell
from core.embed.cache import cached_embed
from core.embed.choice import EncoderChoice, chosen_encoders
from core.embed.encoders import get_encoder
from core.mapping.suggest import DEFAULT_WEIGHTS, NONE, Signals, Suggestion, Weights, cosine, specific_vote, suggest
from db import mappings
from db import predictions as preds
from db.models import PATH_SEP, Platform, PlatformCategory, Product, TaxonomyNode
from db.repo import effective_labels_subquery, image_location
from db.session import get_sessionmaker, transaction

Log = Callable[[str], None]
SAMPLE = 100


@dataclass
class MappingProblem:
    """The categories of one platform and the candidate master nodes, with the signals between them."""

    platform: str
    category_ids: list[int]
    categories: list[tuple[str, ...]]
    products: list[int]  # products per category
    node_ids: list[int]
    nodes: list[tuple[str, ...]]
    signals: Signals
    notes: list[str]


def _categories(s, platform: str) -> tuple[list[int], list[tuple[str, ...]], list[int]]:
    plat = mappings.get_platform(s, platform)
    rows = s.execute(
        select(PlatformCategory.id, PlatformCategory.path, func.count(Product.id))
        .join(Product, Product.platform_category_id == PlatformCategory.id)
        .where(PlatformCategory.platform_id == plat.id)
        .group_by(PlatformCategory.id, PlatformCategory.path)
        .order_by(PlatformCategory.path)
    ).all()
    return [r[0] for r in rows], [tuple(r[1].split(PATH_SEP)) for r in rows], [r[2] for r in rows]


def _sample(ids: list[int], n: int, seed: int) -> list[int]:
    if len(ids) <= n:
        return ids
    return sorted(np.random.default_rng(seed).choice(ids, size=n, replace=False).tolist())


def _members(s, category_ids: list[int], *, sample: int, seed: int) -> dict[int, list[int]]:
    rows = s.execute(
        select(Product.platform_category_id, Product.id)
        .where(Product.platform_category_id.in_(category_ids))
        .order_by(Product.id)
    )
    out: dict[int, list[int]] = defaultdict(list)
    for category, pid in rows:
        out[category].append(pid)
    return {c: _sample(ids, sample, seed) for c, ids in out.items()}


def node_members(s, *, sample: int, seed: int, exclude_platform_id: int | None = None) -> dict[int, list[int]]:
    """A sample of the products labelled at each master node (effective labels), keyed by node id.

    `exclude_platform_id` leaves out one platform's products: those of the platform being mapped, whose mapping
    labels would otherwise feed its own suggestions back (a confirmed mapping, right or wrong, would vouch for
    itself, and a benchmark run after the reference was confirmed would score the reference against itself)."""
    eff = effective_labels_subquery()
    stmt = select(eff.c.node_id, eff.c.product_id).order_by(eff.c.product_id)
    if exclude_platform_id is not None:
        stmt = stmt.join(Product, Product.id == eff.c.product_id).where(Product.platform_id != exclude_platform_id)
    out: dict[int, list[int]] = defaultdict(list)
    for node_id, pid in s.execute(stmt):
        out[node_id].append(pid)
    return {n: _sample(ids, sample, seed) for n, ids in out.items()}


def _votes(s, members: dict[int, list[int]], category_ids: list[int], paths: dict[int, tuple[str, ...]]) -> list[Counter]:
    """Per category: Counter of the deepest predicted path of its sampled products (active model)."""
    version = preds.active_model_version(s)
    if version is None:
        return [Counter() for _ in category_ids]
    deepest = preds.deepest_predictions(s, model_version_id=version.id)
    return [Counter(paths[deepest[p]] for p in members.get(c, []) if p in deepest) for c in category_ids]


def product_inputs(s, product_ids: set[int]) -> dict[int, tuple[str, str | None]]:
    """{product id: (title + description text, photo file or None)}."""
    rows = s.execute(
        select(Product.id, Product.title, Product.description, Product.image, Product.image_status, Platform.root)
        .join(Platform, Platform.id == Product.platform_id)
        .where(Product.id.in_(list(product_ids)))
    )
    return {
        r.id: (product_text(r.title, r.description), image_location(r.root, r.image) if r.image_status == "ok" else None)
        for r in rows
    }


def centroids(groups: list[list[int]], inputs, choice: EncoderChoice) -> dict[str, np.ndarray]:
    """Per modality, `(G, D)` mean embedding of each group's products (zero rows where a group has none)."""
    pids = sorted({p for g in groups for p in g})
    out = {}
    for modality, name, pick in (("text", choice.text, 0), ("image", choice.image, 1)):
        if not name:
            continue
        have = [p for p in pids if inputs[p][pick]]
        if not have:
            continue
        encoder = get_encoder(name)
        vectors = cached_embed(encoder, [inputs[p][pick] for p in have], batch_size=64).vectors
        row = {p: i for i, p in enumerate(have)}
        block = np.zeros((len(groups), encoder.dim), np.float32)
        for g, members in enumerate(groups):
            idx = [row[p] for p in members if p in row]
            if idx:
                block[g] = vectors[idx].mean(axis=0)
        out[modality] = block
    return out


def name_signal(categories: list[tuple[str, ...]], nodes: list[tuple[str, ...]], choice: EncoderChoice) -> np.ndarray:
    encoder = get_encoder(choice.text)
    embed = lambda texts: cached_embed(encoder, texts, batch_size=64).vectors
    full = cosine(embed([PATH_SEP.join(c) for c in categories]), embed([PATH_SEP.join(n) for n in nodes]))
    last = cosine(embed([c[-1] for c in categories]), embed([n[-1] for n in nodes]))
    return (full + last) / 2


def _centroid_signal(cat_c: dict[str, np.ndarray], node_c: dict[str, np.ndarray], n_cat: int, n_node: int) -> np.ndarray:
    """Text centroid similarity where the category has text; photo centroid similarity where it has only photos."""
    out = np.zeros((n_cat, n_node), np.float32)
    for modality in ("image", "text"):  # text last: it wins where both exist
        if modality in cat_c and modality in node_c:
            has = np.linalg.norm(cat_c[modality], axis=1) > 0
            out[has] = cosine(cat_c[modality][has], node_c[modality])
    return out


def mapping_problem(db_url: str, platform: str, *, sample: int = SAMPLE, seed: int = 0, log: Log = print) -> MappingProblem:
    """The signals between `platform`'s categories and the active master nodes."""
    factory = get_sessionmaker(db_url)
    choice = chosen_encoders()
    notes: list[str] = []
    with factory() as s:
        category_ids, categories, counts = _categories(s, platform)
        nodes = s.execute(
            select(TaxonomyNode.id, TaxonomyNode.path).where(TaxonomyNode.status == "active").order_by(TaxonomyNode.path)
        ).all()
        paths = {n.id: tuple(n.path.split(PATH_SEP)) for n in s.execute(select(TaxonomyNode.id, TaxonomyNode.path))}
        members = _members(s, category_ids, sample=sample, seed=seed)
        labelled = node_members(s, sample=sample, seed=seed, exclude_platform_id=mappings.get_platform(s, platform).id)
        votes = _votes(s, members, category_ids, paths)
        inputs = product_inputs(s, {p for ids in (*members.values(), *labelled.values()) for p in ids})
    if not category_ids:
        raise ValueError(f"platform {platform!r} has no product in any category: nothing to map")
    node_ids, node_paths = [n.id for n in nodes], [paths[n.id] for n in nodes]
    if not any(votes):
        notes.append("no stored predictions of these products: the vote signal is empty (run `python -m core predict`)")
    below = subtree_members(node_ids, node_paths, labelled, paths)
    log(f"{platform}: {len(category_ids)} categories, {len(node_ids)} master nodes; embedding names and samples")
    signals = Signals(
        vote=specific_vote(votes, node_paths),
        name=name_signal(categories, node_paths, choice),
        centroid=_centroid_signal(
            centroids([members.get(c, []) for c in category_ids], inputs, choice),
            centroids(below, inputs, choice),
            len(category_ids),
            len(node_ids),
        ),
    )
    return MappingProblem(platform, category_ids, categories, counts, node_ids, node_paths, signals, notes)


def subtree_members(node_ids, node_paths, labelled, paths) -> list[list[int]]:
    """Per candidate node: the sampled products labelled at it or below it."""
    index = {path: k for k, path in enumerate(node_paths)}
    out: list[list[int]] = [[] for _ in node_ids]
    for node_id, pids in labelled.items():
        path = paths.get(node_id)
        for depth in range(1, len(path) + 1 if path else 0):
            k = index.get(path[:depth])
            if k is not None:
                out[k].extend(pids)
    return out


def suggestion_rows(problem: MappingProblem, suggestions: list[Suggestion]) -> list[dict[str, Any]]:
    """The suggestions in the shape `db.mappings.store_suggestions` stores (candidates with their signals)."""
    rows = []
    for c, sug in enumerate(suggestions):
        candidates = [
            {
                "node_id": problem.node_ids[k] if k != NONE else None,
                "path": PATH_SEP.join(problem.nodes[k]) if k != NONE else None,
                "confidence": round(conf, 4),
                **{name: round(v, 4) for name, v in detail.items()},
            }
            for k, conf, detail in zip(sug.ranking, sug.confidence, sug.signals, strict=True)
        ]
        top = candidates[0]
        rows.append(
            {
                "category_id": problem.category_ids[c],
                "path": PATH_SEP.join(problem.categories[c]),
                "products": problem.products[c],
                "node_id": top["node_id"],
                "master_path": top["path"],
                "confidence": top["confidence"],
                "ambiguous": sug.ambiguous,
                "candidates": candidates,
            }
        )
    return rows


def suggest_mappings(
    db_url: str | None,
    platform: str,
    *,
    weights: Weights = DEFAULT_WEIGHTS,
    store: bool = True,
    log: Log = print,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Suggest (and store) a master node, or "no master equivalent", for every category of `platform`.

    `progress(stage, done, total)` is told when the signals are being computed and when they are stored."""
    db_url = db_url or database_url()
    if progress:
        progress("suggest", 0, 2)
    problem = mapping_problem(db_url, platform, log=log)
    if progress:
        progress("suggest", 1, 2)
    for note in problem.notes:
        log(f"note: {note}")
    rows = suggestion_rows(problem, suggest(problem.signals, weights))
    if store:
        with transaction(get_sessionmaker(db_url)) as s:
            counts = mappings.store_suggestions(s, platform=platform, suggestions=rows, actor="mapping suggest")
        log(f"stored: {counts['new']} new, {counts['updated']} updated, {counts['kept']} already decided (kept)")
    if progress:
        progress("suggest", 2, 2)
    return rows


def export_mappings(db_url: str | None, platform: str, out: str | Path) -> int:
    """Write platform path, master path, status, confidence (and products, origin) per category as CSV."""
    with get_sessionmaker(db_url or database_url())() as s:
        rows = mappings.category_table(s, platform=platform)
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["platform_path", "master_path", "status", "confidence", "products", "origin"])
        for r in rows:
            conf = "" if r["confidence"] is None else f"{r['confidence']:.4f}"
            cells = [r["path"], r["master_path"] or "", r["status"], conf, r["products"], r["origin"] or ""]
            writer.writerow([safe_cell(c) for c in cells])
    return len(rows)
