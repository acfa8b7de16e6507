"""The catalogue as arrays for the ML steps: texts, image paths and label paths (`core.steps.catalogue` reads it
from the database)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# between the names of a category path ("Footwear > Shoes > Heels"); the same as db.models.PATH_SEP, which
# the pure packages do not import
PATH_SEP = " > "


@dataclass
class Catalogue:
    """Products in a fixed order (by product id). Lists are aligned with `product_ids`."""

    product_ids: np.ndarray  # (N,) int64
    external_ids: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # what the text encoder reads
    images: list[str | None] = field(default_factory=list)  # readable photo file, else None
    labels: list[tuple[str, ...] | None] = field(default_factory=list)  # effective label path
    label_sources: list[str | None] = field(default_factory=list)
    descriptions: list[str] = field(default_factory=list)  # the start of each description ("" when none)

    def __len__(self) -> int:
        return len(self.product_ids)

    @property
    def has_image(self) -> np.ndarray:
        """(N,) bool."""
        return np.array([img is not None for img in self.images], dtype=bool)

    @property
    def labelled(self) -> np.ndarray:
        """(N,) bool."""
        return np.array([lab is not None for lab in self.labels], dtype=bool)

    @property
    def at_inner_node(self) -> np.ndarray:
        """(N,) bool: labelled by a category mapping (source "mapping") at a node that other labels go below (a
        platform category mapped onto a common ancestor): such a label says where the product is, not which leaf,
        so training leaves it out. A person's or a platform's label at an inner node is kept as it always was."""
        prefixes = {lab[:d] for lab in self.labels if lab for d in range(1, len(lab))}
        sources = self.label_sources if len(self.label_sources) == len(self.labels) else [None] * len(self.labels)
        return np.array(
            [lab is not None and src == "mapping" and tuple(lab) in prefixes for lab, src in zip(self.labels, sources)],
            dtype=bool,
        )

    @property
    def trainable(self) -> np.ndarray:
        """(N,) bool: labelled at a leaf (what training, review scoring and evaluation use)."""
        return self.labelled & ~self.at_inner_node

    def subset(self, rows: np.ndarray) -> Catalogue:
        rows = np.asarray(rows)
        pick = lambda xs: [xs[i] for i in rows]  # noqa: E731
        return Catalogue(
            self.product_ids[rows],
            pick(self.external_ids),
            pick(self.platforms),
            pick(self.titles),
            pick(self.texts),
            pick(self.images),
            pick(self.labels),
            pick(self.label_sources),
            pick(self.descriptions) if self.descriptions else [],
        )


def product_text(title: str, description: str | None, *, max_description_chars: int = 300) -> str:
    """Title, then the start of the description (the text encoder's input)."""
    desc = " ".join((description or "").split())[:max_description_chars]
    return f"{title.strip()}. {desc}" if desc else title.strip()
