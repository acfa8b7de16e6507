"""Train / calibration / test splits of a catalogue's rows.

`fixed_split` (what model versions and `core evaluate` use) picks held-out rows by a hash of each product's
(platform, external id), so a product stays in the same part across retrains however its label changes;
`make_split` / `stratified_split` are seeded splits stratified by label path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from core.data.dataset import Catalogue


@dataclass
class Split:
    """Row indices: `fit` trains models, `calib` picks the cascade threshold, `test` scores everything."""

    fit: np.ndarray
    calib: np.ndarray
    test: np.ndarray


def stratified_split(labels: list[tuple[str, ...]], *, test_size: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split stratified by full label path; paths with a single product stay in train.

    Returns:
        (train_rows, test_rows): sorted int arrays of row indices.
    """
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, path in enumerate(labels):
        groups.setdefault(tuple(path), []).append(i)
    test = []
    for rows in groups.values():
        if len(rows) < 2:
            continue
        n_test = max(1, int(round(len(rows) * test_size)))
        test.extend(rng.choice(rows, size=min(n_test, len(rows) - 1), replace=False).tolist())
    test_rows = np.sort(np.asarray(test, dtype=np.int64))
    train_rows = np.setdiff1d(np.arange(len(labels)), test_rows)
    return train_rows, test_rows


def make_split(labels: list[tuple[str, ...]], *, seed: int = 0, test_size: float = 0.2, calib_size: float = 0.1) -> Split:
    """A stratified test part, then a stratified calibration part of the rest."""
    train, test = stratified_split(labels, test_size=test_size, seed=seed)
    fit_local, calib_local = stratified_split([labels[i] for i in train], test_size=calib_size, seed=seed + 1)
    return Split(train[fit_local], train[calib_local], test)


def fixed_split(cat: Catalogue, *, seed: int = 0, test_size: float = 0.2, calib_size: float = 0.1) -> Split:
    """Held-out rows chosen by a hash of (platform, external id), not by label: a product stays in the
    same part across retrains however its label changes, so versions are compared on the same products.

    Returns:
        `Split` (fit, calib, test row indices).
    """
    u = np.array(
        [
            int.from_bytes(hashlib.sha256(f"{seed}|{p}|{e}".encode()).digest()[:8], "big") / 2**64
            for p, e in zip(cat.platforms, cat.external_ids)
        ]
    )
    test = np.flatnonzero(u < test_size)
    calib = np.flatnonzero((u >= test_size) & (u < test_size + calib_size))
    return Split(np.flatnonzero(u >= test_size + calib_size), calib, test)
