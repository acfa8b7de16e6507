"""Category-mapping suggestions against the hand-written H&M reference mapping (tests/data/hm_reference_mapping.csv).

    python -m benchmarks.bench_mapping --db sqlite:///data/curator.db --out benchmarks/results/mapping.json

The database must hold the default catalogue (the master-seeding platform) with an active model. The benchmark
ingests a seeded sample of H&M (up to `--per-type` articles of each product type; title = prod_name, description =
detail_desc, category = product_group_name > product_type_name) as platform `hm` (not seeding: the master
taxonomy gains nothing), predicts its products with the active model, builds the three signals
(`core.steps.mapping.mapping_problem`), and scores suggestions against the reference: two-fold by a seeded split
of the H&M categories, weights and temperature chosen on one half (`core.mapping.suggest.fit_weights`) and scored
on the other, for the combination and for each signal alone (its own "no equivalent" score and temperature),
plus the reliability table of the held-out confidences.
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

from core.config import catalog_dir, google_taxonomy_file, hm_catalog_dir
from core.data.ingest import ColumnMap
from core.mapping.suggest import DEFAULT_WEIGHTS, NONE, Signals, Weights, fit_weights, reliability, softmax, top1_accuracy
from core.steps.ingest import ingest
from core.steps.mapping import mapping_problem
from core.steps.predict import predict
from core.steps.standard import STANDARD_WEIGHTS, import_google, standard_problem

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "hm_reference_mapping.csv"
GOOGLE_REFERENCE = ROOT / "tests" / "data" / "google_reference_mapping.csv"
HM_MAP = ColumnMap(
    id="article_id",
    title="prod_name",
    description="detail_desc",
    brand=None,
    image=None,
    levels=("product_group_name", "product_type_name"),
)
ONLY = {"vote": (1.0, 0.0, 0.0), "name": (0.0, 1.0, 0.0), "centroid": (0.0, 0.0, 1.0)}


def hm_sample(per_type: int, seed: int, folder: Path) -> Path:
    import pandas as pd

    df = pd.read_parquet(hm_catalog_dir() / "articles.parquet")
    df = df.sample(frac=1.0, random_state=seed).groupby(["product_group_name", "product_type_name"]).head(per_type)
    df = df[["article_id", "product_code", "prod_name", "detail_desc", "product_group_name", "product_type_name"]].copy()
    df["detail_desc"] = df["detail_desc"].fillna("")
    path = folder / "hm-sample.parquet"
    df.sort_values("article_id").to_parquet(path)
    return path


def reference_truth(problem) -> np.ndarray:
    """Per category of the problem: the reference's node index, or NONE for "no master equivalent"."""
    with open(REFERENCE, encoding="utf-8") as f:
        ref = {row["hm_path"]: row["master_path"] for row in csv.DictReader(f)}
    index = {" > ".join(n): k for k, n in enumerate(problem.nodes)}
    truth = []
    for category in problem.categories:
        target = ref[" > ".join(category)]
        truth.append(index[target] if target else NONE)
    return np.array(truth)


def subset(signals: Signals, rows: np.ndarray) -> Signals:
    return Signals(signals.vote[rows], signals.name[rows], signals.centroid[rows])


def fit_only(signals: Signals, truth: np.ndarray, which: str) -> Weights:
    """One signal alone: its "no equivalent" score and temperature fitted like the combination's."""
    w = ONLY[which]
    masked = Signals(signals.vote * w[0], signals.name * w[1], signals.centroid * w[2])
    fitted = fit_weights(masked, truth, step=1.0)  # the grid's corners: the signal itself has weight 1
    return Weights(*w, fitted.none_score, fitted.temperature)


def score_fold(signals: Signals, truth: np.ndarray, tune: np.ndarray, test: np.ndarray, *, signals_only=tuple(ONLY)) -> dict:
    out = {}
    weights = fit_weights(subset(signals, tune), truth[tune])
    out["weights"] = weights.as_dict()
    out["combined"] = {
        "tune": top1_accuracy(subset(signals, tune), weights, truth[tune]),
        "held_out": top1_accuracy(subset(signals, test), weights, truth[test]),
    }
    for which in signals_only:
        w = fit_only(subset(signals, tune), truth[tune], which)
        out[f"{which}_only"] = {"held_out": top1_accuracy(subset(signals, test), w, truth[test]), "weights": w.as_dict()}
    prob = softmax(subset(signals, test).combined(weights), weights.temperature)
    best = prob.argmax(axis=1)
    best = np.where(best == prob.shape[1] - 1, NONE, best)
    out["_confidence"], out["_correct"] = prob.max(axis=1), best == truth[test]
    return out


def run(db_url: str, *, per_type: int, seed: int, folder: Path) -> dict:
    started, steps = time.perf_counter(), {}
    report = ingest(hm_sample(per_type, seed, folder), platform="hm", db_url=db_url, mapping=HM_MAP, seed_master=False)
    steps["ingest"] = round(time.perf_counter() - started, 1)
    print(report.summary(), flush=True)
    t = time.perf_counter()
    predict(db_url)
    steps["predict"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    problem = mapping_problem(db_url, "hm", seed=seed)
    steps["signals"] = round(time.perf_counter() - t, 1)
    truth = reference_truth(problem)
    order = np.random.default_rng(seed).permutation(len(truth))
    halves = (order[: len(order) // 2], order[len(order) // 2 :])
    folds = [score_fold(problem.signals, truth, halves[i], halves[1 - i]) for i in (0, 1)]
    weights_all = fit_weights(problem.signals, truth)  # what DEFAULT_WEIGHTS should be (chosen on every category)
    conf = np.concatenate([f.pop("_confidence") for f in folds])
    correct = np.concatenate([f.pop("_correct") for f in folds])
    summary = {
        k: float(np.mean([f[k]["held_out"] for f in folds])) for k in ("combined", "vote_only", "name_only", "centroid_only")
    }
    return {
        "date": date.today().isoformat(),
        "machine": f"{platform_mod.machine()}, {os.cpu_count()} cores, CPU",
        "command": "python -m benchmarks.bench_mapping",
        "hm_sample": {"per_type": per_type, "products": report.rows, "categories": len(problem.categories)},
        "reference": {
            "leaf": int(sum(1 for t in truth if t != NONE and len(problem.nodes[t]) == 3)),
            "none": int((truth == NONE).sum()),
            "all": len(truth),
        },
        "held_out_top1": summary,
        "weights_all": weights_all.as_dict(),
        "top1_with_weights_all": top1_accuracy(problem.signals, weights_all, truth),
        "top1_with_default_weights": top1_accuracy(problem.signals, DEFAULT_WEIGHTS, truth),
        "folds": folds,
        "reliability_held_out": reliability(conf, correct),
        "steps_s": steps,
        "notes": problem.notes,
    }


def google_part(db_url: str, *, seed: int) -> dict:
    """The master leaves onto the Google Product Taxonomy against tests/data/google_reference_mapping.csv."""
    started = time.perf_counter()
    import_google(db_url, google_taxonomy_file())
    node_ids, node_paths, cat_ids, cat_paths, signals = standard_problem(db_url, "google", seed=seed)
    steps = {"signals": round(time.perf_counter() - started, 1)}
    with open(GOOGLE_REFERENCE, encoding="utf-8") as f:
        ref = {row["master_path"]: row["google_path"] for row in csv.DictReader(f)}
    index = {" > ".join(p): k for k, p in enumerate(cat_paths)}
    rows = np.array([i for i, p in enumerate(node_paths) if " > ".join(p) in ref])
    truth = np.array([index[ref[" > ".join(node_paths[i])]] if ref[" > ".join(node_paths[i])] else NONE for i in rows])
    signals = subset(signals, rows)
    order = np.random.default_rng(seed).permutation(len(truth))
    halves = (order[: len(order) // 2], order[len(order) // 2 :])
    folds = [score_fold(signals, truth, halves[i], halves[1 - i], signals_only=("name", "centroid")) for i in (0, 1)]
    conf = np.concatenate([f.pop("_confidence") for f in folds])
    correct = np.concatenate([f.pop("_correct") for f in folds])
    weights_all = fit_weights(signals, truth)
    return {
        "reference": {"leaves": len(truth), "none": int((truth == NONE).sum()), "google_categories": len(cat_ids)},
        "held_out_top1": {
            k: float(np.mean([f[k]["held_out"] for f in folds])) for k in ("combined", "name_only", "centroid_only")
        },
        "weights_all": weights_all.as_dict(),
        "top1_with_default_weights": top1_accuracy(signals, STANDARD_WEIGHTS, truth),
        "folds": folds,
        "reliability_held_out": reliability(conf, correct),
        "steps_s": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--per-type", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/mapping.json")
    parser.add_argument("--part", choices=["hm", "google", "both"], default="both")
    args = parser.parse_args()
    folder = Path(os.environ.get("DATA_DIR", "data"))
    folder.mkdir(parents=True, exist_ok=True)
    assert catalog_dir().exists()
    result = run(args.db, per_type=args.per_type, seed=args.seed, folder=folder) if args.part != "google" else {}
    if args.part != "hm":
        result["google"] = google_part(args.db, seed=args.seed)
        print(
            json.dumps({k: result["google"][k] for k in ("held_out_top1", "weights_all", "top1_with_default_weights")}, indent=1)
        )
    if args.part == "google":
        result.update(date=date.today().isoformat(), command="python -m benchmarks.bench_mapping --part google")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    if args.part == "google":
        return
    keys = ("held_out_top1", "weights_all", "top1_with_default_weights", "reliability_held_out", "steps_s")
    print(json.dumps({k: result[k] for k in keys}, indent=1))


if __name__ == "__main__":
    main()
