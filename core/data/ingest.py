"""Reading and checking a catalogue file (Parquet or CSV, plus images), without the database.

`find_catalog_file` and `read_catalog` read the file as strings; `validate` checks every row and raises one
`IngestError` that lists every problem with file, row and column; `build_records` turns the rows into product
records (core fields, other columns as attributes, category path, content hash); `check_images` decodes the
photos. `core.steps.ingest` writes the records to the database in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.data.images import UnreadableImage, open_image

Progress = Callable[[str, int, int], None]
CORE_FIELDS = ("id", "title", "description", "brand", "image")
MAX_LISTED = 20
MAX_CELL_CHARS = 1_000_000  # any one cell; longer is refused (a 100k-character title still goes in)
_CSV_FIELD_LIMIT = 2**31 - 1  # the csv module's own limit (128 KiB by default) would raise before a cell is checked


@dataclass(frozen=True)
class Limits:
    """The longest value each field may hold, checked before anything is written, so that SQLite (which does not
    enforce VARCHAR lengths) and PostgreSQL (which does) accept and refuse the same files. `core.steps.ingest`
    derives them from the database's column lengths; None: no limit of its own beyond `cell`."""

    cell: int = MAX_CELL_CHARS
    id: int | None = None
    brand: int | None = None
    category_name: int | None = None
    category_path: int | None = None  # of the whole path, its names joined with `path_sep`
    path_sep: str = " > "


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
    image_problems: list[str] = field(default_factory=list)  # by file, row and column
    problems: list[str] = field(default_factory=list)  # values cleaned on the way in (NUL, non-finite), by row and column
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.file}: {self.rows} rows -> {self.inserted} new, {self.updated} updated, {self.unchanged} unchanged"
            f" products; {self.labels_added} labels added, {self.labels_changed} changed; {self.nodes_created}"
            f" master categories created; images {self.image_status} ({self.images_checked} checked) in {self.seconds:.1f}s"
        ) + "".join(f"\nnote: {note}" for note in [*self.notes, *self._problem_notes()])

    def _problem_notes(self) -> list[str]:
        listed = [f"cleaned: {p}" for p in self.problems[:MAX_LISTED]]
        more = len(self.problems) - len(listed)
        return listed + ([f"... and {more} more cleaned values (see --json)"] if more > 0 else [])


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

    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    try:
        header = next(reader, None)
        if not header:
            raise IngestError(f"{path.name}: the file is empty.")
        problems = [
            Problem(path.name, row_no, None, f"malformed CSV: {len(row)} fields, the header has {len(header)}")
            for row_no, row in enumerate(reader, start=1)
            if row and len(row) != len(header)
        ]
    except csv.Error as exc:
        raise IngestError(f"{path.name}: malformed CSV at line {reader.line_num}: {exc}") from exc
    if problems:
        raise IngestError(f"{path.name}: malformed CSV, {len(problems)} row(s) do not match the header.", problems)


def _locate_bad_byte(path: Path, raw: bytes, offset: int) -> Problem:
    import csv
    import io

    line_no = raw.count(b"\n", 0, offset) + 1
    text = raw.decode("utf-8", errors="replace")
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    for row_no, row in enumerate(reader, start=1):
        for col, value in enumerate(row):
            if "\ufffd" in value:
                name = header[col] if col < len(header) else f"#{col + 1}"
                return Problem(path.name, row_no, name, f"invalid UTF-8 byte 0x{raw[offset]:02x} (line {line_no}, byte {offset})")
    return Problem(path.name, None, None, f"invalid UTF-8 byte 0x{raw[offset]:02x} at line {line_no}, byte {offset}")


def validate(df, *, mapping: ColumnMap, file: str, limits: Limits | None = None) -> list[tuple[str, ...]]:
    """Check the frame; returns each row's category path. Raises IngestError listing every problem.

    `limits`: the longest value of each field (default: only `MAX_CELL_CHARS` per cell); every value is checked
    before anything is written, so a value the database could not hold is a listed problem, not a traceback.
    """
    limits = limits or Limits()
    missing = [c for c in mapping.required() if c not in df.columns]
    if missing:
        raise IngestError(
            f"{file}: missing required columns {missing} (found {list(df.columns)}); map yours with --map KEY=COLUMN."
        )
    problems = _cell_problems(df, file=file, limit=limits.cell)
    too_long = {(p.row, p.column) for p in problems}
    ids = [_text(v) for v in df[mapping.id]]
    problems += _row_problems(df, ids, mapping=mapping, file=file, limits=limits, skip=too_long)
    paths = []
    for i, row in enumerate(_category_cells(df, mapping), start=1):
        path, problem = _parse_path(row, mapping, limits)
        if problem and (i, problem[0]) not in too_long:
            problems.append(Problem(file, i, problem[0], f"{problem[1]} (id {short(ids[i - 1])})"))
        paths.append(path)
    if problems:
        problems.sort(key=lambda p: p.row or 0)
        raise IngestError(f"{file}: {len(problems)} problem(s); nothing was imported.", problems)
    return paths


def _row_problems(df, ids: list[str], *, mapping: ColumnMap, file: str, limits: Limits, skip: set) -> list[Problem]:
    """Empty, duplicate or over-long ids, over-long brands, rows with nothing to classify."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    titles = df[mapping.title] if mapping.title else [""] * len(df)
    images = df[mapping.image] if mapping.image and mapping.image in df.columns else [None] * len(df)
    brands = df[mapping.brand] if mapping.brand and mapping.brand in df.columns else [None] * len(df)
    for i, (pid, title, image, brand) in enumerate(zip(ids, titles, images, brands), start=1):
        if (i, mapping.id) in skip:
            pass
        elif not pid:
            problems.append(Problem(file, i, mapping.id, "empty product id"))
        elif limits.id and len(pid) > limits.id:
            problems.append(Problem(file, i, mapping.id, f"product id of {len(pid):,} characters, over the limit of {limits.id}"))
        elif pid in seen:
            problems.append(Problem(file, i, mapping.id, f"duplicate id {short(pid)} (first at row {seen[pid]})"))
        else:
            seen[pid] = i
        if limits.brand and len(_text(brand)) > limits.brand and (i, mapping.brand) not in skip:
            problems.append(
                Problem(file, i, mapping.brand, f"brand of {len(_text(brand)):,} characters, over the limit of {limits.brand}")
            )
        if not _text(title) and not _text(image):  # a photo alone is enough to classify a product by
            where = mapping.title or mapping.image or "title"
            problems.append(Problem(file, i, where, f"empty title and no photo: nothing to classify (id {short(pid)})"))
    return problems


def _cell_problems(df, *, file: str, limit: int) -> list[Problem]:
    """Every cell longer than `limit` characters."""
    problems = []
    for col in df.columns:
        values = df[col].tolist()
        if max((len(v) for v in values if type(v) is str), default=0) <= limit:
            continue
        for i, value in enumerate(values, start=1):
            if isinstance(value, str) and len(value) > limit:
                problems.append(Problem(file, i, col, f"a cell of {len(value):,} characters, over the limit of {limit:,}"))
    return problems


def short(value: Any, keep: int = 60, *, quote: bool = True) -> str:
    """`value` for a message: its repr (or, with quote=False, itself), cut after `keep` characters (the full length
    said), so that a hostile 10 MB value is not copied into every message."""
    text = str(value)
    cut = text if len(text) <= keep else text[:keep]
    shown = repr(cut) if quote else cut
    return shown if len(text) <= keep else f"{shown}... ({len(text):,} characters)"


def _text(value: Any) -> str:
    return "" if value is None else " ".join(str(value).split())


def _category_cells(df, mapping: ColumnMap):
    if mapping.path:
        return ([v] for v in df[mapping.path])
    return zip(*(df[c] for c in mapping.levels)) if mapping.levels else ([] for _ in range(len(df)))


def _parse_path(cells, mapping: ColumnMap, limits: Limits | None = None) -> tuple[tuple[str, ...], tuple[str, str] | None]:
    """The category path of one row, or the (column, message) of what is wrong with it."""
    if mapping.path:
        raw = _text(cells[0])
        if not raw:
            return (), None
        parts = tuple(_text(p) for p in raw.split(mapping.path_sep))
        if any(not p for p in parts):
            return (), (mapping.path, f"malformed category path {short(raw)}: empty level")
        too_long = _path_too_long(parts, limits)
        return parts, (mapping.path, too_long[1]) if too_long else None
    parts = [_text(c) for c in cells]
    while parts and not parts[-1]:
        parts.pop()
    for col, part in zip(mapping.levels, parts):
        if not part:
            return (), (col, f"malformed category path {short(parts)}: level {col!r} is empty but a deeper level is set")
        if ">" in part:
            return (), (col, f"category name {short(part)} contains '>'")
    too_long = _path_too_long(tuple(parts), limits)
    return tuple(parts), (mapping.levels[too_long[0]], too_long[1]) if too_long else None


def _path_too_long(parts: tuple[str, ...], limits: Limits | None) -> tuple[int, str] | None:
    """(the level at fault, message) when a category name or the whole path is longer than the database holds."""
    if limits is None:
        return None
    for level, name in enumerate(parts):
        if limits.category_name and len(name) > limits.category_name:
            return level, f"category name {short(name)} is over the limit of {limits.category_name} characters"
    joined = len(limits.path_sep.join(parts))
    if limits.category_path and joined > limits.category_path:
        return len(parts) - 1, f"category path of {joined:,} characters, over the limit of {limits.category_path:,}"
    return None


def image_stamp(path: Path) -> str | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return f"{stat.st_size}:{int(stat.st_mtime)}"


def check_image(path: Path) -> tuple[str, str | None]:
    """('ok', None), ('missing', why) or ('unreadable', why) after fully decoding the image (`core.data.images`:
    a decompression bomb or a photo over the pixel limit is unreadable, refused before it is decoded)."""
    try:
        if not path.is_file():
            return "missing", "file not found"
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL
        return "unreadable", f"{type(exc).__name__}: {exc}"
    try:
        with open_image(path) as im:
            im.draft("RGB", (64, 64))  # JPEG: decode at reduced scale, still reads every byte
            im.load()
    except UnreadableImage as exc:
        return "unreadable", str(exc)
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
    for n, (row, path) in enumerate(zip(df.to_dict("records"), paths), start=1):
        attrs = {c: _jsonable(row[c]) for c in extra_cols if row[c] is not None and row[c] != ""}
        rec = {
            "external_id": _text(row[mapping.id]),
            "title": "" if not mapping.title or row[mapping.title] is None else str(row[mapping.title]).strip(),
            "description": str(row.get(mapping.description) or "") if mapping.description else "",
            "brand": _text(row.get(mapping.brand)) or None if mapping.brand else None,
            "image": _text(row.get(mapping.image)) or None if mapping.image else None,
            "attributes": attrs,
            "path": path,
            "row": n,  # the file's data row, for the problems listed later (not stored)
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
            return json.loads(value, parse_constant=lambda _: None)  # Infinity, NaN: not JSON, no database takes them
        except ValueError:
            return value
    if hasattr(value, "tolist"):  # numpy scalars and arrays (Parquet list columns)
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return value


def clean_frame(df, *, mapping: ColumnMap, file: str) -> list[Problem]:
    """Remove what no database should store, in place, and list each cell changed (by row and column): NUL
    characters (PostgreSQL text cannot hold them; SQLite would keep them) and non-finite numbers (Infinity, NaN in
    a number or inside a JSON cell: PostgreSQL's JSON refuses them), which become empty. The image column is left as
    it is: a photo path with a NUL is refused as a photo (`core.data.images.resolve_image`), not rewritten into
    another path."""
    problems: list[Problem] = []
    for col_no, col in enumerate(df.columns):
        if col == mapping.image:
            continue
        for i, value in enumerate(df[col].tolist()):
            if value is None or (type(value) is str and "\x00" not in value and value[:1] != "{"):
                continue  # the common case, without a call
            cleaned, what = _clean_value(value)
            if what:
                df.iat[i, col_no] = cleaned
                problems.append(Problem(file, i + 1, str(col), f"{' and '.join(sorted(what))} (kept the rest of the value)"))
    return problems


_NUL = "NUL character removed"
_NON_FINITE = "non-finite number (Infinity or NaN) made empty"


def _clean_value(value: Any) -> tuple[Any, set[str]]:
    """(the value without NULs and non-finite numbers, what was changed)."""
    if isinstance(value, str):
        what = {_NUL} if "\x00" in value else set()
        value = value.replace("\x00", "") if what else value
        if value[:1] == "{" and ("Infinity" in value or "NaN" in value or "\\u0000" in value):
            found: set[str] = set()
            try:
                parsed = json.loads(value, parse_constant=lambda _: found.add(_NON_FINITE))
            except ValueError:
                return value, what
            cleaned, inner = _clean_value(parsed)
            return (cleaned, what | found | inner) if found or inner else (value, what)
        return value, what
    if isinstance(value, float) or (hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0 and value.dtype.kind == "f"):
        return (None, {_NON_FINITE}) if not math.isfinite(float(value)) else (value, set())
    if isinstance(value, dict):
        pairs = [(_clean_value(k), _clean_value(v)) for k, v in value.items()]
        what = set().union(*(a[1] | b[1] for a, b in pairs)) if pairs else set()
        return ({a[0]: b[0] for a, b in pairs}, what) if what else (value, what)
    if isinstance(value, list | tuple) or getattr(value, "ndim", 0) >= 1:
        items = [_clean_value(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]
        what = set().union(*(w for _, w in items)) if items else set()
        return ([v for v, _ in items], what) if what else (value, what)
    return value, set()
