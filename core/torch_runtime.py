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
