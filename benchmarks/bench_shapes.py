"""Catalogue shapes the default catalogue does not have: photos only (Fashion-MNIST) and text only (the default
catalogue with its photos left out), each against a plain baseline measured in the same run.

    python -m benchmarks.bench_shapes --part fashion-mnist [--limit N] --out benchmarks/results/shape_fmnist.json
    python -m benchmarks.bench_shapes --part text-only --db sqlite:///data/curator.db --out benchmarks/results/shape_text.json

fashion-mnist: `ingest --fashion-mnist` into a fresh SQLite database under $DATA_DIR, embed the photos
(EfficientNet-Lite0), fit the production ModelBundle (image only: one stage) on the hash split, and a logistic
regression on the raw 28x28 pixels on the same fit rows; accuracy of both on the same held-out products.
text-only: the labelled products of an ingested default catalogue, embedded with `--image none` (titles only, from
the cache), the ModelBundle (text plan) against the TF-IDF + linear SVM baseline on the same split; hF1 of both.
Each part reports wall seconds per step and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from core import config
from core.bench.evaluate import TfidfSvmBaseline
from core.classify.bundle import ModelBundle
from core.classify.models import score
from core.data import fashion_mnist
from core.data.split import fixed_split
from core.embed.choice import EncoderChoice
from core.embed.features import embed_catalogue
from core.steps.catalogue import load_catalogue
from core.steps.ingest import ingest
from db.session import get_sessionmaker, upgrade


def peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def timed(steps: dict, name: str, fn, *args, **kwargs):
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    steps[name] = round(time.perf_counter() - started, 1)
    print(f"{name}: {steps[name]}s (peak {peak_mb()} MB)", flush=True)
    return out


def fit_and_score(steps: dict, cat, feats, choice: EncoderChoice):
    """The production bundle on the hash split: (split, bundle, held-out truth, its hierarchical report)."""
    split = fixed_split(cat, seed=0)
    fit = ModelBundle(seed=0).fit
    bundle = timed(steps, "train (bundle)", fit, cat, feats, encoder_choice=vars(choice).copy(), split=split)
    truth = [cat.labels[i] for i in split.test]
    nodes = bundle.predict(cat.subset(split.test), feats.subset(split.test)).prediction.nodes
    return split, bundle, truth, score(bundle.tree, truth, nodes)


def labelled(db_url: str):
    with get_sessionmaker(db_url)() as s:
        cat = load_catalogue(s)
    return cat.subset(np.flatnonzero(cat.labelled))


def fashion_mnist_part(limit: int | None) -> dict:
    from PIL import Image
    from sklearn.linear_model import LogisticRegression

    steps: dict[str, float] = {}
    folder = config.data_dir() / "fashion-mnist"
    db_url = f"sqlite:///{config.data_dir() / 'fashion-mnist.db'}"
    upgrade(db_url)
    parquet = timed(steps, "write photos", fashion_mnist.write_catalogue, folder, limit=limit)
    timed(steps, "ingest", ingest, parquet, platform="zalando", db_url=db_url, mapping=fashion_mnist.MAPPING)
    cat = labelled(db_url)
    choice = EncoderChoice(image="efficientnet-lite0")
    feats = timed(steps, "embed photos", embed_catalogue, cat, **choice.kwargs(), batch_size=128)
    split, bundle, truth, model = fit_and_score(steps, cat, feats, choice)
    pixels = timed(
        steps, "read pixels", lambda: np.stack([np.asarray(Image.open(p), np.float32).ravel() / 255 for p in cat.images])
    )
    lr = timed(
        steps,
        "train (pixels LR)",
        LogisticRegression(max_iter=300).fit,
        pixels[split.fit],
        [" > ".join(cat.labels[i]) for i in split.fit],
    )
    lr_acc = float(np.mean(lr.predict(pixels[split.test]) == np.array([" > ".join(t) for t in truth])))
    return {
        "products": len(cat),
        "n_fit": len(split.fit),
        "n_test": len(split.test),
        "bundle": {"accuracy": model["level_accuracy"][0], "hf1": model["hF1"], "modalities": bundle.manifest.modalities},
        "pixels_logistic_regression": {"accuracy": round(lr_acc, 4)},
        "embed_items_per_s": round(len(cat) / steps["embed photos"], 1),
        "steps_s": steps,
        "peak_mb": peak_mb(),
    }


def text_only_part(db_url: str) -> dict:
    steps: dict[str, float] = {}
    cat = timed(steps, "load", labelled, db_url)
    choice = EncoderChoice(image=None)
    feats = timed(steps, "embed titles", embed_catalogue, cat, **choice.kwargs())
    split, bundle, truth, model = fit_and_score(steps, cat, feats, choice)
    baseline = timed(
        steps, "train (tfidf-svm)", TfidfSvmBaseline().fit, [cat.titles[i] for i in split.fit], [cat.labels[i] for i in split.fit]
    )
    base = score(bundle.tree, truth, bundle.tree.encode(baseline.predict_paths([cat.titles[i] for i in split.test])))
    return {
        "products": len(cat),
        "n_fit": len(split.fit),
        "n_test": len(split.test),
        "bundle": {"hf1": model["hF1"], "level_accuracy": model["level_accuracy"], "modalities": bundle.manifest.modalities},
        "tfidf_svm_baseline": {"hf1": base["hF1"], "level_accuracy": base["level_accuracy"]},
        "steps_s": steps,
        "peak_mb": peak_mb(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("fashion-mnist", "text-only"), required=True)
    parser.add_argument("--limit", type=int, default=None, help="fashion-mnist: only the first N images")
    parser.add_argument("--db", default=config.database_url(), help="text-only: the ingested default catalogue")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    result = fashion_mnist_part(args.limit) if args.part == "fashion-mnist" else text_only_part(args.db)
    result.update(
        part=args.part,
        wall_s=round(time.perf_counter() - started, 1),
        date=date.today().isoformat(),
        machine=f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores, CPU",
        command=" ".join(["python -m benchmarks.bench_shapes", *sys.argv[1:]]),
    )
    Path(args.out).write_text(json.dumps(result, indent=2, default=float))
    print(json.dumps({k: v for k, v in result.items() if k != "steps_s"}, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
