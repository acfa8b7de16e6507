"""Fashion-MNIST (Zalando; Debian package `dataset-fashion-mnist`) as a photo-only catalogue.

The four IDX files (train and t10k images and labels, gzip) become 70,000 products: id `train-00000` ...
`test-09999`, no title, the 28x28 grey photo written once as a PNG (`images/<id>.png`), and its class as a
one-level category. `write_catalogue` writes those PNGs (skipping ones already there) and `products.parquet`
into a folder; `python -m core ingest --fashion-mnist` ingests that folder as platform `zalando`.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.data.ingest import ColumnMap

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
PLATFORM = "zalando"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
PARTS = {"train": "train", "test": "t10k"}
MAPPING = ColumnMap(id="id", title=None, description=None, brand=None, image="image", levels=("category",))
Progress = Callable[[str, int, int], None]


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzip) as a uint8 array: (n,) labels or (n, rows, cols) images."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find_file(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (root / name).exists():
            return root / name
    raise FileNotFoundError(
        f"{root / stem}(.gz) not found: install the Debian package dataset-fashion-mnist or pass --fashion-mnist-dir"
    )


def load(root: Path = DEFAULT_DIR) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (images (60000, 28, 28), labels (60000,)), "test": (10000 ...)}."""
    out = {}
    for part, stem in PARTS.items():
        images = read_idx(find_file(root, f"{stem}-images-idx3-ubyte"))
        labels = read_idx(find_file(root, f"{stem}-labels-idx1-ubyte"))
        if len(images) != len(labels):
            raise ValueError(f"{root}: {part} has {len(images)} images but {len(labels)} labels")
        out[part] = (images, labels)
    return out


def write_catalogue(
    folder: Path, *, root: Path = DEFAULT_DIR, limit: int | None = None, progress: Progress | None = None
) -> Path:
    """Write the PNGs (once: existing files are kept) and products.parquet under `folder`; returns the parquet."""
    import pandas as pd
    from PIL import Image

    images_dir = folder / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for part, (images, labels) in load(root).items():
        for i in range(len(images)):
            if limit is not None and len(rows) >= limit:
                break
            pid = f"{part}-{i:05d}"
            target = images_dir / f"{pid}.png"
            if not target.exists():
                tmp = target.with_suffix(".tmp")
                Image.fromarray(images[i], mode="L").save(tmp, format="PNG")
                tmp.replace(target)
            rows.append({"id": pid, "image": f"images/{pid}.png", "category": CLASSES[labels[i]], "split": part})
            if progress and len(rows) % 1000 == 0:
                progress("write photos", len(rows), limit or 70000)
    out = folder / "products.parquet"
    pd.DataFrame(rows).to_parquet(out, index=False)
    return out
