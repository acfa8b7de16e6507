"""The Ray engine: the batch steps' encoder, cascade and out-of-fold models on Ray, with the same code as the local run.

- embed (`embed_chunks`): the chunks of missing inputs that `core.embed.cache` would embed here (2,048 distinct
  inputs each) become the rows of a Ray dataset; `map_batches` hands each chunk, whole, to an actor of a pool (one
  actor per GPU, `num_gpus=1`, when the cluster has GPUs; else CPU actors, one per CPU) that calls the encoder's own
  `embed_masked` on it, so every vector is computed from the same batches as the local engine's, bit for bit. The
  vectors come back to the driver chunk by chunk, where the cache stores each as one shard (the local writer).
- predict (`predict`): the products and their feature blocks go into a Ray dataset in batches of `PREDICT_ROWS`;
  CPU actors holding the model version's `ModelBundle` (shipped once through the object store, so a cluster's
  nodes need no shared folder) run `bundle.predict` on each batch; the driver reassembles the `CascadeResult` and
  the step writes the predictions table as it does locally.
- review (`run_folds`): each fold's model (`core.review.scores.fold_marginals`) is a Ray task; the features go to
  the object store once and every task reads them from there.

Ray is imported inside these functions only: the local engine never loads it. The actors receive the driver's
`CURATOR_*` settings (inference backend, ONNX folder, threads) and use as many threads as they hold CPUs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from core.classify.cascade import CascadeResult
from core.classify.taxonomy import HierarchicalPrediction
from core.data.dataset import PATH_SEP, Catalogue
from core.embed.features import Features

ADDRESS_ENV = "RAY_ADDRESS"
PREDICT_ROWS = 4096  # products per predict batch


@contextlib.contextmanager
def ray_session(*, num_cpus: int | None = None) -> Iterator[None]:
    """Ray for the length of a step: the instance this process already runs, else the cluster of `RAY_ADDRESS`, else
    a local instance of `num_cpus` CPUs (default: this machine's; no dashboard). Only what it started it shuts down."""
    import ray

    if ray.is_initialized():
        yield
        return
    if os.environ.get(ADDRESS_ENV):
        ray.init(log_to_driver=False)  # connects to RAY_ADDRESS
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def curator_settings() -> dict[str, str]:
    """The driver's `CURATOR_*` environment (inference backend, ONNX folder, threads), for the actors."""
    return {k: v for k, v in os.environ.items() if k.startswith("CURATOR_")}


def _settle(settings: dict[str, str], cpus: int) -> None:
    """In an actor, before any model loads: the driver's settings, and as many inference threads as the actor holds
    CPUs (ONNX Runtime; torch reads OMP_NUM_THREADS, which Ray sets to the same)."""
    os.environ.update(settings)
    os.environ.setdefault("CURATOR_ORT_THREADS", str(cpus))
    os.environ.setdefault("OMP_NUM_THREADS", str(cpus))


def unloaded(encoder):
    """A copy of `encoder` without its loaded model (an ONNX Runtime session does not pickle, a torch model is
    big): an actor loads the weights itself on first use, from the encoder's own settings."""
    copy = object.__new__(type(encoder))
    copy.__dict__.update(encoder.__dict__, _model=None, _device=None, _backend="torch")
    return copy


class EmbedChunks:
    """Actor of the embed pool: each row is one chunk (`chunk`, `items`), embedded whole with `encoder.embed_masked`."""

    def __init__(self, encoder, *, batch_size: int, device: str, settings: dict[str, str], cpus: int = 1):
        _settle(settings, cpus)
        self.encoder, self.batch_size, self.device = encoder, batch_size, device

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        chunks, positions, vectors, oks = [], [], [], []
        for c, items in zip(batch["chunk"], batch["items"]):
            vecs, ok = self.encoder.embed_masked([str(x) for x in items], batch_size=self.batch_size, device=self.device)
            chunks.append(np.full(len(ok), c, np.int64))
            positions.append(np.arange(len(ok)))
            vectors.append(vecs)
            oks.append(ok)
        return {
            "chunk": np.concatenate(chunks),
            "pos": np.concatenate(positions),
            "vector": np.concatenate(vectors),
            "ok": np.concatenate(oks),
        }


def whole_chunks(batches, sizes: Sequence[int], dim: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(chunk, vectors (n, dim), ok (n,)) of each chunk as soon as all its rows have come back, from output batches
    of rows (`chunk`, `pos`, `vector`, `ok`) in any order and cut anywhere."""
    vectors = {c: np.zeros((n, dim), np.float32) for c, n in enumerate(sizes)}
    ok = {c: np.zeros(n, bool) for c, n in enumerate(sizes)}
    left = dict(enumerate(sizes))
    for batch in batches:
        for c in np.unique(batch["chunk"]):
            rows = batch["chunk"] == c
            c = int(c)
            vectors[c][batch["pos"][rows]], ok[c][batch["pos"][rows]] = batch["vector"][rows], batch["ok"][rows]
            left[c] -= int(rows.sum())
            if left[c] == 0:
                yield c, vectors.pop(c), ok.pop(c)
    if any(left.values()):
        raise RuntimeError(f"the Ray engine lost rows of chunks {[c for c, n in left.items() if n]}")


class PredictBatches:
    """Actor of the predict pool: `bundle.predict` on each batch of products (titles, descriptions, labels, blocks)."""

    def __init__(self, bundle, *, blocks: Sequence[str], encoder_ids: dict[str, str], settings: dict[str, str], cpus: int = 1):
        import ray

        _settle(settings, cpus)
        self.bundle = ray.get(bundle) if isinstance(bundle, ray.ObjectRef) else bundle
        self.blocks, self.encoder_ids = list(blocks), dict(encoder_ids)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cat, feats = batch_catalogue(batch, self.blocks, self.encoder_ids)
        result = self.bundle.predict(cat, feats)
        pred = result.prediction
        return {
            "row": batch["row"],
            "nodes": pred.nodes,
            "level_conf": pred.level_conf,
            "path_conf": pred.path_conf,
            "stage": result.stage,
        }


def predict_table(cat: Catalogue, feats: Features, rows: np.ndarray):
    """One Arrow table of the products `rows`: what `bundle.predict` reads of them (title, description, label path,
    and each feature block and mask)."""
    import pyarrow as pa
    from ray.data.extensions import ArrowTensorArray

    columns: dict[str, Any] = {
        "row": pa.array(rows, pa.int64()),
        "title": pa.array([cat.titles[i] for i in rows], pa.string()),
        "description": pa.array([cat.descriptions[i] if cat.descriptions else "" for i in rows], pa.string()),
        "label": pa.array([PATH_SEP.join(cat.labels[i]) if cat.labels[i] else "" for i in rows], pa.string()),
    }
    for m, block in feats.blocks.items():
        columns[f"block:{m}"] = ArrowTensorArray.from_numpy(np.ascontiguousarray(block[rows]))
        columns[f"mask:{m}"] = pa.array(feats.masks[m][rows], pa.bool_())
    return pa.table(columns)


def batch_catalogue(
    batch: dict[str, np.ndarray], blocks: Sequence[str], encoder_ids: dict[str, str]
) -> tuple[Catalogue, Features]:
    """The `Catalogue` and `Features` of one batch of `predict_table` rows."""
    ids = np.asarray(batch["row"], np.int64)
    cat = Catalogue(
        ids,
        titles=[str(t) for t in batch["title"]],
        descriptions=[str(d) for d in batch["description"]],
        labels=[tuple(str(lab).split(PATH_SEP)) if lab else None for lab in batch["label"]],
    )
    feats = Features(
        ids,
        {m: np.asarray(batch[f"block:{m}"], np.float32) for m in blocks},
        {m: np.asarray(batch[f"mask:{m}"], bool) for m in blocks},
        dict(encoder_ids),
    )
    return cat, feats


def merge_predictions(batches, n: int, depth: int) -> CascadeResult:
    """The `CascadeResult` of `n` products from output batches of `PredictBatches` (any order)."""
    nodes, level_conf = np.full((n, depth), -1, np.int64), np.ones((n, depth), np.float32)
    path_conf, stage, seen = np.zeros(n, np.float32), np.zeros(n, np.int8), np.zeros(n, bool)
    for batch in batches:
        rows = np.asarray(batch["row"], np.int64)
        nodes[rows], level_conf[rows], path_conf[rows] = batch["nodes"], batch["level_conf"], batch["path_conf"]
        stage[rows], seen[rows] = batch["stage"], True
    if not seen.all():
        raise RuntimeError(f"the Ray engine lost the predictions of {int((~seen).sum())} products")
    return CascadeResult(HierarchicalPrediction(nodes, level_conf, path_conf), stage)


def _run_fold(fn: Callable, k: int, args: tuple):
    return fn(k, *args)


class RayEngine:
    """The batch steps on Ray (see the module's docstring); `actors`: CPU actors per pool (default: one per CPU)."""

    def __init__(self, *, actors: int | None = None, predict_rows: int = PREDICT_ROWS):
        import ray.data

        self.actors, self.predict_rows = actors, predict_rows
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the step draws its own
        ctx.print_on_execution_start = False

    def pool(self, device=None) -> tuple[dict[str, Any], str]:
        """(map_batches options of the actor pool, device of its actors): one actor per GPU with `num_gpus=1` when
        the cluster has GPUs and `device` allows CUDA, else `actors` CPU actors (default: one per CPU)."""
        import ray

        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        if device is not None and str(device).startswith("cuda") and not gpus:
            raise ValueError("--device cuda: the Ray cluster has no GPU")
        if gpus and (device is None or str(device).startswith("cuda")):
            return {"compute": ray.data.ActorPoolStrategy(size=gpus), "num_gpus": 1}, "cuda"
        size = self.actors or max(1, int(resources.get("CPU", 1)))
        return {"compute": ray.data.ActorPoolStrategy(size=size), "num_cpus": 1}, "cpu"

    def embed_chunks(self, encoder, chunks: Sequence[Sequence], *, batch_size: int = 32, device=None):
        """(chunk number, vectors, ok) of each chunk, embedded by the actor pool (in the order they finish)."""
        import ray

        pool, where = self.pool(device)
        rows = [{"chunk": c, "items": [str(x) for x in chunk]} for c, chunk in enumerate(chunks)]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        kwargs = {"encoder": unloaded(encoder), "batch_size": batch_size, "device": where, "settings": curator_settings()}
        out = ds.map_batches(EmbedChunks, fn_constructor_kwargs=kwargs, batch_size=1, **pool)
        yield from whole_chunks(out.iter_batches(batch_size=None, batch_format="numpy"), [len(c) for c in chunks], encoder.dim)

    def predict(self, bundle, cat: Catalogue, feats: Features) -> CascadeResult:
        """`bundle.predict(cat, feats)`, in batches of `predict_rows` products on CPU actors."""
        import ray

        pool, _ = self.pool("cpu")  # the cascade is small (MLPs, an SVM): CPU actors
        tables = [
            predict_table(cat, feats, np.arange(s, min(s + self.predict_rows, len(cat))))
            for s in range(0, len(cat), self.predict_rows)
        ]
        kwargs = {
            "bundle": ray.put(bundle),
            "blocks": list(feats.blocks),
            "encoder_ids": feats.encoder_ids,
            "settings": curator_settings(),
        }
        out = ray.data.from_arrow(tables).map_batches(
            PredictBatches, fn_constructor_kwargs=kwargs, batch_size=self.predict_rows, zero_copy_batch=False, **pool
        )
        return merge_predictions(out.iter_batches(batch_size=None, batch_format="numpy"), len(cat), bundle.tree.depth)

    def run_folds(self, fn: Callable, args: tuple, folds: int) -> Iterator[tuple[int, Any]]:
        """(k, fn(k, *args)) of each fold k, as Ray tasks of one CPU each (in the order they finish)."""
        import ray

        shared = ray.put(args)  # once, for every task
        task = ray.remote(num_cpus=1)(_run_fold)
        pending = {task.remote(fn, k, shared): k for k in range(folds)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            yield pending.pop(done[0]), ray.get(done[0])
