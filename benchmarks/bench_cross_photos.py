"""Leave-platform-out on photos: a model trained on Myntra's product photos places Fashion-MNIST's (grey, 28x28).

    python -m benchmarks.bench_cross_photos --fmnist-dir DATA_DIR/fashion-mnist --out benchmarks/results/cross_photos.json

Myntra: every product of the shared catalogue with a photo (`CATALOG_DIR`), its 3-level path as label. Fashion-MNIST:
the catalogue `python -m core ingest --fashion-mnist` writes (its 10,000 test images), truth from the hand-written
tests/data/fmnist_reference_mapping.csv (a class's master node, a leaf or a common ancestor; predictions are cut to
its depth). EfficientNet-Lite0 embeddings through the embedding cache (`EMBED_CACHE`, default DATA_DIR/embeddings).

Models: the image-only hierarchical model of the classifier and a logistic regression on the same embeddings, each
trained (a) on the photos as they are and (b) with simple domain-shift handling: the training photos made grey and
down-sampled to 28x28 (then the encoder's own resizing) like the target platform's; plus (c) = (b) with test-time
augmentation (each Fashion-MNIST image and its mirror image, probabilities averaged). The in-platform figure is
Myntra's held-out photos (hash split).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform as platform_mod
import time
from datetime import date
from pathlib import Path

import numpy as np

from core.bench.cross_platform import cut_score
from core.classify.models import ModelSpec, fit_model
from core.classify.taxonomy import TaxonomyTree
from core.config import catalog_dir, data_dir
from core.data.dataset import Catalogue
from core.data.split import fixed_split
from core.embed.cache import cached_embed
from core.embed.encoders import get_encoder

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "fmnist_reference_mapping.csv"
SPEC = ModelSpec("image-only", "late", ("image",))


def shifted(paths: list[str], folder: Path, *, mirror: bool = False, shrink: bool = True) -> list[str]:
    """Grey (and 28x28, or mirrored) copies of the photos under `folder` (written once); their paths."""
    from PIL import Image, ImageOps

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for path in paths:
        target = folder / (Path(path).stem + ("-m" if mirror else "") + ".png")
        if not target.exists():
            with Image.open(path) as img:
                img = img.convert("L")
                if shrink:
                    img = ImageOps.pad(img, (28, 28), color=255)
                if mirror:
                    img = ImageOps.mirror(img)
                img.save(target)
        out.append(str(target))
    return out


def embed(paths: list[str], cache: Path) -> np.ndarray:
    return cached_embed(get_encoder("efficientnet-lite0"), paths, cache_dir=cache, batch_size=64).vectors


def myntra(folder: Path):
    import pandas as pd

    df = pd.read_parquet(folder / "products.parquet")
    df = df[df.image != ""]
    paths = [str(folder / p) for p in df.image]
    labels = [tuple(x) for x in df[["master_category", "sub_category", "article_type"]].itertuples(index=False)]
    cat = Catalogue(np.arange(len(df)), external_ids=df.id.astype(str).tolist(), platforms=["myntra"] * len(df), labels=labels)
    return cat, paths


def fmnist(folder: Path):
    import pandas as pd

    df = pd.read_parquet(folder / "products.parquet")
    df = df[df.split == "test"]
    with open(REFERENCE, encoding="utf-8") as f:
        ref = {r["fmnist_class"]: tuple(r["master_path"].split(" > ")) for r in csv.DictReader(f)}
    return [str(folder / p) for p in df.image], [ref[c] for c in df.category]


def fit_both(X: np.ndarray, labels: list, rows: np.ndarray, tree: TaxonomyTree):
    from sklearn.linear_model import LogisticRegression

    neural = fit_model(SPEC, _features(X), labels, rows, tree=tree, seed=0)
    names = [" > ".join(p) for p in labels]
    flat = LogisticRegression(max_iter=300, C=1.0).fit(X[rows], [names[i] for i in rows])
    return neural, flat


class _features:  # the minimal Features shape fit_model reads: blocks and masks
    def __init__(self, X):
        self.blocks, self.masks, self.product_ids = {"image": X}, {"image": np.ones(len(X), bool)}, np.arange(len(X))


def predict(models, X: np.ndarray, X_mirror: np.ndarray | None = None) -> dict[str, list[tuple[str, ...]]]:
    neural, flat = models
    masks = {"image": np.ones(len(X), bool)}
    out = {"image-only model": neural.predict_paths({"image": X}, masks=masks)}
    proba = flat.predict_proba(X) if X_mirror is None else (flat.predict_proba(X) + flat.predict_proba(X_mirror)) / 2
    out["logistic regression"] = [tuple(flat.classes_[i].split(" > ")) for i in proba.argmax(1)]
    if X_mirror is not None:
        cond = [
            (a + b) / 2
            for a, b in zip(
                neural.predict_proba({"image": X}, masks=masks),
                neural.predict_proba({"image": X_mirror}, masks=masks),
                strict=True,
            )
        ]
        leaf = neural.tree_.leaf_paths()
        deepest = (leaf >= 0).sum(1) - 1  # a leaf's marginal probability is its deepest level's
        score = np.stack([cond[d][:, leaf[j, d]] for j, d in enumerate(deepest)], axis=1)
        out["image-only model"] = neural.tree_.decode(leaf[score.argmax(1)])
    return out


def run(fm_folder: Path, cache: Path, work: Path) -> dict:
    started = time.perf_counter()
    cat, paths = myntra(catalog_dir())
    split = fixed_split(cat, seed=0)
    tree = TaxonomyTree.from_paths([cat.labels[i] for i in split.fit])
    fm_paths, fm_truth = fmnist(fm_folder)
    X = {"as they are": embed(paths, cache), "grey 28x28": embed(shifted(paths, work / "myntra-grey28"), cache)}
    F = embed(fm_paths, cache)
    F_mirror = embed(shifted(fm_paths, work / "fmnist-mirror", mirror=True, shrink=False), cache)
    own_truth = [cat.labels[i] for i in split.test]
    result: dict = {"myntra_photos": len(paths), "fit": int(len(split.fit)), "fmnist_test": len(fm_paths), "rows": []}
    for variant, Xv in X.items():
        models = fit_both(Xv, cat.labels, split.fit, tree)
        own = predict(models, Xv[split.test])
        cross = predict(models, F)
        tta = predict(models, F, F_mirror) if variant == "grey 28x28" else None
        for name in own:
            row = {
                "training photos": variant,
                "model": name,
                "in_platform": cut_score(own_truth, own[name]),
                "fmnist": cut_score(fm_truth, cross[name]),
            }
            if tta:
                row["fmnist_tta"] = cut_score(fm_truth, tta[name])
            result["rows"].append(row)
            print(variant, name, {k: round(v["hF1"], 3) for k, v in row.items() if isinstance(v, dict)}, flush=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fmnist-dir", default=str(data_dir() / "fashion-mnist"))
    parser.add_argument("--out", default="benchmarks/results/cross_photos.json")
    args = parser.parse_args()
    cache = Path(os.environ.get("EMBED_CACHE", data_dir() / "embeddings"))
    result = run(Path(args.fmnist_dir), cache, data_dir() / "cross-photos")
    result.update(
        date=date.today().isoformat(),
        machine=f"{platform_mod.machine()}, {os.cpu_count()} cores, CPU",
        command="python -m benchmarks.bench_cross_photos",
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
