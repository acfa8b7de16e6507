"""Modality features of a catalogue: text and image embeddings through the on-disk cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from core.data.dataset import Catalogue
from core.embed.cache import cached_embed
from core.embed.encoders import DEFAULT_ENCODERS, get_encoder

StageProgress = Callable[[str, int, int], None]


@dataclass
class Features:
    """Aligned with a Catalogue: `blocks[m]` is `(N, D_m) float32`, `masks[m]` is `(N,) bool` (False: missing)."""

    product_ids: np.ndarray
    blocks: dict[str, np.ndarray] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    encoder_ids: dict[str, str] = field(default_factory=dict)
    stats: dict[str, dict[str, float]] = field(default_factory=dict)

    def subset(self, rows: np.ndarray) -> Features:
        return Features(
            self.product_ids[rows],
            {m: b[rows] for m, b in self.blocks.items()},
            {m: k[rows] for m, k in self.masks.items()},
            dict(self.encoder_ids),
            dict(self.stats),
        )


def embed_plan(
    cat: Catalogue, *, text_encoder: str, image_encoder: str | None, descriptions: bool, titles: bool | None = None
) -> list[tuple[str, str, np.ndarray, list]]:
    """(modality, encoder name, rows, items): the title, the photo (where present), and optionally
    title + description ("text"; about 4x slower to embed than titles on CPU). A catalogue whose titles are all
    empty (photos only) gets no title block: there is nothing to embed (`titles=True` embeds them anyway, for a
    model trained with text that must read these products too)."""
    everyone = np.arange(len(cat))
    has_text = any(t.strip() for t in cat.titles) if titles is None else titles
    plan = [("title", text_encoder, everyone, cat.titles)] if has_text else []
    if image_encoder:
        rows = np.flatnonzero(cat.has_image)
        plan.append(("image", image_encoder, rows, [cat.images[i] for i in rows]))
    if descriptions and has_text:
        plan.append(("text", text_encoder, everyone, cat.texts))
    return plan


def encoder_ids(
    cat: Catalogue,
    *,
    text_encoder: str = DEFAULT_ENCODERS["text"],
    image_encoder: str | None = DEFAULT_ENCODERS["image"],
    descriptions: bool = False,
) -> dict[str, str]:
    """{modality: encoder id} that `embed_catalogue` with the same arguments reports, without embedding anything."""
    plan = embed_plan(cat, text_encoder=text_encoder, image_encoder=image_encoder, descriptions=descriptions)
    return {modality: get_encoder(name).id for modality, name, _, _ in plan}


def embed_catalogue(
    cat: Catalogue,
    *,
    text_encoder: str = DEFAULT_ENCODERS["text"],
    image_encoder: str | None = DEFAULT_ENCODERS["image"],
    descriptions: bool = False,
    titles: bool | None = None,
    cache_dir=None,
    batch_size: int = 64,
    device=None,
    progress: StageProgress | None = None,
    engine=None,
) -> Features:
    """Embed every product's title, photo (where present) and, with `descriptions`, title + description.

    Cached vectors are reused; the missing ones are embedded here, or by `engine` (`core.engine`: Ray actors).

    Returns:
        Features with blocks "title" (and "text") `(N, D_t)` and "image" `(N, D_i)` (zeros and mask False
        without a photo), and per modality stats: items, hits, misses, seconds, items_per_s (of the misses).
    """
    feats = Features(cat.product_ids)
    for modality, name, rows, items in embed_plan(
        cat, text_encoder=text_encoder, image_encoder=image_encoder, descriptions=descriptions, titles=titles
    ):
        encoder = get_encoder(name)
        tick = (lambda done, total, m=modality: progress(f"embed {m}", done, total)) if progress else None
        started = time.perf_counter()
        result = cached_embed(
            encoder, items, cache_dir=cache_dir, batch_size=batch_size, device=device, progress=tick, engine=engine
        )
        seconds = time.perf_counter() - started
        block = np.zeros((len(cat), encoder.dim), np.float32)
        mask = np.zeros(len(cat), bool)
        block[rows], mask[rows] = result.vectors, result.ok
        feats.blocks[modality], feats.masks[modality], feats.encoder_ids[modality] = block, mask, encoder.id
        feats.stats[modality] = {
            "items": len(items),
            "hits": result.hits,
            "misses": result.misses,
            "seconds": round(seconds, 2),
            "items_per_s": round(result.misses / seconds, 1) if result.misses and seconds > 0 else None,
        }
    return feats
