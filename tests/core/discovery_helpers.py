"""Synthetic data with known structure for the discovery tests."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

CLASS_WORDS = {
    0: ["running", "mesh", "sports"],
    1: ["stiletto", "heel", "party"],
    2: ["loafer", "leather", "formal"],
    3: ["canvas", "sneaker", "casual"],
}
COMMON_WORDS = ["shoe", "comfortable", "design", "pair", "look"]


def blobs(*, n_per: int = 60, k: int = 4, dim: int = 32, spread: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k well-separated Gaussian blobs around random unit centres.

    Returns:
        X: (k * n_per, dim) float32; y: (k * n_per,) int class of each row.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(k), n_per)
    X = centres[y] + spread * rng.standard_normal((len(y), dim)) / np.sqrt(dim)
    return X.astype(np.float32), y


def nested(*, n_per: int = 60, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four classes that form two groups in a 2-D projection but four blobs in full space.

    Returns:
        low: (4 * n_per, 2) float32 where classes 0+1 and 2+3 overlap;
        emb: (4 * n_per, dim) float32 with four separate blobs; y: (4 * n_per,) int in 0..3.
    """
    emb, y = blobs(n_per=n_per, k=4, dim=dim, seed=seed)
    rng = np.random.default_rng(seed + 1)
    group_centres = np.array([[0.0, 0.0], [10.0, 0.0]])
    low = group_centres[y // 2] + rng.standard_normal((len(y), 2))
    return low.astype(np.float32), emb, y


def docs_for(y: np.ndarray, *, seed: int = 0) -> list[str]:
    """A short product text per row: two words of its class plus two common words."""
    rng = np.random.default_rng(seed)
    out = []
    for label in y:
        words = list(rng.choice(CLASS_WORDS[int(label) % 4], size=2, replace=False))
        words += list(rng.choice(COMMON_WORDS, size=2, replace=False))
        out.append(" ".join(words))
    return out


@contextmanager
def single_thread():
    """Run torch and BLAS/OpenMP on one thread: the test problems are tiny, and on a busy
    machine spinning worker threads cost more than they save."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)
