"""The encoders through torch, ONNX Runtime fp32 and ONNX Runtime int8 on the CPU, in one run (issue 17).

    python -m benchmarks.bench_encoders --out benchmarks/results/encoders.json

For each backend (`CURATOR_INFERENCE`), on the same seeded slice of the default catalogue (3,000 products, every
leaf with >= 10, 300 of them with their photo, as the quality tests use) and in its own data folder: items/s of the
MiniLM titles and of the EfficientNet-Lite0 photos (the model loaded or the graph exported first, timed apart), the
cosine of each vector to torch's, then `train` on those embeddings (held-out hF1 of the production bundle on the
same hash split) and `discover --benchmark` on 1,500 products of Footwear > Shoes (purity, NMI). Nothing here is
cached across backends: each one embeds everything itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from core import config
from core.bench.discovery import benchmark as discovery_benchmark
from core.data.dataset import PATH_SEP
from core.embed import onnx_backend
from core.embed.choice import EncoderChoice
from core.embed.encoders import EfficientNetLite0Encoder, minilm
from core.steps.embed import embed
from core.steps.ingest import ingest
from core.steps.train import train
from db.models import ModelVersion
from db.session import get_sessionmaker, upgrade
from tests.quality.conftest import keep_photos, stratified_slice

BACKENDS = ("torch", "onnx", "onnx-int8")


def ingest_slice(frame, folder: Path) -> Path:
    """The slice as a fresh SQLite database (ingested once; each backend works on a copy)."""
    folder.mkdir(parents=True, exist_ok=True)
    parquet = folder / "slice.parquet"
    frame.to_parquet(parquet)
    db = folder / "slice.db"
    url = f"sqlite:///{db}"
    upgrade(url)
    ingest(parquet, platform="myntra", db_url=url, images_root=config.catalog_dir())
    return db


def copy_db(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (the backup API: the rows still in its write-ahead log come too; a
    file copy of the main file alone lost them, and the copy read as an empty catalogue)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def items_per_s(encoder, items: list, batch_size: int) -> tuple[float, float, np.ndarray]:
    """(seconds to load or export, items/s, vectors) of `encoder` on `items`."""
    started = time.perf_counter()
    encoder.embed(items[:4], batch_size=batch_size, device="cpu")
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    vectors = encoder.embed(items, batch_size=batch_size, device="cpu")
    return loaded, len(items) / (time.perf_counter() - started), vectors


def cosine(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    both = (np.linalg.norm(a, axis=1) > 0) & (np.linalg.norm(b, axis=1) > 0)
    cos = (a[both] * b[both]).sum(1)
    return {"mean": round(float(cos.mean()), 6), "min": round(float(cos.min()), 6)}


def one_backend(
    name: str, slices: dict[str, Path], work: Path, texts: list[str], photos: list[str], ref: dict, *, speed_only: bool
) -> dict:
    os.environ[onnx_backend.BACKEND_ENV] = name
    data = work / name / "data"
    data.mkdir(parents=True)
    os.environ["DATA_DIR"] = str(data)
    row: dict = {"backend": name}
    for modality, encoder, items, batch in (("text", minilm(), texts, 64), ("image", EfficientNetLite0Encoder(), photos, 32)):
        loaded, rate, vectors = items_per_s(encoder, items, batch)
        ref.setdefault(modality, vectors)
        row[modality] = {
            "load_s": round(loaded, 1),
            "items_per_s": round(rate, 1),
            "cosine_to_torch": cosine(vectors, ref[modality]),
        }
        print(name, modality, row[modality], flush=True)
    if speed_only:
        return row
    db = work / name / "classify.db"
    copy_db(slices["classify"], db)
    url = f"sqlite:///{db}"
    started = time.perf_counter()
    embed(url, choice=EncoderChoice())
    row["embed_step_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    version_id = train(url, log=lambda _: None)
    row["train_s"] = round(time.perf_counter() - started, 1)
    with get_sessionmaker(url)() as s:
        row["hf1"] = round(s.get(ModelVersion, version_id).metrics["hf1"], 4)
    copy_db(slices["discover"], work / name / "discover.db")
    os.environ["DATA_DIR"] = str(work / name / "discover-data")  # one data folder per database, as the app has
    found = discovery_benchmark(
        f"sqlite:///{work / name / 'discover.db'}", node_path="Footwear > Shoes", bertopic=False, choice=EncoderChoice()
    )
    run = next(r for key, r in found["runs"].items() if key.startswith("discovery"))
    row["discovery"] = {
        "purity": run["leaves"]["purity"],
        "unassigned": run["leaves"]["share_unassigned"],
        "ari_at_hidden_types": run["hidden_level"]["ari"],
    }
    print(name, "hF1", row["hf1"], "discovery", row["discovery"], flush=True)
    return row


def main() -> None:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/encoders.json")
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--shoes", type=int, default=1500)
    parser.add_argument("--speed-only", action="store_true", help="items/s and cosine only: no train, no discovery")
    args = parser.parse_args()
    frame = pd.read_parquet(config.catalog_dir() / "products.parquet")
    classify = keep_photos(stratified_slice(frame, n=args.products, min_per_leaf=10, seed=0), n_photos=args.photos, seed=0)
    top, sub = "Footwear", "Shoes"
    shoes = frame[(frame.master_category == top) & (frame.sub_category == sub)]
    shoes = shoes.sample(n=min(args.shoes, len(shoes)), random_state=0).copy()
    shoes["image"] = ""
    work = Path(tempfile.mkdtemp(prefix="bench-encoders-"))
    os.environ[onnx_backend.FOLDER_ENV] = str(work / "onnx")  # the graphs exported in this run: load_s includes it
    slices = {"classify": ingest_slice(classify, work / "classify"), "discover": ingest_slice(shoes, work / "discover")}
    with sqlite3.connect(slices["classify"]) as con:
        texts = [t for (t,) in con.execute("SELECT title FROM products ORDER BY id")]
        photos = [
            str(Path(root) / image)
            for image, root in con.execute(
                "SELECT p.image, pl.root FROM products p JOIN platforms pl ON pl.id = p.platform_id "
                "WHERE p.image_status = 'ok' ORDER BY p.id"
            )
        ]
    ref: dict = {}
    rows = [one_backend(name, slices, work, texts, photos, ref, speed_only=args.speed_only) for name in BACKENDS]
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU",
        "command": "python -m benchmarks.bench_encoders" + (" --speed-only" if args.speed_only else ""),
        "slice": {
            "products": len(texts),
            "photos": len(photos),
            "discovery_node": f"{top}{PATH_SEP}{sub}",
            "discovery_products": len(shoes),
        },
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
