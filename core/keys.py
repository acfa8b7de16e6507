"""One content key for every cache: a short hex digest of the things a result depends on.

`content_key(*parts)` hashes each part in order: `bytes` and numpy arrays as their raw bytes (arrays with
dtype and shape, so a reshaped array is another key), anything else as sorted-key JSON. Every cached result
(fitted model parts, maps, review scores, model-version data keys) is keyed through it, so a cache is
invalidated exactly when one of its inputs changes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np


def _feed(h, part: Any) -> None:
    if isinstance(part, np.ndarray):
        h.update(f"ndarray|{part.dtype}|{part.shape}|".encode())
        h.update(part.tobytes())
    elif isinstance(part, bytes | bytearray | memoryview):
        h.update(bytes(part))
    else:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
    h.update(b"\x1f")  # part separator: ("ab", "c") and ("a", "bc") differ


def content_key(*parts: Any, length: int = 16) -> str:
    """Hex digest (`length` characters, at most 64) of `parts`; equal inputs give equal keys across runs."""
    h = hashlib.sha256()
    for part in parts:
        _feed(h, part)
    return h.hexdigest()[:length]
