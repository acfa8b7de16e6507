"""torch settings shared by every model that trains on the CPU (joint aligner, fusion models, SimCLR head)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Temporarily sets torch's CPU thread count (None: leave it as it is).

    Small models train fastest on one thread; OpenMP threads competing with other busy processes
    for the same cores can slow training down 10-40x.
    """
    import torch

    before = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def spawn(target, args: tuple, *, context=None):
    """Start `target(*args)` in a spawned process (a fresh interpreter: no threads or torch state inherited) without
    running this process's `__main__` again there: under a test runner or Streamlit, `__main__` may be a script that
    must not run twice (spawn re-imports it in the child). `context`: a spawn context (default a new one)."""
    import multiprocessing
    import sys
    import types

    context = context or multiprocessing.get_context("spawn")
    process = context.Process(target=target, args=args, daemon=True)
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")  # nothing for the child to re-import
    try:
        process.start()
    finally:
        if main is not None:
            sys.modules["__main__"] = main
    return process
