"""Per-platform settings: the column mapping of a platform's catalogue files, remembered by the Import page so that
next month's file re-imports without mapping it again.

A mapping is a plain dict (db imports nothing of core; `core.steps.import_job` turns it into a
`core.data.ingest.ColumnMap`): {"id": COLUMN, "title": COLUMN or None, "description": COLUMN or None, "brand": ...,
"image": ..., "levels": [COLUMN, ...], "path": COLUMN or None, "path_sep": ">"}; without a title (a photo-only
catalogue) the image column is required. Each function is one unit of work: the caller runs it in one transaction
(`with transaction(factory) as s:`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import repo
from db.models import Platform, Product

MAPPING_KEYS = ("id", "title", "description", "brand", "image", "levels", "path", "path_sep")
REQUIRED_KEYS = ("id",)
OPTIONAL_KEYS = ("title", "description", "brand", "image", "path")  # no title: a photo-only catalogue (an image then)


def check_mapping(mapping: dict[str, Any]) -> dict[str, Any]:
    """The mapping in its stored shape (every key present); ValueError naming what is wrong with it."""
    unknown = sorted(set(mapping) - set(MAPPING_KEYS))
    if unknown:
        raise ValueError(f"unknown keys {unknown} in the column mapping; use {list(MAPPING_KEYS)}")
    for key in REQUIRED_KEYS:
        if not isinstance(mapping.get(key), str) or not mapping[key].strip():
            raise ValueError(f"the column mapping needs a column for {key!r}")
    for key in OPTIONAL_KEYS:
        if mapping.get(key) is not None and not isinstance(mapping[key], str):
            raise ValueError(f"the column mapping's {key!r} must be a column name or None")
    if not _named(mapping.get("title")) and not _named(mapping.get("image")):
        raise ValueError("the column mapping needs a column for 'title', or one for 'image' (a photo-only catalogue)")
    levels = mapping.get("levels") or []
    if not isinstance(levels, list | tuple) or not all(isinstance(c, str) and c for c in levels):
        raise ValueError("the column mapping's 'levels' must be a list of column names")
    if mapping.get("path") and levels:
        raise ValueError("the category comes from level columns or from one path column, not both")
    sep = mapping.get("path_sep", ">")
    if not isinstance(sep, str) or not sep.strip():
        raise ValueError("the path separator must be a non-blank string such as '>' or '>>'")
    return {
        **{key: mapping.get(key) for key in (*REQUIRED_KEYS, *OPTIONAL_KEYS)},
        "levels": list(levels),
        "path_sep": sep,
    }


def _named(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def remember_column_map(session: Session, *, platform: str, mapping: dict[str, Any]) -> Platform:
    """Store `mapping` as the platform's (the platform is created when it is new); returns the platform."""
    stored = check_mapping(mapping)
    plat = repo.get_or_create_platform(session, name=platform)
    plat.column_map = stored  # a new dict: the JSON column sees the change
    session.flush()
    return plat


def column_map(session: Session, *, platform: str) -> dict[str, Any] | None:
    """The platform's remembered mapping, or None (unknown platform, or none remembered yet)."""
    return session.scalar(select(Platform.column_map).where(Platform.name == platform))


def remembered_column_maps(session: Session) -> dict[str, dict[str, Any]]:
    """{platform name: mapping} of every platform with a remembered mapping, by name."""
    rows = session.execute(select(Platform.name, Platform.column_map).order_by(Platform.name)).all()
    return {name: mapping for name, mapping in rows if mapping}


def platform_names(session: Session) -> list[str]:
    return list(session.scalars(select(Platform.name).order_by(Platform.name)))


def platform_root(session: Session, *, platform: str) -> str | None:
    """The folder the platform's image paths are relative to (None: unknown platform or never set)."""
    return session.scalar(select(Platform.root).where(Platform.name == platform))


def known_ids(session: Session, *, platform: str, ids: Iterable[str]) -> int:
    """How many of `ids` the platform already has as products (an import updates those, adds the others)."""
    wanted = sorted({str(i) for i in ids})
    found = 0
    for start in range(0, len(wanted), 900):  # SQLite's bound-parameter limit
        found += session.scalar(
            select(func.count(Product.id))
            .join(Platform, Platform.id == Product.platform_id)
            .where(Platform.name == platform, Product.external_id.in_(wanted[start : start + 900]))
        )
    return found
