"""The Streamlit side of the Import page: where the file comes from (an upload, saved under the data folder by
content hash, or a path on the server), its rows read once per file, the column-mapping form (pre-filled from the
platform's remembered mapping), the validation report, and starting and following the import job.

Whatever the user typed or the file holds is shown as text (st.text, st.code, st.dataframe), never as markdown; where
an alert or a progress bar names it (a job's actor, message), escaped with `app.text.md`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app import cache
from app.text import md
from app.widgets import actor
from core import jobs
from core.config import data_dir
from core.data.ingest import IngestError, Problem, read_catalog
from core.steps.import_job import SUFFIXES, check_frame, mapping_from_dict
from db import platforms
from db.repo import CurationError

FIELDS = {"id": "Product id", "title": "Title", "description": "Description", "brand": "Brand", "image": "Image"}
REQUIRED = ("id",)  # and a title, or an image for a photo-only catalogue
TITLE_OR_IMAGE = "a Title column, or an Image column for a photo-only catalogue (its products are then classified by their photo)"
PHOTO_ONLY = (
    "Photo-only: no Title column is mapped, so products are classified by their photo (every row needs one; "
    "the text models are left out)."
)
HELP = {"title": "Leave (none) for a photo-only catalogue: map its Image column instead."}
MODES = ("level columns", "one path column", "no category")
ALIASES = {
    "id": ("id", "sku", "product_id", "item_id", "productid"),
    "title": ("title", "name", "product_name", "productdisplayname", "product_title"),
    "description": ("description", "desc", "product_description"),
    "brand": ("brand", "brand_name", "manufacturer"),
    "image": ("image", "image_url", "image_path", "photo", "picture", "img"),
    "path": ("category", "category_path", "categories", "path", "taxonomy"),
}
DEFAULT_LEVELS = ("master_category", "sub_category", "article_type")
PREVIEW_ROWS = 20
TEXT_LISTED = 50  # problems also listed as text, to copy


FORM_KEYS = (
    "import_platform",
    "import_new_platform",
    "import_images_root",
    *(f"map_{key}" for key in FIELDS),
    "map_mode",
    "map_levels",
    "map_path",
    "map_sep",
)


def keep_form() -> None:
    """Put the form's values back after a run that did not draw the form (while an uploaded file is replaced, the page
    runs once without a file): Streamlit may then forget those widgets' values, and the browser redraws them empty.
    A value set here is sent to the browser with the widget, so both sides hold it again."""
    shown = st.session_state.get("import_form_shown", True)
    for key, value in st.session_state.get("import_kept", {}).items():
        if not shown or key not in st.session_state:
            st.session_state[key] = value


def form_hidden() -> None:
    """This run stops before the form (no file, or an unreadable one): the next run that draws it puts its values back."""
    st.session_state["import_form_shown"] = False


def remember_form() -> None:
    """Copy the form's values where Streamlit keeps them (a plain session key), for `keep_form`."""
    st.session_state["import_kept"] = {key: st.session_state[key] for key in FORM_KEYS if key in st.session_state}
    st.session_state["import_form_shown"] = True


@dataclass(frozen=True)
class Source:
    """The file to import: `path` (what the job reads), `name` (as the user knows it), `key` (changes with the file)."""

    path: Path
    name: str
    key: str


def upload_limit_mb() -> int:
    """Streamlit's upload limit (server.maxUploadSize, in MB; 200 unless configured)."""
    return int(st.get_option("server.maxUploadSize"))


def imports_dir() -> Path:
    return data_dir() / "imports"


def save_upload(name: str, data: bytes) -> Path:
    """Keep an uploaded file as data/imports/<sha256>.<ext> (the job's process reads it there); returns the path."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"not a {' or '.join(SUFFIXES)} file")
    folder = imports_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()}{suffix}"
    if not path.exists():
        part = folder / f".{path.name}.{os.getpid()}.part"
        part.write_bytes(data)
        part.replace(path)  # atomic: a reader never sees half a file
    return path


def server_file(typed: str) -> tuple[Path | None, str | None]:
    """(the file, None) for a usable path on the server, (None, why not) otherwise; (None, None) when nothing typed."""
    raw = typed.strip()
    if not raw:
        return None, None
    path = Path(raw).expanduser()
    if not path.exists():
        return None, "No such file on the server."
    if not path.is_file():
        return None, "That is not a file (a folder?)."
    if path.suffix.lower() not in SUFFIXES:
        return None, f"Not a {' or '.join(SUFFIXES)} file."
    return path.resolve(), None


def _upload_source(upload) -> Source:
    saved = st.session_state.get("import_saved")
    if not saved or saved[0] != upload.file_id:
        saved = (upload.file_id, str(save_upload(upload.name, upload.getvalue())))
        st.session_state["import_saved"] = saved
    path = Path(saved[1])
    return Source(path=path, name=upload.name, key=path.stem)


def choose_source() -> Source | None:
    """The upload box and the server-path box; the file chosen (an upload wins), or None."""
    limit = upload_limit_mb()
    upload = st.file_uploader(
        f"Catalogue file: CSV or Parquet, up to {limit} MB", type=[s.lstrip(".") for s in SUFFIXES], key="import_upload"
    )
    st.caption(
        f"Uploads are limited to {limit} MB (Streamlit's `server.maxUploadSize`). "
        "A larger file: put it on the server and type its path here."
    )
    typed = st.text_input("Or a file on the server", key="import_path", placeholder="/srv/exports/products.parquet")
    if upload is not None:
        return _upload_source(upload)
    path, why = server_file(typed)
    if why:
        st.error(why)
        st.text(typed.strip())
    if path is None:
        return None
    stat = path.stat()
    return Source(path=path, name=str(path), key=f"{path}:{stat.st_size}:{stat.st_mtime_ns}")


def load_frame(source: Source) -> tuple[pd.DataFrame | None, list[Problem]]:
    """The file's rows as strings (read once per file and session), or None and why it cannot be read."""
    memo = st.session_state.get("import_frame")
    if memo and memo[0] == source.key:
        return memo[1], memo[2]
    try:
        df, problems = read_catalog(source.path), []
    except IngestError as exc:
        df, problems = None, list(exc.problems) or [Problem(source.name, None, None, str(exc))]
    st.session_state["import_frame"] = (source.key, df, problems)
    return df, problems


def preview(source: Source, df: pd.DataFrame) -> None:
    st.text(f"{source.name}: {len(df):,} rows, {len(df.columns)} columns; the first {min(PREVIEW_ROWS, len(df))}:")
    st.dataframe(df.head(PREVIEW_ROWS), hide_index=True, width="stretch")


def problem_table(problems: list[Problem]) -> None:
    """Every problem, by row and column, as a table (the file's contents stay text)."""
    table = pd.DataFrame(
        [{"row": p.row, "column": p.column or "", "problem": p.message} for p in problems], columns=["row", "column", "problem"]
    )
    st.dataframe(table, hide_index=True, width="stretch", column_config={"row": st.column_config.NumberColumn(format="%d")})
    lines = [
        ", ".join(x for x in (f"row {p.row}" if p.row else "", f"column {p.column!r}" if p.column else "") if x) for p in problems
    ]
    listed = [f"{where}: {p.message}" if where else p.message for where, p in zip(lines, problems)][:TEXT_LISTED]
    more = len(problems) - len(listed)
    st.code("\n".join(listed) + (f"\n... and {more} more (all in the table above)" if more > 0 else ""), language=None)


def _match(columns: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {c.strip().lower(): c for c in reversed(columns)}
    return next((lowered[n] for n in names if n in lowered), None)


def guess_mapping(columns: list[str]) -> dict[str, Any]:
    """A first mapping from the column names (id, sku, title, name, category...); the user corrects it."""
    guess: dict[str, Any] = {key: _match(columns, names) for key, names in ALIASES.items()}
    levels = [c for c in DEFAULT_LEVELS if c in columns]
    guess["levels"] = levels if len(levels) == len(DEFAULT_LEVELS) else []
    if guess["levels"]:
        guess["path"] = None
    guess["path_sep"] = ">"
    return guess


def fits(mapping: dict[str, Any], columns: list[str]) -> bool:
    """Whether every column `mapping` names is in `columns`."""
    named = [mapping.get(k) for k in (*FIELDS, "path")] + list(mapping.get("levels") or [])
    return all(c in columns for c in named if c)


def fitting_platform(columns: list[str], remembered: dict[str, dict[str, Any]]) -> str | None:
    """The platform whose remembered mapping fits these columns, the most specific one when several do (None: none or a tie)."""
    scores = {
        name: sum(1 for k in (*FIELDS, "path") if m.get(k)) + len(m.get("levels") or [])
        for name, m in remembered.items()
        if fits(m, columns)
    }
    best = sorted(scores.items(), key=lambda kv: -kv[1])
    if not best or (len(best) > 1 and best[0][1] == best[1][1]):
        return None
    return best[0][0]


def _form_values(mapping: dict[str, Any]) -> dict[str, Any]:
    mode = MODES[0] if mapping.get("levels") else MODES[1] if mapping.get("path") else MODES[2]
    values = {f"map_{key}": mapping.get(key) for key in FIELDS}
    values.update(map_mode=mode, map_levels=list(mapping.get("levels") or []), map_path=mapping.get("path"))
    values["map_sep"] = mapping.get("path_sep") or ">"
    return values


def _current_form() -> dict[str, Any]:
    state = st.session_state
    mode = state.get("map_mode", MODES[2])
    mapping: dict[str, Any] = {key: state.get(f"map_{key}") for key in FIELDS}
    mapping["levels"] = list(state.get("map_levels") or []) if mode == MODES[0] else []
    mapping["path"] = state.get("map_path") if mode == MODES[1] else None
    mapping["path_sep"] = state.get("map_sep") or ">"
    return mapping


def prefill(platform: str | None, columns: list[str], remembered: dict[str, dict[str, Any]]) -> None:
    """Set the form to the platform's remembered mapping when the platform (or the file's columns) change; a new
    platform keeps what is filled in when it fits the file, else gets a guess from the column names."""
    context = json.dumps([platform, columns])
    if st.session_state.get("map_context") == context:
        return
    st.session_state["map_context"] = context
    stored = remembered.get(platform or "")
    if stored and fits(stored, columns):
        values = _form_values(stored)
    elif "map_mode" in st.session_state and fits(_current_form(), columns):
        return
    else:
        values = _form_values(guess_mapping(columns))
    for key, value in values.items():
        st.session_state[key] = value


def pick_platform(columns: list[str]) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """The platform box: an existing platform (pre-picked when its remembered mapping fits a new file) or a new name."""
    with cache.factory()() as s:
        names, remembered = platforms.platform_names(s), platforms.remembered_column_maps(s)
    if st.session_state.get("import_platform_for") != columns:  # another file: pick the platform it fits
        st.session_state["import_platform_for"] = columns
        fit = fitting_platform(columns, remembered)
        if fit:
            st.session_state["import_platform"] = fit
    if st.session_state.get("import_platform") not in (None, *names):
        st.session_state["import_platform"] = None
    left, right = st.columns(2)
    picked = left.selectbox(
        "Platform (the shop the file comes from)",
        [None, *names],
        key="import_platform",
        format_func=lambda name: "New platform..." if name is None else name,
        help="Product ids are unique per platform: a re-import updates that platform's products with the same id.",
    )
    if picked is None:
        typed = right.text_input("New platform name", key="import_new_platform", max_chars=100).strip()
        picked = typed or None
    elif picked in remembered:
        right.caption("The columns below are filled in with this platform's remembered mapping.")
    return picked, remembered


def _column_box(columns: list[str], key: str, required: bool) -> None:
    st.selectbox(
        FIELDS[key] + (" (required)" if required else ""),
        columns if required else [None, *columns],
        key=f"map_{key}",
        index=None if required else 0,
        format_func=lambda c: "(none)" if c is None else c,
        placeholder="Pick a column",
        help=HELP.get(key),
    )


def mapping_form(platform: str | None, columns: list[str], remembered: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The column-mapping widgets; the mapping they make (in the stored shape), or None until the id and a title or an
    image (photo-only) are picked."""
    prefill(platform, columns, remembered)
    for column, key in zip(st.columns(len(FIELDS)), FIELDS):
        with column:
            _column_box(columns, key, key in REQUIRED)
    mode = st.radio("Category from", MODES, key="map_mode", horizontal=True)
    left, mid, right = st.columns([3, 2, 1])
    left.multiselect(
        "Level columns, top level first", columns, key="map_levels", disabled=mode != MODES[0], placeholder="Pick columns"
    )
    mid.selectbox(
        "Path column (e.g. 'Footwear > Shoes')",
        [None, *columns],
        key="map_path",
        disabled=mode != MODES[1],
        format_func=lambda c: "(none)" if c is None else c,
    )
    right.text_input("Separator", key="map_sep", disabled=mode != MODES[1], help="Between levels: '>' or '>>', '/', '|'...")
    mapping = _current_form()
    missing = [FIELDS[k] for k in REQUIRED if not mapping[k]]
    if not mapping["title"] and not mapping["image"]:
        missing.append(TITLE_OR_IMAGE)
    if mode == MODES[0] and not mapping["levels"]:
        missing.append("level columns")
    if mode == MODES[1] and (not mapping["path"] or not mapping["path_sep"].strip()):
        missing.append("a path column and its separator")
    if missing:
        st.info(f"Still to pick: {', '.join(missing)}.")
        return None
    return mapping


def validation(df: pd.DataFrame, mapping: dict[str, Any], source: Source) -> list[Problem]:
    """Every problem of the file under `mapping` (nothing is written); remembered per file and mapping."""
    key = json.dumps([source.key, mapping], sort_keys=True)
    memo = st.session_state.get("import_checked")
    if memo and memo[0] == key:
        return memo[1]
    problems = check_frame(df, mapping=mapping_from_dict(mapping), file=source.name)
    st.session_state["import_checked"] = (key, problems)
    return problems


def _known(df: pd.DataFrame, id_column: str, platform: str, source: Source) -> int:
    """How many of the file's ids the platform has (remembered per file, platform and data version)."""
    key = json.dumps([source.key, id_column, platform, cache.data_version()])
    memo = st.session_state.get("import_known")
    if not memo or memo[0] != key:
        with cache.factory()() as s:
            memo = (key, platforms.known_ids(s, platform=platform, ids=df[id_column].dropna()))
        st.session_state["import_known"] = memo
    return memo[1]


def report(df: pd.DataFrame, mapping: dict[str, Any], source: Source, platform: str | None, problems: list[Problem]) -> None:
    """The validation report: every problem by row and column, or what the import will do."""
    if not mapping["title"]:
        st.info(PHOTO_ONLY)
    if problems:
        st.error(
            f"{len(problems)} problem(s), nothing will be imported: fix the file and upload it again, or change the mapping."
        )
        problem_table(problems)
        return
    st.success(f"{len(df):,} rows checked: no problems.")
    if platform:
        known = _known(df, mapping["id"], platform, source)
        new = len(df) - known
        st.text(f"Into platform {platform}: {new:,} new products, {known:,} already there (updated where they changed).")


def images_folder(mapping: dict[str, Any] | None, platform: str | None) -> tuple[str | None, bool]:
    """The optional folder image paths are relative to; (folder or None, whether it is usable)."""
    if not mapping or not mapping.get("image"):
        return None, True
    with cache.factory()() as s:
        known = platforms.platform_root(s, platform=platform) if platform else None
    typed = st.text_input(
        "Image folder on the server (image paths in the file are relative to it)",
        key="import_images_root",
        placeholder=known or "the file's folder (http(s) URLs need no folder)",
    ).strip()
    if typed and not Path(typed).expanduser().is_dir():
        st.error("No such folder on the server.")
        return None, False
    return (str(Path(typed).expanduser().resolve()) if typed else None), True


def start_import(source: Source, platform: str, mapping: dict[str, Any], images_root: str | None) -> None:
    """Queue the import job (ingest, embed, predict) and start its process; a refusal becomes the flash message."""
    params = {"file": str(source.path), "name": source.name, "platform": platform, "mapping": mapping, "images_root": images_root}
    try:
        jobs.start(cache.db_url(), kind="import", user=actor(), params=params)
    except CurationError as exc:
        st.session_state["flash"] = ("error", str(exc))


def running(job: Any) -> bool:
    return job is not None and job.status in ("queued", "running")


def import_status(job: Any) -> None:
    """The import job's state: progress while it runs, what it did or why it failed, its log."""
    if job is None:
        return
    what = f"import job #{job.id} ({job.params.get('actor') or '?'}, {job.created_at:%Y-%m-%d %H:%M})"
    st.text(f"{job.params.get('name', '')} -> platform {job.params.get('platform', '')}")
    if running(job):
        st.progress(job.progress, text=md(f"{what}: {job.message}"))
    elif job.status == "done":
        st.success(md(f"{what} finished. The products are on the Predictions, Overview and Taxonomy pages."))
        st.text(job.log.strip().splitlines()[-1].split(" ", 1)[-1] if job.log else "")  # the outcome, without its time
    else:
        written = "ingest: " in (job.log or "")
        st.error(
            md(f"{what} failed: ")
            + ("the products were imported; a later step did not finish (see the log)." if written else "nothing was imported.")
        )
        st.code(job.error or "", language=None)
    if job.log:
        with st.expander(f"Log of import job #{job.id}", expanded=job.status == "failed"):
            st.code(job.log[-4000:], language=None)


def follow_import(job: Any) -> None:
    """Show the job; when one this session saw running has ended, rerun the whole page for its results."""
    import_status(job)
    if job is None:
        return
    if running(job):
        st.session_state["import_job_seen"] = job.id
    elif st.session_state.get("import_job_seen") == job.id:
        st.session_state.pop("import_job_seen")
        st.rerun(scope="app")
