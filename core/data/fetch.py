"""Fetch product photos given as http(s) URLs, only when asked (`python -m core ingest --fetch-images`).

Each URL is downloaded once into `<data dir>/images/<sha256 of the bytes>.<ext>`: at most `max_bytes`, within
`timeout` seconds, only when the server says `Content-Type: image/...`, and only kept when the bytes decode as an
image. `index.json` in that folder records every URL's outcome (the file, or why not), so an interrupted fetch
resumes where it stopped and a later ingest finds the photos without fetching again. Pages never fetch anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from core.config import data_dir
from core.data.ingest import check_image

MAX_BYTES = 10 * 1024 * 1024
TIMEOUT_S = 10.0
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/gif": ".gif"}
Progress = Callable[[str, int, int], None]


def is_url(value: str | None) -> bool:
    return bool(value) and value.startswith(("http://", "https://"))


def images_dir() -> Path:
    return data_dir() / "images"


@dataclass
class Fetched:
    """One URL's outcome: `file` (a name under the images folder) or `problem`."""

    file: str | None = None
    problem: str | None = None


class FetchIndex:
    """url -> Fetched, kept in `index.json` beside the files (written atomically after each batch)."""

    def __init__(self, folder: Path | None = None):
        self.folder = folder or images_dir()
        self.path = self.folder / "index.json"
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            raw = {}
        self.entries = {url: Fetched(**entry) for url, entry in raw.items()}

    def local_file(self, url: str) -> Path | None:
        """The fetched file of `url`, when it was fetched and is still there."""
        entry = self.entries.get(url)
        if entry is None or entry.file is None:
            return None
        file = self.folder / entry.file
        return file if file.is_file() else None

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({u: vars(e) for u, e in self.entries.items()}, indent=0, sort_keys=True))
        tmp.replace(self.path)


def download(url: str, *, max_bytes: int = MAX_BYTES, timeout: float = TIMEOUT_S) -> tuple[bytes | None, str, str | None]:
    """(bytes, content type, problem) of one URL; bytes None with the reason when refused."""
    request = urllib.request.Request(url, headers={"User-Agent": "taxonomy-curator/1 (photo fetch)"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) only: is_url)
            kind = response.headers.get_content_type()
            if not kind.startswith("image/"):
                return None, kind, f"not an image (Content-Type {kind})"
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                return None, kind, f"too large ({int(length):,} bytes, limit {max_bytes:,})"
            body = response.read(max_bytes + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, "", f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    if len(body) > max_bytes:
        return None, kind, f"too large (over {max_bytes:,} bytes)"
    return body, kind, None


def fetch_one(url: str, folder: Path, *, max_bytes: int, timeout: float) -> Fetched:
    """Download, check and store one photo under `folder` by the sha256 of its bytes."""
    body, kind, problem = download(url, max_bytes=max_bytes, timeout=timeout)
    if problem:
        return Fetched(problem=problem)
    name = hashlib.sha256(body).hexdigest() + EXTENSIONS.get(kind, ".img")
    target = folder / name
    if not target.exists():
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        tmp.write_bytes(body)
        status, why = check_image(tmp)
        if status != "ok":
            tmp.unlink(missing_ok=True)
            return Fetched(problem=f"unreadable photo ({why})")
        tmp.replace(target)
    return Fetched(file=name)


def fetch_images(
    urls: Iterable[str],
    *,
    index: FetchIndex | None = None,
    max_bytes: int | None = None,
    timeout: float | None = None,
    workers: int = 4,
    retry_failed: bool = False,
    progress: Progress | None = None,
) -> FetchIndex:
    """Fetch every URL not fetched before (and, with `retry_failed`, those that failed before); returns the index.

    `max_bytes` and `timeout` default to MAX_BYTES (10 MB) and TIMEOUT_S (10 s) per photo."""
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    timeout = TIMEOUT_S if timeout is None else timeout
    index = index or FetchIndex()
    index.folder.mkdir(parents=True, exist_ok=True)
    todo = sorted({u for u in urls if is_url(u) and (u not in index.entries or (retry_failed and index.local_file(u) is None))})
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, (url, fetched) in enumerate(
            zip(todo, pool.map(lambda u: fetch_one(u, index.folder, max_bytes=max_bytes, timeout=timeout), todo)), start=1
        ):
            index.entries[url] = fetched
            if done % 50 == 0 or done == len(todo):
                index.save()  # an interrupted fetch keeps what it finished
                if progress:
                    progress("fetch photos", done, len(todo))
    index.save()
    return index
