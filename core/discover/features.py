"""Discovery features of a node's products and the discovery pipeline for a node (pure: texts and arrays in).

Each product is embedded (by `core.steps.discover`, with the chosen text encoder) from two texts, the SimCLR
head's two modality views:

- the title without its brand and colour words;
- the title without its brand, then the description without its brand and its care-instruction sentences
  (first 600 characters).

Brands, colours and care boilerplate ("wipe with a clean, dry cloth") say nothing about what kind of product
it is, yet they dominate raw text neighbourhoods: products cluster by brand template and colour instead of
by type. Colour words come from the catalogue's own colour attributes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from core.data.dataset import PATH_SEP
from core.discover.clustering import CascadeClusterer
from core.discover.naming import ClusterNamer
from core.discover.pipeline import DiscoveryPipeline
from core.discover.simclr import SimCLRHead

DESCRIPTION_CHARS = 600
CARE_SENTENCE = re.compile(
    r"\b(wash|wipe|clean|cloth|polish|conditioner|dry|sunlight|care products|click here|machine|dust|damp|store)\b",
    re.IGNORECASE,
)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\s{2,}")
_COLOUR_VALUE = re.compile(r"^[A-Za-z][A-Za-z -]{1,30}$")


def debrand(title: str, brand: str | None) -> str:
    """The title without its brand name (case-insensitive, whole words)."""
    if not brand:
        return title
    cleaned = re.sub(rf"\b{re.escape(brand)}\b", " ", title, flags=re.IGNORECASE)
    return " ".join(cleaned.split()) or title


def colour_vocabulary(attributes: Iterable[dict[str, Any]], *, min_count: int = 20) -> list[str]:
    """Colour names of a catalogue: values of attributes whose key names a colour ("base_colour",
    "Strap Colour", also one level down under "attributes") that at least `min_count` products share,
    with their single words; lower-case, longest first (so "navy blue" is removed before "blue").
    """
    counts: Counter[str] = Counter()
    for attrs in attributes:
        items = list(attrs.items()) + list((attrs.get("attributes") or {}).items())
        for key, value in items:
            if isinstance(value, str) and ("colour" in key.lower() or "color" in key.lower()) and _COLOUR_VALUE.match(value):
                counts[value.strip().lower()] += 1
    names = {v for v, n in counts.items() if n >= min_count}
    words = {w for v in names for w in re.split(r"[ -]+", v) if len(w) > 2}
    return sorted(names | words, key=lambda w: (-len(w), w))


def colour_pattern(colours: list[str]) -> re.Pattern | None:
    """A regex matching any of `colours` as whole words (with a "-toned"/"-coloured" suffix), or None."""
    if not colours:
        return None
    alternatives = "|".join(re.escape(c) for c in colours)
    return re.compile(rf"\b({alternatives})(-toned|-coloured|-colored)?\b", re.IGNORECASE)


def without_care_sentences(description: str) -> str:
    """The description without the sentences about washing and care."""
    return " ".join(part for part in _SENTENCE_BREAK.split(description or "") if part and not CARE_SENTENCE.search(part))


def feature_texts(title: str, description: str, brand: str | None, colours: re.Pattern | None) -> tuple[str, str]:
    """The two texts a product is embedded from (see the module docstring)."""
    title = debrand(title, brand)
    plain = " ".join(colours.sub(" ", title).split()) if colours is not None else title
    text = f"{title}. {debrand(without_care_sentences(description), brand)[:DESCRIPTION_CHARS]}"
    return plain or title, text


def node_products(cat, node_path: str | None) -> np.ndarray:
    """Rows of `cat` whose label is `node_path` or below it (all labelled rows when None)."""
    prefix = tuple(node_path.split(PATH_SEP)) if node_path else ()
    return np.array([i for i, lab in enumerate(cat.labels) if lab and lab[: len(prefix)] == prefix], dtype=np.int64)


def min_cluster_size_for(n: int) -> int:
    """40 products for a large node (tuned on Footwear > Shoes, 7k products); 5% of a small one, at least 10."""
    return max(10, min(40, n // 20))


def make_pipeline(
    *,
    brands: list[str],
    taxonomy_names: list[str],
    cache_dir,
    n: int,
    blocks: tuple[int, ...],
    seed: int = 0,
    min_cluster_size: int | None = None,
    max_unassigned: float | None = 0.2,
) -> DiscoveryPipeline:
    """The discovery pipeline for a node of `n` products (see `core.discover.pipeline`).

    `blocks` are the widths of the feature blocks (the SimCLR head's modality views: two of the text encoder's
    dim); with two blocks the pipeline falls back to the raw embeddings' space when they cluster better
    (`DiscoveryPipeline`'s `raw_fallback`); `min_cluster_size` None picks `min_cluster_size_for(n)`; `max_unassigned`
    is the cascade's stage-4 budget (None: keep every cluster).
    """
    namer = ClusterNamer(taxonomy_names=taxonomy_names, extra_stop_words=[b for b in brands if b])
    return DiscoveryPipeline(
        head=SimCLRHead(blocks=blocks, seed=seed, threads=1, min_steps=200),
        clusterer=CascadeClusterer(
            min_cluster_size=min_cluster_size or min_cluster_size_for(n), max_unassigned=max_unassigned, seed=seed
        ),
        namer=namer,
        cache_dir=cache_dir,
        seed=seed,
        # two views (title | title + description): the raw space when it clusters better (H&M); chosen on held-out
        # nodes, and never for one view (photos): it chose wrongly on both Fashion-MNIST nodes, BENCHMARKS.md
        raw_fallback="default" if len(blocks) > 1 else None,
    )
