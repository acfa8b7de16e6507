"""The Google Product Taxonomy file (`ID - Level 1 > Level 2 > ...`, one category per line, a `#` header line):
the standard that shopping feeds' `google_product_category` refers to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PLATFORM = "google"


class TaxonomyFileError(ValueError):
    """A taxonomy file that cannot be read as asked; the message lists every problem by line."""


@dataclass(frozen=True)
class StandardCategory:
    code: str
    path: tuple[str, ...]


def read_google_taxonomy(path: str | Path) -> list[StandardCategory]:
    """Every category of the file, in file order; TaxonomyFileError listing each malformed line (with its number),
    a duplicate id, or a category whose parent is missing."""
    path = Path(path)
    if not path.is_file():
        raise TaxonomyFileError(f"{path}: no such file")
    problems: list[str] = []
    out: list[StandardCategory] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        code, sep, rest = line.partition(" - ")
        names = tuple(part.strip() for part in rest.split(">"))
        if not sep or not code.strip().isdigit() or not all(names):
            problems.append(f"line {number}: expected 'ID - Level 1 > Level 2 ...', got {line[:80]!r}")
            continue
        if code in seen:
            problems.append(f"line {number}: id {code} already used on line {seen[code]}")
            continue
        seen[code] = number
        out.append(StandardCategory(code.strip(), names))
    paths = {c.path for c in out}
    problems += [
        f"category {c.code} {' > '.join(c.path)!r}: its parent is not in the file"
        for c in out
        if len(c.path) > 1 and c.path[:-1] not in paths
    ]
    if problems:
        raise TaxonomyFileError(f"{path.name}: {len(problems)} problems\n" + "\n".join(problems[:50]))
    if not out:
        raise TaxonomyFileError(f"{path.name}: no category in the file")
    return out
