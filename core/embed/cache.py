"""On-disk embedding cache keyed by encoder id + a content key per input.

A re-run embeds only new or changed inputs. Layout under `cache_dir` (default `data_dir()/embeddings`)::

    <slug of encoder id>/meta.json                encoder id and vector width
    <slug>/shard-<stamp>-<rand>.vecs.npy          (n, D) float32
    <slug>/shard-<stamp>-<rand>.keys.npy          (n,) fixed-width bytes, the content keys

Arrays only, never pickles. Every file is written to a temporary name and renamed into place, and a
shard's vectors are renamed before its keys, so a reader never sees a half-written shard; readers list
`*.keys.npy`. Several writers add separate shards; `compact` merges them.

Content keys (`content_keys`): text -> sha1 of the string; image -> sha1 of the file bytes
(`image_key="content"`, default) or of path + size + mtime (`image_key="stat"`, cheaper). An image that
cannot be read gets no key and comes back with `ok=False`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.config import data_dir

_KEY_DTYPE = "S40"


def _text_key(item) -> str:
    return hashlib.sha1(b"text\0" + str(item).encode("utf-8")).hexdigest()


def _file_content_key(item) -> str | None:
    try:
        return hashlib.sha1(b"file\0" + Path(item).read_bytes()).hexdigest()
    except OSError:
        return None


def _file_stat_key(item) -> str | None:
    try:
        st = Path(item).stat()
    except OSError:
        return None
    return hashlib.sha1(f"stat\0{Path(item).resolve()}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()


KEY_FUNCTIONS = {"text": _text_key, "content": _file_content_key, "stat": _file_stat_key}


def content_keys(items: Sequence, modality: str, *, image_key: str = "content") -> list[str | None]:
    """One 40-hex-char key per item (None for an unreadable image file).

    Args:
        items: N strings (text) or file paths (image).
        modality: "text" or "image".
        image_key: "content" (hash of the file bytes) or "stat" (path, size, mtime).
    """
    fn = KEY_FUNCTIONS["text" if modality == "text" else image_key]
    return [fn(item) for item in items]


def _slug(encoder_id: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id)[:80]
    return f"{readable}-{hashlib.sha1(encoder_id.encode()).hexdigest()[:10]}"


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    """Write `array` as .npy (no pickles) to a temporary name beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
    os.replace(tmp, path)


class EmbeddingCache:
    """The shards of one encoder.

    Args:
        cache_dir: root folder of the cache.
        encoder_id: the encoder's `id`.
        dim: the vector width.
    """

    def __init__(self, cache_dir: str | Path, encoder_id: str, dim: int):
        self.folder = Path(cache_dir) / _slug(encoder_id)
        self.encoder_id, self.dim = encoder_id, int(dim)

    def _shards(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.keys.npy")) if self.folder.is_dir() else []

    def _read_shards(self) -> list[tuple[np.ndarray, np.ndarray]]:
        for _ in range(3):  # a concurrent compact may remove a listed shard: list again
            try:
                return [
                    (
                        np.load(p, allow_pickle=False),
                        np.load(str(p).replace(".keys.npy", ".vecs.npy"), mmap_mode="r", allow_pickle=False),
                    )
                    for p in self._shards()
                ]
            except FileNotFoundError:
                time.sleep(0.05)
        raise RuntimeError(f"cache shards under {self.folder} keep changing")

    def lookup(self, keys: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """Cached vectors of `keys`.

        Returns:
            vectors `(N, dim) float32` (zeros where missing) and found `(N,) bool`.
        """
        out, found = np.zeros((len(keys), self.dim), np.float32), np.zeros(len(keys), bool)
        wanted: dict[bytes, list[int]] = {}
        for row, key in enumerate(keys):
            if key is not None:
                wanted.setdefault(key.encode(), []).append(row)
        for shard_keys, vecs in self._read_shards():
            pairs = [(i, row) for i, k in enumerate(shard_keys.tolist()) for row in wanted.get(k, ())]
            if pairs:
                src, dst = map(list, zip(*pairs))
                out[dst], found[dst] = vecs[src], True
        return out, found

    def add(self, keys: Sequence[str], vectors: np.ndarray) -> Path | None:
        """Stores `vectors (n, dim)` under `keys` as a new shard; returns its keys file (None if n == 0)."""
        vectors = np.asarray(vectors, np.float32)
        if len(keys) != len(vectors) or (len(vectors) and vectors.shape[1] != self.dim):
            raise ValueError(f"expected {len(keys)} vectors of width {self.dim}, got {vectors.shape}")
        if not len(keys):
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "meta.json"
        if not meta.exists():
            meta.write_text(json.dumps({"encoder_id": self.encoder_id, "dim": self.dim}))
        stem = self.folder / f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        save_npy_atomic(Path(f"{stem}.vecs.npy"), vectors)
        save_npy_atomic(Path(f"{stem}.keys.npy"), np.asarray(list(keys), dtype=_KEY_DTYPE))
        return Path(f"{stem}.keys.npy")

    def __len__(self) -> int:
        return len({k for shard_keys, _ in self._read_shards() for k in shard_keys.tolist()})

    def compact(self) -> int:
        """Merges all shards into one (duplicate keys dropped); returns the number of vectors kept."""
        old = self._shards()
        shards = self._read_shards()
        if len(old) < 2:
            return len(self)
        keys = np.concatenate([k for k, _ in shards])
        _, first = np.unique(keys, return_index=True)
        vecs = np.concatenate([np.asarray(v) for _, v in shards])[np.sort(first)]
        self.add([k.decode() for k in keys[np.sort(first)]], vecs)
        for path in old:
            path.unlink(missing_ok=True)
            Path(str(path).replace(".keys.npy", ".vecs.npy")).unlink(missing_ok=True)
        return len(first)


@dataclass
class CachedEmbeddings:
    """Result of `cached_embed`.

    Attributes:
        vectors: `(N, D) float32`, zeros where `ok` is False.
        ok: `(N,) bool`, False for inputs that could not be embedded (unreadable images).
        hits: rows served from the cache. misses: rows that had to be embedded (or failed).
    """

    vectors: np.ndarray
    ok: np.ndarray
    hits: int
    misses: int


def cached_embed(
    encoder,
    items: Sequence,
    *,
    keys: Sequence[str | None] | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 32,
    device=None,
    progress=None,
    image_key: str = "content",
    engine=None,
) -> CachedEmbeddings:
    """Embeds `items` with `encoder`, reusing cached vectors; only new or changed inputs are embedded.

    Args:
        encoder: an encoder from `core.embed.encoders` (`id`, `dim`, `modality`, `embed_masked`).
        items: N strings or image paths.
        keys: N content keys (default `content_keys(items, encoder.modality)`); None = unreadable.
        cache_dir: cache root (default `data_dir()/embeddings`).
        batch_size, device, progress: passed to `encoder.embed_masked` (progress counts misses only).
        image_key: "content" or "stat" (see `content_keys`).
        engine: None (embed here) or an engine of `core.engine` that embeds the chunks of misses elsewhere
            (`engine.embed_chunks`); the vectors are stored here either way, chunk by chunk.

    Returns:
        `CachedEmbeddings` with vectors `(N, D) float32`, ok `(N,) bool`, hits, misses.
    """
    keys = list(keys) if keys is not None else content_keys(items, encoder.modality, image_key=image_key)
    cache = EmbeddingCache(cache_dir or data_dir() / "embeddings", encoder.id, encoder.dim)
    vectors, found = cache.lookup(keys)
    hits = int(found.sum())
    missing = np.flatnonzero(~found & np.array([k is not None for k in keys], bool))
    if len(missing):
        _fill_missing(
            encoder,
            items,
            keys,
            missing,
            cache,
            vectors,
            found,
            batch_size=batch_size,
            device=device,
            progress=progress,
            engine=engine,
        )
    return CachedEmbeddings(vectors, found, hits, len(keys) - hits)


def _fill_missing(
    encoder, items, keys, rows, cache, vectors, found, *, progress=None, chunk: int = 2048, engine=None, **embed_options
) -> None:
    """Embeds each distinct missing key once, stores the successes, fills `vectors`/`found` in place.

    Works in chunks of `chunk` distinct inputs, each stored as its own shard as soon as it is done, so an
    interrupted run keeps what it finished (the next run embeds only the rest). With an `engine`, the chunks are
    embedded there (`engine.embed_chunks(encoder, chunks, **embed_options)` yields (chunk number, vectors, ok) in
    any order), each exactly as `encoder.embed_masked` embeds it here: the same chunks, so the same vectors.
    """
    first: dict[str, int] = {}
    for i in rows:
        first.setdefault(keys[i], i)
    unique = list(first.values())
    new = np.zeros((len(unique), cache.dim), np.float32)
    ok = np.zeros(len(unique), bool)
    parts = [unique[start : start + chunk] for start in range(0, len(unique), chunk)]
    if engine is None:
        results = _embed_here(encoder, items, parts, chunk, len(unique), progress=progress, **embed_options)
    else:
        results = engine.embed_chunks(encoder, [[items[i] for i in part] for part in parts], **embed_options)
    done = 0
    for c, vecs, good in results:
        part, start = parts[c], c * chunk
        cache.add([keys[i] for i, g in zip(part, good) if g], vecs[good])
        new[start : start + len(part)], ok[start : start + len(part)] = vecs, good
        done += len(part)
        if engine is not None and progress is not None:
            progress(done, len(unique))
    slot = {keys[i]: j for j, i in enumerate(unique)}
    idx = np.array([slot[keys[i]] for i in rows])
    vectors[rows], found[rows] = new[idx], ok[idx]


def _embed_here(encoder, items, parts, chunk: int, total: int, *, progress=None, **embed_options):
    """(chunk number, vectors, ok) of each chunk of `parts` (lists of rows of `items`), embedded in this process."""
    for c, part in enumerate(parts):
        tick = None if progress is None else (lambda done, _total, s=c * chunk: progress(s + done, total))
        vecs, good = encoder.embed_masked([items[i] for i in part], progress=tick, **embed_options)
        yield c, vecs, good
