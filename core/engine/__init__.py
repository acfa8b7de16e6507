"""Where the batch steps' heavy work runs: here (`local`, the default: no Ray needed) or on Ray (`ray`).

`python -m core embed|predict|review --engine ray` runs the same encoder, model and review-scorer code through Ray
Data `map_batches` over actor pools (one actor per GPU when the cluster has GPUs, else CPU actors) and the
out-of-fold models as Ray tasks; products are read from the database and results written back (embedding cache,
predictions, review queue) by the step in the driver, through the same readers and writers as the local engine.
`RAY_ADDRESS` names a cluster; without it a local Ray instance is started for the step (no dashboard) and shut
down after. See `core.engine.ray_engine`.

An engine is passed down as `engine=` to `core.steps.embed.embed`, `core.steps.predict.predict` and
`core.steps.review.run_review`; None is the local engine (the code as it runs without this package). An engine has
`embed_chunks(encoder, chunks, **options)`, `predict(bundle, cat, feats)` and `run_folds(fn, args, folds)`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from core.engine.ray_engine import RayEngine, ray_session

ENGINES = ("local", "ray")


@contextlib.contextmanager
def open_engine(name: str = "local", *, num_cpus: int | None = None, actors: int | None = None) -> Iterator[RayEngine | None]:
    """The engine `name` for the length of a step: None for "local"; for "ray", a `RayEngine` on the cluster of
    `RAY_ADDRESS` (or on the Ray instance this process has already started), else on a local instance of
    `num_cpus` CPUs (default: this machine's) started here and shut down after. `actors`: CPU actors per pool
    (default: one per CPU of the cluster)."""
    if name == "local":
        yield None
        return
    if name != "ray":
        raise ValueError(f"unknown engine {name!r}; use one of {', '.join(ENGINES)}")
    with ray_session(num_cpus=num_cpus):
        yield RayEngine(actors=actors)
