"""Leave-platform-out evaluation behind `python -m core evaluate --cross-platform`: train on one platform's master
labels, test on another platform's, beside the in-platform figure of the same models.

Text models read two blocks: the title embedding and the title + description embedding ("text"); H&M's titles
are style names ("Harajuku"), its descriptions carry the signal, Myntra's titles are descriptive. Models: the
text-only model (the "text" block alone), early, late and attention fusion of the two blocks, and the TF-IDF +
linear SVM baseline on title + description. Products are scored at the master levels their label reaches (a
product mapped onto an inner node is scored on that node's levels only: the prediction is cut to its depth), and
only where the test label's node exists in the training platform's tree (the share of such products is reported
as coverage). In-platform figures use held-out products of the training platform: the hash split of model versions,
grouped by `group_key` (H&M: product_code, so colour variants of one product never straddle fit and test).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import select

from core.bench.evaluate import TfidfSvmBaseline
from core.classify.models import ModelSpec, fit_model, inputs
from core.classify.taxonomy import TaxonomyTree
from core.data.dataset import Catalogue
from core.data.split import fixed_split
from core.embed.choice import chosen_encoders
from core.embed.features import Features, embed_catalogue
from core.steps.catalogue import load_catalogue
from db.models import Product
from db.session import get_sessionmaker

TEXT_SPECS = (
    ModelSpec("text-only", "late", ("text",)),
    ModelSpec("early-fusion", "early", ("title", "text")),
    ModelSpec("late-fusion", "late", ("title", "text")),
    ModelSpec("attention-fusion", "attention", ("title", "text")),
)
BASELINE = "tfidf-svm (baseline)"
Log = Callable[[str], None]


def cut_score(truth: list[tuple[str, ...]], predicted: list[tuple[str, ...]]) -> dict[str, float]:
    """hF1 with each prediction cut to its truth's depth (so precision = recall), top-level and exact accuracy."""
    hits = total = 0
    top = exact = 0
    for t, p in zip(truth, predicted, strict=True):
        p = tuple(p)[: len(t)]
        shared = next((d for d in range(len(t)) if d >= len(p) or p[d] != t[d]), len(t))
        hits, total = hits + shared, total + len(t)
        top += bool(p) and p[0] == t[0]
        exact += p == tuple(t)
    n = max(len(truth), 1)
    return {"hF1": hits / max(total, 1), "top_level_accuracy": top / n, "exact_accuracy": exact / n, "n": len(truth)}


def reachable(tree: TaxonomyTree, labels: list[tuple[str, ...]]) -> np.ndarray:
    """`(N,) bool`: the label's node is in `tree` (a model trained on `tree` can place the product there)."""
    known = {p for level in tree.levels for p in level}
    return np.array([tuple(lab) in known for lab in labels], bool)


def group_split(cat: Catalogue, groups: list[str] | None, *, seed: int = 0):
    """The hash split of model versions, or (with `groups`) one whose test rows are whole groups."""
    if groups is None:
        return fixed_split(cat, seed=seed)
    keyed = Catalogue(
        np.asarray(cat.product_ids), external_ids=list(groups), platforms=list(cat.platforms), labels=list(cat.labels)
    )
    return fixed_split(keyed, seed=seed)


def _fit_all(train: Catalogue, feats: Features, fit_rows: np.ndarray, *, seed: int, log: Log, options: dict) -> dict[str, Any]:
    tree = TaxonomyTree.from_paths([train.labels[i] for i in fit_rows])
    models: dict[str, Any] = {}
    for spec in TEXT_SPECS:
        started = time.perf_counter()
        models[spec.name] = fit_model(spec, feats, train.labels, fit_rows, tree=tree, seed=seed, **options)
        log(f"  fitted {spec.name} in {time.perf_counter() - started:.0f}s")
    texts = [train.texts[i] for i in fit_rows]
    models[BASELINE] = TfidfSvmBaseline().fit(texts, [train.labels[i] for i in fit_rows])
    return {"tree": tree, "models": models}


def _predict(name: str, model, cat: Catalogue, feats: Features, rows: np.ndarray) -> list[tuple[str, ...]]:
    if name == BASELINE:
        return model.predict_paths([cat.texts[i] for i in rows])
    spec = next(s for s in TEXT_SPECS if s.name == name)
    X, masks = inputs(feats, spec.modalities, rows)
    return model.predict_paths(X, masks=masks)


def direction(
    train: tuple[str, Catalogue, Features, list[str] | None],
    test: tuple[str, Catalogue, Features],
    *,
    seed: int = 0,
    log: Log = print,
    options: dict | None = None,
) -> dict[str, Any]:
    """Fit every model on `train`'s fit rows; score on its own held-out rows and on every `test` product it can reach."""
    (a_name, a_cat, a_feats, a_groups), (b_name, b_cat, b_feats) = train, test
    leaf = np.flatnonzero(a_cat.trainable)
    a_cat, a_feats = a_cat.subset(leaf), a_feats.subset(leaf)
    split = group_split(a_cat, [a_groups[i] for i in leaf] if a_groups else None, seed=seed)
    log(f"{a_name} -> {b_name}: fit on {len(split.fit)} {a_name} products")
    fitted = _fit_all(a_cat, a_feats, split.fit, seed=seed, log=log, options=options or {})
    labelled = np.flatnonzero(b_cat.labelled)
    ok = reachable(fitted["tree"], [b_cat.labels[i] for i in labelled])
    rows = labelled[ok]
    out: dict[str, Any] = {
        "train": a_name,
        "test": b_name,
        "fit_products": int(len(split.fit)),
        "in_platform_test_products": int(len(split.test)),
        "cross_test_products": int(len(rows)),
        "coverage": float(ok.mean()) if len(ok) else 0.0,
        "models": {},
    }
    for name, model in fitted["models"].items():
        own = cut_score([a_cat.labels[i] for i in split.test], _predict(name, model, a_cat, a_feats, split.test))
        cross = cut_score([b_cat.labels[i] for i in rows], _predict(name, model, b_cat, b_feats, rows))
        out["models"][name] = {"in_platform": own, "cross_platform": cross}
        log(f"  {name}: in-platform hF1 {own['hF1']:.3f}, on {b_name} {cross['hF1']:.3f}")
    return out


def _platform_part(cat: Catalogue, platform: str, *, per_leaf: int | None, seed: int) -> Catalogue:
    rows = np.flatnonzero(np.array([p == platform for p in cat.platforms]) & cat.labelled)
    if per_leaf:
        rng = np.random.default_rng(seed)
        by_label: dict[tuple, list[int]] = {}
        for i in rows:
            by_label.setdefault(tuple(cat.labels[i]), []).append(int(i))
        rows = np.sort(
            [i for ids in by_label.values() for i in (ids if len(ids) <= per_leaf else rng.choice(ids, per_leaf, replace=False))]
        )
    return cat.subset(rows)


def run(
    db_url: str,
    platforms: tuple[str, str],
    *,
    group_keys: dict[str, str] | None = None,
    per_leaf: int | None = 100,
    seed: int = 0,
    log: Log = print,
    options: dict | None = None,
) -> dict[str, Any]:
    """Both directions between two platforms of the database (their products' effective master labels)."""
    started = time.perf_counter()
    with get_sessionmaker(db_url)() as s:
        cat = load_catalogue(s)
        attributes = dict(s.execute(select(Product.id, Product.attributes)).all())
    parts, groups = {}, {}
    for name in platforms:
        part = _platform_part(cat, name, per_leaf=per_leaf, seed=seed)
        if not len(part):
            raise ValueError(f"platform {name!r} has no labelled product (map its categories first)")
        parts[name] = part
        key = (group_keys or {}).get(name)
        groups[name] = [str((attributes.get(int(p)) or {}).get(key, p)) for p in part.product_ids] if key else None
    choice = chosen_encoders()
    feats = {n: embed_catalogue(p, text_encoder=choice.text, image_encoder=None, descriptions=True) for n, p in parts.items()}
    a, b = platforms
    result = {
        "platforms": {
            n: {"labelled_products": len(p), "per_leaf": per_leaf, "group_key": (group_keys or {}).get(n)}
            for n, p in parts.items()
        },
        "directions": [
            direction((a, parts[a], feats[a], groups[a]), (b, parts[b], feats[b]), seed=seed, log=log, options=options),
            direction((b, parts[b], feats[b], groups[b]), (a, parts[a], feats[a]), seed=seed, log=log, options=options),
        ],
        "seconds": round(time.perf_counter() - started, 1),
    }
    return result


def markdown(result: dict[str, Any]) -> str:
    """The cross-platform table: per direction and model, in-platform and cross-platform hF1."""
    lines = [
        "| train -> test | model | in-platform hF1 | cross-platform hF1 | cross exact | coverage |",
        "|---|---|---|---|---|---|",
    ]
    for d in result["directions"]:
        for name, m in d["models"].items():
            own, cross = m["in_platform"], m["cross_platform"]
            lines.append(
                f"| {d['train']} -> {d['test']} | {name} | {own['hF1']:.3f} | {cross['hF1']:.3f} | {cross['exact_accuracy']:.3f} "
                f"| {d['coverage']:.2f} ({cross['n']}) |"
            )
    return "\n".join(lines)
