"""Reading and checking a catalogue file (Parquet or CSV, plus images), without the database.

`find_catalog_file` and `read_catalog` read the file as strings; `validate` checks every row and raises one
`IngestError` that lists every problem with file, row and column; `build_records` turns the rows into product
records (core fields, other columns as attributes, category path, content hash); `check_images` decodes the
photos. `core.steps.ingest` writes the records to the database in one transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Progress = Callable[[str, int, int], None]
CORE_FIELDS = ("id", "title", "description", "brand", "image")
MAX_LISTED = 20


@dataclass(frozen=True)
class ColumnMap:
    """Which catalogue columns hold what. The category is either `levels` columns or one `path` column.

    Every other column of the file is kept in the product's attributes.
    """

    id: str = "id"
    title: str | None = "title"  # None: a photo-only catalogue (every row must then have an image)
    description: str | None = "description"
    brand: str | None = "brand"
    image: str | None = "image"
    levels: tuple[str, ...] = ("master_category", "sub_category", "article_type")
    path: str | None = None
    path_sep: str = ">"

    @classmethod
    def parse(cls, specs: list[str] | None) -> ColumnMap:
        """From CLI specs like ['id=sku', 'path=category', 'levels=l1,l2']; 'none' drops an optional column."""
        values: dict[str, Any] = {}
        for spec in specs or []:
            key, sep, value = spec.partition("=")
            if not sep or key not in cls.__dataclass_fields__:
                raise IngestError(f"Bad column mapping {spec!r}: use KEY=COLUMN with KEY in {list(cls.__dataclass_fields__)}.")
            values[key] = None if value.lower() == "none" else value
        if "levels" in values:
            values["levels"] = tuple(c.strip() for c in (values["levels"] or "").split(",") if c.strip())
        if "path" in values and "levels" not in values:
            values["levels"] = ()
        return cls(**values)

    def required(self) -> list[str]:
        return [self.id, *([self.title] if self.title else []), *self.levels, *([self.path] if self.path else [])]


@dataclass
class Problem:
    file: str
    row: int | None  # 1-based data row (the header is not a row)
    column: str | None
    message: str

    def __str__(self) -> str:
        where = ", ".join(
            x for x in (self.file, f"row {self.row}" if self.row else "", f"column {self.column!r}" if self.column else "") if x
        )
        return f"{where}: {self.message}"


class IngestError(ValueError):
    """Bad input; `problems` lists every one found, each naming file, row and column."""

    def __init__(self, message: str, problems: list[Problem] | None = None):
        self.problems = problems or []
        listed = "\n".join(f"  - {p}" for p in self.problems[:MAX_LISTED])
        more = f"\n  ... and {len(self.problems) - MAX_LISTED} more" if len(self.problems) > MAX_LISTED else ""
        super().__init__(message + (f"\n{listed}{more}" if listed else ""))


@dataclass
class IngestReport:
    platform: str
    file: str
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    not_in_file: int = 0
    labels_added: int = 0
    labels_changed: int = 0
    nodes_created: int = 0
    images_checked: int = 0
    image_status: dict[str, int] = field(default_factory=dict)
    image_problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.file}: {self.rows} rows -> {self.inserted} new, {self.updated} updated, {self.unchanged} unchanged"
            f" products; {self.labels_added} labels added, {self.labels_changed} changed; {self.nodes_created}"
            f" master categories created; images {self.image_status} ({self.images_checked} checked) in {self.seconds:.1f}s"
        ) + "".join(f"\nnote: {note}" for note in self.notes)


def find_catalog_file(catalog: str | Path) -> Path:
    """The catalogue file: `catalog` itself, or products.parquet / products.csv inside a folder."""
    path = Path(catalog)
    if path.is_dir():
        for name in ("products.parquet", "products.csv"):
            if (path / name).exists():
                return path / name
        raise IngestError(f"{path}: no products.parquet or products.csv in this folder.")
    if not path.exists():
        raise IngestError(f"{path}: no such file.")
    return path


def read_catalog(path: Path):
    """Read a Parquet or CSV catalogue as strings; bad files raise IngestError naming file and place."""
    import pandas as pd

    readers = {".parquet": _read_parquet, ".csv": _read_csv, ".tsv": _read_csv}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise IngestError(f"{path.name}: unsupported file type {path.suffix!r}; use .parquet or .csv.")
    df = reader(path)
    return df.astype(object).where(pd.notna(df), None)


def _read_parquet(path: Path):
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise IngestError(f"{path.name}: not a readable Parquet file ({exc}).") from exc


def _read_csv(path: Path):
    import pandas as pd

    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError("Text is not UTF-8.", [_locate_bad_byte(path, raw, exc.start)]) from exc
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    _check_field_counts(path, raw.decode("utf-8"), sep)
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8", index_col=False)
    except pd.errors.ParserError as exc:
        raise IngestError(f"{path.name}: malformed CSV: {exc}") from exc
    except pd.errors.EmptyDataError as exc:
        raise IngestError(f"{path.name}: the file is empty.") from exc


def _check_field_counts(path: Path, text: str, sep: str) -> None:
    """Every record must have as many fields as the header; lists each one that does not."""
    import csv
    import io

    reader = csv.reader(io.StringIO(text), delimiter=sep)
    header = next(reader, None)
    if not header:
        raise IngestError(f"{path.name}: the file is empty.")
    problems = [
        Problem(path.name, row_no, None, f"malformed CSV: {len(row)} fields, the header has {len(header)}")
        for row_no, row in enumerate(reader, start=1)
        if row and len(row) != len(header)
    ]
    if problems:
        raise IngestError(f"{path.name}: malformed CSV, {len(problems)} row(s) do not match the header.", problems)


def _locate_bad_byte(path: Path, raw: bytes, offset: int) -> Problem:
    import csv
    import io

    line_no = raw.count(b"\n", 0, offset) + 1
    text = raw.decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    for row_no, row in enumerate(reader, start=1):
        for col, value in enumerate(row):
            if "\ufffd" in value:
                name = header[col] if col < len(header) else f"#{col + 1}"
                return Problem(path.name, row_no, name, f"invalid UTF-8 byte 0x{raw[offset]:02x} (line {line_no}, byte {offset})")
    return Problem(path.name, None, None, f"invalid UTF-8 byte 0x{raw[offset]:02x} at line {line_no}, byte {offset}")


def validate(df, *, mapping: ColumnMap, file: str) -> list[tuple[str, ...]]:
    """Check the frame; returns each row's category path. Raises IngestError listing every problem."""
    missing = [c for c in mapping.required() if c not in df.columns]
    if missing:
        raise IngestError(
            f"{file}: missing required columns {missing} (found {list(df.columns)}); map yours with --map KEY=COLUMN."
        )
    problems: list[Problem] = []
    ids = [_text(v) for v in df[mapping.id]]
    seen: dict[str, int] = {}
    paths = []
    titles = df[mapping.title] if mapping.title else [""] * len(df)
    images = df[mapping.image] if mapping.image and mapping.image in df.columns else [None] * len(df)
    for i, (pid, title, image) in enumerate(zip(ids, titles, images), start=1):
        if not pid:
            problems.append(Problem(file, i, mapping.id, "empty product id"))
        elif pid in seen:
            problems.append(Problem(file, i, mapping.id, f"duplicate id {pid!r} (first at row {seen[pid]})"))
        else:
            seen[pid] = i
        if not _text(title) and not _text(image):  # a photo alone is enough to classify a product by
            where = mapping.title or mapping.image or "title"
            problems.append(Problem(file, i, where, f"empty title and no photo: nothing to classify (id {pid!r})"))
    for i, row in enumerate(_category_cells(df, mapping), start=1):
        path, problem = _parse_path(row, mapping)
        if problem:
            problems.append(Problem(file, i, problem[0], f"{problem[1]} (id {ids[i - 1]!r})"))
        paths.append(path)
    if problems:
        problems.sort(key=lambda p: p.row or 0)
        raise IngestError(f"{file}: {len(problems)} problem(s); nothing was imported.", problems)
    return paths


def _text(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


def _category_cells(df, mapping: ColumnMap):
    if mapping.path:
        return ([v] for v in df[mapping.path])
    return zip(*(df[c] for c in mapping.levels)) if mapping.levels else ([] for _ in range(len(df)))


def _parse_path(cells, mapping: ColumnMap) -> tuple[tuple[str, ...], tuple[str, str] | None]:
    """The category path of one row, or the (column, message) of what is wrong with it."""
    if mapping.path:
        raw = _text(cells[0])
        if not raw:
            return (), None
        parts = tuple(_text(p) for p in raw.split(mapping.path_sep))
        if any(not p for p in parts):
            return (), (mapping.path, f"malformed category path {raw!r}: empty level")
        return parts, None
    parts = [_text(c) for c in cells]
    while parts and not parts[-1]:
        parts.pop()
    for col, part in zip(mapping.levels, parts):
        if not part:
            return (), (col, f"malformed category path {parts}: level {col!r} is empty but a deeper level is set")
        if ">" in part:
            return (), (col, f"category name {part!r} contains '>'")
    return tuple(parts), None


def image_stamp(path: Path) -> str | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return f"{stat.st_size}:{int(stat.st_mtime)}"


def check_image(path: Path) -> tuple[str, str | None]:
    """('ok', None), ('missing', why) or ('unreadable', why) after fully decoding the image."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        return "missing", "file not found"
    try:
        with Image.open(path) as im:
            im.draft("RGB", (64, 64))  # JPEG: decode at reduced scale, still reads every byte
            im.load()
            if im.width < 1 or im.height < 1:
                return "unreadable", "empty image"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        return "unreadable", f"{type(exc).__name__}: {exc}"
    return "ok", None


def check_images(
    items: list[tuple[str, Path]], *, workers: int = 4, progress: Progress | None = None
) -> dict[str, tuple[str, str | None]]:
    """Check many images in threads; items are (key, path); returns {key: (status, problem)}."""
    out: dict[str, tuple[str, str | None]] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for n, (key, result) in enumerate(zip((k for k, _ in items), pool.map(check_image, (p for _, p in items))), start=1):
            out[key] = result
            if progress and (n % 200 == 0 or n == len(items)):
                progress("images", n, len(items))
    return out


def build_records(df, *, mapping: ColumnMap, paths: list[tuple[str, ...]]) -> list[dict[str, Any]]:
    """One dict per row: the core fields, the other columns as attributes, the category path and a content hash."""
    known = {
        c
        for c in (mapping.id, mapping.title, mapping.description, mapping.brand, mapping.image, mapping.path, *mapping.levels)
        if c
    }
    extra_cols = [c for c in df.columns if c not in known]
    records = []
    for row, path in zip(df.to_dict("records"), paths):
        attrs = {c: _jsonable(row[c]) for c in extra_cols if row[c] is not None and row[c] != ""}
        rec = {
            "external_id": _text(row[mapping.id]),
            "title": "" if not mapping.title or row[mapping.title] is None else str(row[mapping.title]).strip(),
            "description": str(row.get(mapping.description) or "") if mapping.description else "",
            "brand": _text(row.get(mapping.brand)) or None if mapping.brand else None,
            "image": _text(row.get(mapping.image)) or None if mapping.image else None,
            "attributes": attrs,
            "path": path,
        }
        rec["content_hash"] = hashlib.sha256(
            json.dumps(
                {k: rec[k] for k in ("title", "description", "brand", "image", "attributes")}, sort_keys=True, default=str
            ).encode()
        ).hexdigest()
        records.append(rec)
    return records


def _jsonable(value: Any) -> Any:
    if isinstance(value, str) and value[:1] == "{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if hasattr(value, "item"):
        return value.item()
    return value
