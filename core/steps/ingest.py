"""Ingest a catalogue file (Parquet or CSV, plus images) into the taxonomy database.

Validate everything first (`core.data.ingest`) and report every problem with file, row and column; then upsert
products keyed by (platform, product id), import the platform's own category tree (`db.mappings`), and check
images, all in one transaction: a failed ingest changes nothing.

The master taxonomy grows only from the platform that seeds it (the first one ingested into an empty database,
or one ingested with `seed_master=True`): its categories become master nodes and its products get `platform`
labels. Any other platform's products get master labels only through its confirmed category mappings
(`python -m core mapping suggest`, the Mapping page); ingest keeps those labels in step with the file.
Re-running on the same file changes nothing and skips image files that did not change.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from sqlalchemy import delete, insert, select, update

from core.config import database_url
from core.data.fetch import FetchIndex, is_url
from core.data.fetch import fetch_images as fetch
from core.data.images import resolve_image
from core.data.ingest import (
    ColumnMap,
    IngestError,
    IngestReport,
    Limits,
    Problem,
    Progress,
    build_records,
    check_images,
    clean_frame,
    find_catalog_file,
    image_stamp,
    read_catalog,
    short,
    validate,
)
from db import mappings, repo
from db.models import PATH_SEP, AuditEvent, Label, Platform, PlatformCategory, Product, TaxonomyNode, utcnow
from db.session import get_sessionmaker, transaction


def _length(*columns) -> int:
    """The shortest declared length of `columns` (VARCHAR(n)): what every backend can hold."""
    return min(c.type.length for c in columns)


FIELD_LIMITS = Limits(
    id=_length(Product.external_id),
    brand=_length(Product.brand),
    category_name=_length(PlatformCategory.name, TaxonomyNode.name),
    category_path=_length(PlatformCategory.path, TaxonomyNode.path),
    path_sep=PATH_SEP,
)


def prepare(df, *, mapping: ColumnMap, file: str) -> tuple[list[tuple[str, ...]], list[Problem]]:
    """Clean and check a catalogue frame as ingest does, before anything is written: (each row's category path,
    the values cleaned on the way in). Raises IngestError listing every problem by row and column, including every
    value longer than its database column (`FIELD_LIMITS`)."""
    cleaned = clean_frame(df, mapping=mapping, file=file)
    return validate(df, mapping=mapping, file=file, limits=FIELD_LIMITS), cleaned


def _check_names(platform: str, actor: str) -> None:
    for what, value, limit in (("platform", platform, _length(Platform.name)), ("actor", actor, _length(AuditEvent.actor))):
        if not value or "\x00" in value or len(value) > limit:
            raise IngestError(f"The {what} name {short(value)} must be 1 to {limit} characters, without NUL.")


def ingest(
    catalog: str | Path,
    *,
    platform: str,
    db_url: str | None = None,
    mapping: ColumnMap | None = None,
    limit: int | None = None,
    images_root: str | Path | None = None,
    actor: str = "ingest",
    fetch_images: bool = False,
    seed_master: bool | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Validate and upsert a catalogue into the database in one transaction.

    Args:
        catalog: a .parquet/.csv file, or a folder holding products.parquet or products.csv.
        platform: the platform (shop) the products come from; ids are unique per platform.
        db_url: database URL (default: `$DATABASE_URL` or the SQLite file under ./data).
        mapping: which columns hold id, title, category...; default: the shared catalogue's.
        limit: only the first `limit` rows.
        images_root: folder image paths are relative to (default: the catalogue file's folder).
        fetch_images: download photos given as http(s) URLs first (`core.data.fetch`: bounded size, timeout,
            image content types only, resumable); without it such products stay text-only until fetched.
        seed_master: the platform's categories are master categories (default: when it already seeds the
            master taxonomy, or the master taxonomy is still empty).
        progress: called as progress(stage, done, total).

    Returns:
        An IngestReport. Raises IngestError (nothing written) on bad input.
    """
    started = time.perf_counter()
    mapping = mapping or ColumnMap()
    _check_names(platform, actor)
    path = find_catalog_file(catalog)
    df = read_catalog(path)
    if limit is not None:
        df = df.iloc[:limit].copy()
    paths, cleaned = prepare(df, mapping=mapping, file=path.name)
    records = build_records(df, mapping=mapping, paths=paths)
    root = Path(images_root) if images_root else path.parent
    report = IngestReport(platform=platform, file=str(path), rows=len(records), problems=[str(p) for p in cleaned])
    urls = [rec["image"] for rec in records if is_url(rec["image"])]
    index = fetch(urls, progress=progress) if fetch_images and urls else FetchIndex()  # network outside the transaction
    resolve_remote_images(records, index, report=report, fetched=fetch_images, column=mapping.image)
    with transaction(get_sessionmaker(db_url or database_url())) as session:
        _upsert(
            session,
            records,
            root=root,
            report=report,
            actor=actor,
            progress=progress,
            seed_master=seed_master,
            column=mapping.image,
        )
    report.seconds = time.perf_counter() - started
    return report


def resolve_remote_images(records, index: FetchIndex, *, report: IngestReport, fetched: bool, column: str | None = None) -> None:
    """Point each record whose image is a URL at its fetched file when there is one (its content hash follows);
    the others stay "remote" (text-only for the models, no photo on the pages) and the report says so."""
    remote = 0
    for rec in records:
        if not is_url(rec["image"]):
            continue
        url, local = rec["image"], index.local_file(rec["image"])
        if local is not None:
            rec["attributes"] = {**rec["attributes"], "image_url": url}
            rec["image"] = str(local)
            rec["image_root"] = index.folder  # a fetched photo lives in the fetch folder, not the platform's
            rec["content_hash"] = hashlib.sha256(f"{rec['content_hash']}|{local.name}".encode()).hexdigest()
            continue
        remote += 1
        entry = index.entries.get(url)
        if fetched and entry is not None and entry.problem:
            where = Problem(
                Path(report.file).name, rec["row"], column, f"product {short(rec['external_id'])}: {short(url, 200, quote=False)}"
            )
            report.image_problems.append(f"{where}: not fetched ({entry.problem})")
    if remote and not fetched:
        report.notes.append(
            f"{remote} products have photo URLs that were not fetched: they are text-only until "
            "`python -m core ingest --fetch-images` downloads them"
        )


def _upsert(
    session, records, *, root: Path, report: IngestReport, actor: str, progress: Progress | None, seed_master, column
) -> None:
    plat = repo.get_or_create_platform(session, name=report.platform, root=str(root.resolve()))
    if seed_master is None:
        seed_master = plat.seeds_master or session.scalar(select(TaxonomyNode.id).limit(1)) is None
    plat.seeds_master = plat.seeds_master or bool(seed_master)
    existing = {
        r.external_id: r
        for r in session.execute(
            select(
                Product.id,
                Product.external_id,
                Product.content_hash,
                Product.image,
                Product.image_stamp,
                Product.image_status,
                Product.platform_category_id,
            ).where(Product.platform_id == plat.id)
        )
    }
    _apply_image_checks(records, existing, root=root, report=report, progress=progress, column=column)
    categories = _write_categories(session, plat.id, records)
    _write_products(session, plat.id, records, existing, report=report, progress=progress)
    if plat.seeds_master:
        _write_labels(session, plat.id, records, categories, report=report, actor=actor)
    else:
        _write_mapped_labels(session, plat.id, plat.name, categories, report=report, actor=actor)
    report.not_in_file = len(set(existing) - {r["external_id"] for r in records})
    statuses = report.image_status
    for rec in records:
        statuses[rec["image_status"]] = statuses.get(rec["image_status"], 0) + 1
    if report.inserted or report.updated or report.labels_added or report.labels_changed or report.nodes_created:
        repo.write_audit(session, actor=actor, action="ingest", summary=report.summary(), after=report.as_dict())


def _write_categories(session, platform_id: int, records) -> dict[tuple[str, ...], int]:
    """The platform's own category tree from the records' paths; sets each record's `platform_category_id`."""
    cache: dict = {}
    ids: dict[tuple[str, ...], int] = {}
    for rec in records:
        path = tuple(rec["path"]) if rec["path"] else None
        if path and path not in ids:
            ids[path] = mappings.ensure_category(session, platform_id, path, cache).id
        rec["platform_category_id"] = ids.get(path) if path else None
    return ids


def _apply_image_checks(records, existing, *, root: Path, report: IngestReport, progress: Progress | None, column) -> None:
    """Set image_status/image_stamp on each record; decode only files that are new or changed. A path that leaves
    the image folder (`..`, absolute, a symlink), holds a NUL or cannot be named is refused before any file is
    touched: the photo is "unreadable" (never served), the problem listed by row and column."""
    todo, refused = [], {}
    for rec in records:
        image = rec["image"]
        if not image:
            rec["image_status"], rec["image_stamp"] = "none", None
        elif image.startswith(("http://", "https://")):
            rec["image_status"], rec["image_stamp"] = "remote", None
        else:
            file, why = resolve_image(rec.get("image_root") or root, image)
            rec["image"] = image.replace("\x00", "")  # what is stored; the photo itself stays refused
            rec["image_stamp"] = image_stamp(file) if file else None
            old = existing.get(rec["external_id"])
            if why:
                refused[rec["external_id"]] = ("unreadable", why)
            elif old is not None and old.image == image and old.image_stamp == rec["image_stamp"] and rec["image_stamp"]:
                rec["image_status"] = old.image_status
            else:
                todo.append((rec["external_id"], file))
    results = {**check_images(todo, progress=progress), **refused}
    report.images_checked = len(todo)
    by_id = {rec["external_id"]: rec for rec in records}
    name = Path(report.file).name
    for key, (status, why) in results.items():
        rec = by_id[key]
        rec["image_status"] = status
        if why:
            where = Problem(name, rec["row"], column, f"product {short(key)}: {short(rec['image'], 200, quote=False)}")
            report.image_problems.append(f"{where}: {status} ({why})")


def _write_products(session, platform_id: int, records, existing, *, report: IngestReport, progress: Progress | None) -> None:
    cols = (
        "title",
        "description",
        "brand",
        "image",
        "attributes",
        "content_hash",
        "image_status",
        "image_stamp",
        "platform_category_id",
    )
    new, changed = [], []
    for rec in records:
        old = existing.get(rec["external_id"])
        values = {c: rec[c] for c in cols}
        if old is None:
            new.append({"platform_id": platform_id, "external_id": rec["external_id"], **values})
        elif (
            old.content_hash != rec["content_hash"]
            or old.image_status != rec["image_status"]
            or old.image_stamp != rec["image_stamp"]
            or old.platform_category_id != rec["platform_category_id"]
        ):
            changed.append({"id": old.id, "updated_at": utcnow(), **values})
    for start in range(0, len(new), 5000):
        session.execute(insert(Product), new[start : start + 5000])
        if progress:
            progress("products", min(start + 5000, len(new)), len(new))
    if changed:
        session.execute(update(Product), changed)
    report.inserted, report.updated = len(new), len(changed)
    report.unchanged = len(records) - len(new) - len(changed)


def _write_labels(session, platform_id: int, records, categories, *, report: IngestReport, actor: str) -> None:
    """A master-seeding platform: its paths become master nodes, its products get `platform` labels, and each of its
    categories a confirmed identity mapping."""
    ids = dict(session.execute(select(Product.external_id, Product.id).where(Product.platform_id == platform_id)).all())
    current = {
        r.product_id: r
        for r in session.execute(
            select(Label.id, Label.product_id, Label.node_id)
            .join(Product, Product.id == Label.product_id)
            .where(Product.platform_id == platform_id, Label.source == "platform")
        )
    }
    cache: dict = {}
    new, changed, pairs = [], [], {}
    for rec in records:
        if not rec["path"]:
            continue
        node, created = repo.ensure_path(session, rec["path"], cache)
        report.nodes_created += created
        pairs[rec["platform_category_id"]] = node.id
        pid = ids[rec["external_id"]]
        old = current.get(pid)
        if old is None:
            new.append({"product_id": pid, "node_id": node.id, "source": "platform", "actor": actor})
        elif old.node_id != node.id:
            changed.append({"id": old.id, "node_id": node.id})
    if new:
        session.execute(insert(Label), new)
    if changed:
        session.execute(update(Label), changed)
    mappings.seed_mappings(session, pairs.items())
    report.labels_added, report.labels_changed = len(new), len(changed)


def _write_mapped_labels(session, platform_id: int, platform: str, categories, *, report: IngestReport, actor: str) -> None:
    """Another platform: master labels only from its confirmed mappings; the report says what is still unmapped."""
    touched = mappings.sync_mapping_labels(session, categories.values(), actor=actor)
    uncategorised = select(Product.id).where(Product.platform_id == platform_id, Product.platform_category_id.is_(None))
    dropped = session.execute(
        delete(Label).where(Label.source == mappings.MAPPING_SOURCE, Label.product_id.in_(uncategorised))
    ).rowcount
    # a product that lost its category loses that category's master label (counted as changed)
    report.labels_added = sum(1 for _, old in touched if old is None)
    report.labels_changed = len(touched) - report.labels_added + (dropped or 0)
    mapped = mappings.mapped_targets(session, categories.values())
    unmapped = [c for c in categories.values() if c not in mapped]
    if unmapped:
        report.notes.append(
            f"{len(unmapped)} of {len(categories)} categories of {platform!r} have no confirmed master mapping: their "
            f"products stay out of training until mapped (`python -m core mapping suggest --platform {platform}`, "
            "then confirm on the Mapping page)"
        )
