"""The Import page's background job (`core.jobs` kind "import"): ingest a catalogue file with the user's column
mapping, remember that mapping for the platform, embed the products, and predict every product with the active
model version when there is one. Each step's outcome goes to the job log.

Ingest validates everything first and writes in one transaction (nothing is written when the file has a problem);
it upserts by (platform, id), so a re-import updates the changed rows and adds the new ones: nothing is lost or
duplicated. Embed and predict come after that commit: when one of them fails, the imported products stay and the
log says which steps finished.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.data.ingest import ColumnMap, IngestError, Problem, read_catalog
from core.steps.embed import embed
from core.steps.ingest import ingest, prepare
from core.steps.predict import predict
from db import platforms
from db import predictions as preds
from db.session import get_sessionmaker, transaction

Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]
SUFFIXES = (".csv", ".parquet")


def mapping_to_dict(mapping: ColumnMap) -> dict[str, Any]:
    """The mapping as JSON (what the job's params and `db.platforms` store)."""
    out = asdict(mapping)
    out["levels"] = list(mapping.levels)
    return out


def mapping_from_dict(stored: dict[str, Any]) -> ColumnMap:
    """A `ColumnMap` from its stored shape (`db.platforms.check_mapping` checks it first)."""
    checked = platforms.check_mapping(stored)
    return ColumnMap(**{**checked, "levels": tuple(checked["levels"])})


def check_frame(df, *, mapping: ColumnMap, file: str) -> list[Problem]:
    """Every problem of the file under `mapping` (by row and column), before anything is written; [] when none.

    What ingest checks (`core.steps.ingest.prepare`: `core.data.ingest.validate` with the database's length limits),
    on a copy, plus one check of its own: with a path separator other than '>', a category name holding '>' would
    be split again where the database joins paths with ' > '.
    """
    try:
        prepare(df.copy(), mapping=mapping, file=file)
        problems: list[Problem] = []
    except IngestError as exc:
        problems = list(exc.problems) or [Problem(file, None, None, str(exc))]
    if mapping.path and mapping.path_sep.strip() != ">" and mapping.path in df.columns:
        for row, (pid, cell) in enumerate(zip(df[mapping.id] if mapping.id in df.columns else df.index, df[mapping.path]), 1):
            names = [" ".join(n.split()) for n in str(cell or "").split(mapping.path_sep)]
            if any(">" in n for n in names):
                problems.append(Problem(file, row, mapping.path, f"category name contains '>' in {cell!r} (id {pid!r})"))
        problems.sort(key=lambda p: p.row or 0)
    return problems


def images_root_for(db_url: str, *, platform: str, file: Path, images_root: str | None) -> str:
    """Where image paths are relative to: the folder given, else the platform's (so a re-import keeps its photos
    working), else the file's folder."""
    if images_root:
        return images_root
    with get_sessionmaker(db_url)() as s:
        known = platforms.platform_root(s, platform=platform)
    return known or str(file.parent)


def run_import(
    db_url: str,
    *,
    file: str,
    platform: str,
    mapping: dict[str, Any],
    images_root: str | None = None,
    name: str | None = None,
    actor: str = "import",
    progress: Progress | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Ingest `file` for `platform` with `mapping`, remember the mapping, embed, then predict when a model is active.

    `name` is the file as the user knows it (an upload's name) for the log; default: the file's path.

    Returns:
        what each step did: the ingest counts, how many products were embedded and predicted (None: skipped).
    """
    path, columns = Path(file), mapping_from_dict(mapping)
    shown_as = name or path.name
    problems = check_frame(read_catalog(path), mapping=columns, file=shown_as)
    if problems:
        raise IngestError(f"{shown_as}: {len(problems)} problem(s); nothing was imported.", problems)
    root = images_root_for(db_url, platform=platform, file=path, images_root=images_root)
    if progress:  # ingest itself reports nothing: its callbacks run inside its transaction, which holds SQLite's write
        progress("ingest", 0, 1)  # lock, so a progress row written then would wait for that very transaction
    report = ingest(path, platform=platform, db_url=db_url, mapping=columns, images_root=root, actor=actor)
    if progress:
        progress("ingest", 1, 1)
    with transaction(get_sessionmaker(db_url)) as s:
        platforms.remember_column_map(s, platform=platform, mapping=mapping_to_dict(columns))
    report.file = name or str(path)
    log(f"ingest: {report.summary()}")
    if report.image_problems:
        log(f"ingest: {len(report.image_problems)} photo(s) missing or unreadable (those products are text-only)")
    log(f"the column mapping is remembered for platform {platform!r}")
    result: dict[str, Any] = {"platform": platform, "inserted": report.inserted, "updated": report.updated}
    result.update(unchanged=report.unchanged, not_in_file=report.not_in_file, labels_changed=report.labels_changed)
    result.update(embedded=None, predicted=None)
    feats = embed(db_url, progress=progress)
    result["embedded"] = len(feats.product_ids)
    shown = ", ".join(f"{m}: {int(k.sum())}" for m, k in feats.masks.items())
    log(f"embed: {len(feats.product_ids)} products ({shown}); new ones embedded, the others read from the cache")
    result["predicted"] = _predict(db_url, progress=progress, log=log)
    log(_outcome(result))
    return result


def _predict(db_url: str, *, progress: Progress | None, log: Log) -> int | None:
    """Predict every product with the active model version; None (and why, in the log) when there is none."""
    with get_sessionmaker(db_url)() as s:
        active = preds.active_model_version(s)
    if active is None:
        log("predict: skipped, no model is active yet: train one first (Retrain on the Models page, or `python -m core train`)")
        return None
    tick = (lambda stage, done, total: progress(f"predict ({stage})", done, total)) if progress else None
    return predict(db_url, progress=tick, log=lambda line: log(f"predict: {line}"))


def _outcome(result: dict[str, Any]) -> str:
    predicted = {None: "not predicted (no active model: train one first)", 0: "predictions already up to date"}.get(
        result["predicted"], f"{result['predicted']} predicted"
    )
    return (
        f"imported into {result['platform']!r}: {result['inserted']} new, {result['updated']} updated, "
        f"{result['unchanged']} unchanged products; {result['embedded']} embedded; {predicted}"
    )
