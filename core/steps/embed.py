"""`python -m core embed`: embed every product with the chosen encoders and record the choice for later steps."""

from __future__ import annotations

from collections.abc import Callable

from core.embed.choice import EncoderChoice, chosen_encoders, record_encoders
from core.embed.features import Features, embed_catalogue
from core.steps.catalogue import load_catalogue
from db.session import get_sessionmaker

Progress = Callable[[str, int, int], None]


def catalogue_features(
    cat, *, choice: EncoderChoice | None = None, titles: bool | None = None, device=None, progress: Progress | None = None
) -> Features:
    """Embeddings of `cat` with `choice` (default: the recorded choice), from the on-disk cache where present.
    `titles`: see `core.embed.features.embed_plan` (None: only when some product has a title)."""
    choice = choice or chosen_encoders()
    return embed_catalogue(cat, **choice.kwargs(), titles=titles, device=device, progress=progress)


def embed(
    db_url: str,
    *,
    choice: EncoderChoice | None = None,
    descriptions: bool = False,
    batch_size: int = 64,
    device=None,
    progress: Progress | None = None,
) -> Features:
    """Embed every product of the database (titles, photos, optionally title + description) and record `choice`
    (default: the recorded one, else the bundled encoders) so that train, review, discover and map use it."""
    choice = choice or chosen_encoders()
    with get_sessionmaker(db_url)() as s:
        cat = load_catalogue(s)
    feats = embed_catalogue(
        cat, **choice.kwargs(), descriptions=descriptions, batch_size=batch_size, device=device, progress=progress
    )
    record_encoders(choice)
    return feats
