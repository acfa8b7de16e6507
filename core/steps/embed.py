"""`python -m core embed`: embed every product with the chosen encoders and record the choice for later steps."""

from __future__ import annotations

from collections.abc import Callable

from core.embed.cache import CachedEmbeddings, cached_embed
from core.embed.choice import EncoderChoice, chosen_encoders, record_encoders
from core.embed.encoders import get_encoder
from core.embed.features import Features, embed_catalogue
from core.steps.catalogue import load_catalogue
from db.session import get_sessionmaker

Progress = Callable[[str, int, int], None]


def catalogue_features(
    cat,
    *,
    choice: EncoderChoice | None = None,
    titles: bool | None = None,
    device=None,
    progress: Progress | None = None,
    engine=None,
) -> Features:
    """Embeddings of `cat` with `choice` (default: the recorded choice), from the on-disk cache where present.
    `titles`: see `core.embed.features.embed_plan` (None: only when some product has a title). `engine`: None
    (embed the missing vectors here) or a `core.engine` engine (`open_engine("ray")`)."""
    choice = choice or chosen_encoders()
    return embed_catalogue(cat, **choice.kwargs(), titles=titles, device=device, progress=progress, engine=engine)


def embed(
    db_url: str,
    *,
    choice: EncoderChoice | None = None,
    embed_choice: EncoderChoice | None = None,
    descriptions: bool = False,
    batch_size: int = 64,
    device=None,
    progress: Progress | None = None,
    engine=None,
) -> Features:
    """Embed every product of the database (titles, photos, optionally title + description) and record `choice`
    (default: the recorded one, else the bundled encoders) so that train, review, discover and map use it.
    `embed_choice`: embed with these encoders now (a first start: the titles alone), still recording `choice`.
    `engine`: None (here) or a `core.engine` engine that embeds the missing vectors (the cache is written here)."""
    choice = choice or chosen_encoders()
    with get_sessionmaker(db_url)() as s:
        cat = load_catalogue(s)
    feats = embed_catalogue(
        cat,
        **(embed_choice or choice).kwargs(),
        descriptions=descriptions,
        batch_size=batch_size,
        device=device,
        progress=progress,
        engine=engine,
    )
    record_encoders(choice)
    return feats


def embed_file_titles(
    path, *, column: str = "title", choice: EncoderChoice | None = None, batch_size: int = 64, device=None, engine=None
) -> CachedEmbeddings:
    """Embed the titles of a Parquet file (`column`) into the embedding cache with the text encoder of `choice`,
    without a database: a later `embed` of the same titles, once ingested, finds them cached."""
    import pyarrow.parquet as pq

    titles = ["" if t is None else str(t) for t in pq.read_table(path, columns=[column]).column(column).to_pylist()]
    encoder = get_encoder((choice or chosen_encoders()).text)
    return cached_embed(encoder, titles, batch_size=batch_size, device=device, engine=engine)
