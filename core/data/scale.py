"""A scale catalogue: N products recombined from the real Myntra and H&M catalogues, for measuring every step at
200k, 1M or more (`python -m core scale-catalogue --size N --out FILE.parquet [--seed S]`).

How each product is made (all draws from a seeded numpy generator, one per chunk, so a (size, seed) pair always
gives the same file):

1. The sources: every Myntra product (`config.catalog_dir()`: title, description, brand, base colour, gender,
   master_category > sub_category > article_type, the values of its Pattern/Fit/Fabric/... attributes) and every
   H&M article (`config.hm_catalog_dir()`: prod_name as title, detail_desc, brand "H&M", colour_group_name,
   graphical_appearance_name as attribute word, product_group_name > product_type_name). Rows without a title
   or a category are left out.
2. Product i takes template row `perm[i % P]` (P source rows, `perm` a seeded permutation, so every template is
   used N/P times, in turn) and keeps its **category path unchanged** (each output path is a source path).
3. Within the template's leaf category, it draws another product of the same leaf ("donor") and a second one
   ("colour donor"): the title's brand is replaced by the donor's brand, its colour by the colour donor's colour
   (when the title names none: before the last word for Myntra, first for H&M), then with probability 1/2 an attribute word of a
   third product of that leaf (e.g. "Slim Fit", "Stripe") is inserted before the last word, with probability 1/3
   two neighbouring words before the last are swapped, and with probability 1/3 one word is replaced by a synonym
   (`SYNONYMS`: Men -> Mens, T-shirt -> Tee, ...).
4. The description: the template's sentences (split on line breaks and ". ") with the old colour and brand
   replaced like the title's, one sentence replaced by a sentence of the donor's description, one more donor
   sentence appended, the order rotated by a random offset; cut at `MAX_DESCRIPTION` characters.
5. Distinct titles: a title is compared (case- and space-insensitively, by a 64-bit hash) with every source
   title and every title made before it. On a collision, steps 3 are drawn again (at most `RETRIES` times); a
   title that still collides gets the suffix " Style <i in base 36>", unique by construction. The counts of each
   way are in the `ScaleReport`.
6. Columns: the Myntra layout (id, title, description, brand, master_category, sub_category, article_type (empty
   for H&M's two-level paths), base_colour, gender) plus `platform` (default "scale"), `source` (myntra or hm)
   and `source_id` (the template's id). ids are "S-<i, 7 digits>", unique. It ingests with the default
   column map: `python -m core ingest --catalog FILE --platform scale`; in an empty database it seeds the master
   taxonomy (the union of the Myntra and H&M trees; a shared top name such as "Accessories" is one node).

Memory: the sources (about 150k rows) are held once; the output is made and written in chunks of `CHUNK` rows
(`pyarrow.parquet.ParquetWriter`, one row group per chunk), so only one chunk and the set of title hashes (8 bytes
of payload per product) grow with N: 1M products stay well under 1 GB.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.config import catalog_dir, hm_catalog_dir

CHUNK = 50_000
RETRIES = 4
MAX_DESCRIPTION = 800
LEVELS = ("master_category", "sub_category", "article_type")
ATTRIBUTE_KEYS = ("Pattern", "Fit", "Fabric", "Sleeve Length", "Neck", "Occasion", "Type", "Material", "Length")
SYNONYMS = {
    "men": "Mens",
    "women": "Womens",
    "boys": "Boys'",
    "girls": "Girls'",
    "t-shirt": "Tee",
    "tshirt": "Tee",
    "shoes": "Footwear",
    "top": "Blouse",
    "trousers": "Pants",
    "printed": "Print",
    "striped": "Stripes",
    "solid": "Plain",
    "casual": "Everyday",
    "watch": "Wristwatch",
}
COLUMNS = ("id", "title", "description", "brand", *LEVELS, "base_colour", "gender", "platform", "source", "source_id")


@dataclass
class ScaleReport:
    size: int
    seed: int
    sources: dict
    templates: int
    retried: int = 0  # titles that collided and were drawn again (then distinct)
    suffixed: int = 0  # titles that still collided after RETRIES draws and got " Style <code>"
    leaves: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def load_sources(myntra: Path | None = None, hm: Path | None = None):
    """One frame of template rows from both real catalogues (see the module docstring, step 1)."""
    import pandas as pd

    frames = []
    m_file = Path(myntra or catalog_dir())
    m_file = m_file / "products.parquet" if m_file.is_dir() else m_file
    if m_file.exists():
        frames.append(_myntra_rows(pd.read_parquet(m_file)))
    h_file = Path(hm or hm_catalog_dir())
    h_file = h_file / "articles.parquet" if h_file.is_dir() else h_file
    if h_file.exists():
        frames.append(_hm_rows(pd.read_parquet(h_file)))
    if not frames:
        raise FileNotFoundError(f"no source catalogue at {m_file} or {h_file}")
    src = pd.concat(frames, ignore_index=True).fillna("")
    src = src[(src.title.str.strip() != "") & (src.master_category.str.strip() != "")]
    return src.reset_index(drop=True)


def _myntra_rows(df):
    import pandas as pd

    def words(cell) -> str:
        try:
            attrs = json.loads(cell) if cell else {}
        except ValueError:
            return ""
        return "|".join(str(attrs[k]) for k in ATTRIBUTE_KEYS if isinstance(attrs.get(k), str) and attrs[k] != "NA")

    return pd.DataFrame(
        {
            "source": "myntra",
            "source_id": df["id"].astype(str),
            "title": df["title"],
            "description": df["description"],
            "brand": df["brand"],
            "colour": df["base_colour"],
            "gender": df["gender"],
            "master_category": df["master_category"],
            "sub_category": df["sub_category"],
            "article_type": df["article_type"],
            "words": [words(a) for a in df["attributes"]],
        }
    )


def _hm_rows(df):
    import pandas as pd

    return pd.DataFrame(
        {
            "source": "hm",
            "source_id": df["article_id"].astype(str),
            "title": df["prod_name"],
            "description": df["detail_desc"],
            "brand": "H&M",
            "colour": df["colour_group_name"],
            "gender": df["index_group_name"],
            "master_category": df["product_group_name"],
            "sub_category": df["product_type_name"],
            "article_type": "",
            "words": df["graphical_appearance_name"],
        }
    )


def title_hash(title: str) -> int:
    """64-bit hash of a title, case and spacing ignored (what "distinct" means here)."""
    return int.from_bytes(hashlib.blake2b(" ".join(title.lower().split()).encode(), digest_size=8).digest(), "little")


def _base36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


_SENTENCE = re.compile(r"\n+|(?<=\.)\s+")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text or "") if s.strip() and s.strip() != "NA"]


def _replace_word(text: str, old: str, new: str) -> str:
    if not old or not new or old.lower() == new.lower() or old.lower() not in text.lower():
        return text
    return re.sub(rf"(?i)\b{re.escape(old)}\b", new.replace("\\", ""), text)


class _Leaves:
    """The source rows grouped by leaf category, with their columns as plain lists (fast per-row access)."""

    def __init__(self, src):
        self.cols = {c: src[c].tolist() for c in ("title", "description", "brand", "colour", "words", "source", "source_id")}
        self.cols.update({c: src[c].tolist() for c in (*LEVELS, "gender")})
        keys = list(zip(*(src[c] for c in LEVELS)))
        self.leaf_of = np.unique(np.array(["\x1f".join(k) for k in keys], dtype=object), return_inverse=True)[1]
        order = np.argsort(self.leaf_of, kind="stable")
        bounds = np.flatnonzero(np.diff(self.leaf_of[order])) + 1
        self.members = np.split(order, bounds)

        self._sentences: dict[int, list[str]] = {}

    def sentences(self, t: int) -> list[str]:
        """The description sentences of source row t (split once, then kept)."""
        got = self._sentences.get(t)
        if got is None:
            got = self._sentences[t] = _sentences(self.cols["description"][t])
        return got

    def donor(self, t: int, rng) -> int:
        group = self.members[self.leaf_of[t]]
        return int(group[rng.integers(len(group))])


def _perturb_title(leaves: _Leaves, t: int, rng) -> tuple[str, str, str]:
    """(title, brand, colour) of one draw of step 3 for template row t."""
    c = leaves.cols
    donor, shade, worded = leaves.donor(t, rng), leaves.donor(t, rng), leaves.donor(t, rng)
    brand, colour = c["brand"][donor] or c["brand"][t], c["colour"][shade] or c["colour"][t]
    title = c["title"][t]
    if c["brand"][t] and c["brand"][t].lower() in title.lower():
        title = _replace_word(title, c["brand"][t], brand)
    elif brand and c["source"][t] == "myntra":
        title = f"{brand} {title}"
    words = title.split()
    if c["colour"][t] and c["colour"][t].lower() in title.lower():
        words = _replace_word(title, c["colour"][t], colour).split()
    elif colour:  # Myntra names the colour before the article ("... Navy Blue Shirt"); H&M names have none
        words = [*words[:-1], colour, *words[-1:]] if len(words) > 1 and c["source"][t] == "myntra" else [colour, *words]
    options = [w for w in (c["words"][worded] or "").split("|") if w]
    if options and rng.random() < 0.5:
        words = [*words[:-1], options[rng.integers(len(options))], *words[-1:]]
    if len(words) > 3 and rng.random() < 1 / 3:
        j = int(rng.integers(len(words) - 2))
        words[j], words[j + 1] = words[j + 1], words[j]
    if rng.random() < 1 / 3:
        hits = [j for j, w in enumerate(words) if w.lower() in SYNONYMS]
        if hits:
            j = hits[int(rng.integers(len(hits)))]
            words[j] = SYNONYMS[words[j].lower()]
    return " ".join(words), brand, colour


def _description(leaves: _Leaves, t: int, brand: str, colour: str, rng) -> str:
    """Step 4 for template row t: its sentences, recoloured and rebranded, mixed with a donor's."""
    c = leaves.cols
    own = [_replace_word(_replace_word(s, c["colour"][t], colour), c["brand"][t], brand) for s in leaves.sentences(t)]
    other = leaves.sentences(leaves.donor(t, rng))
    if own and other:
        own[int(rng.integers(len(own)))] = other[int(rng.integers(len(other)))]
    extra = other[int(rng.integers(len(other)))] if other else None
    if extra and extra not in own:
        own.append(extra)
    if len(own) > 1:
        k = int(rng.integers(len(own)))
        own = own[k:] + own[:k]
    return "\n".join(own)[:MAX_DESCRIPTION]


def _unique_title(leaves: _Leaves, t: int, i: int, seen: set[int], rng, report: ScaleReport) -> tuple[str, str, str]:
    """Step 5: a title no earlier product (nor source title) has."""
    for attempt in range(RETRIES + 1):
        title, brand, colour = _perturb_title(leaves, t, rng)
        key = title_hash(title)
        if key not in seen:
            seen.add(key)
            report.retried += attempt > 0
            return title, brand, colour
    report.suffixed += 1
    title = f"{title} Style {_base36(i)}"
    seen.add(title_hash(title))
    return title, brand, colour


def generate(src, size: int, *, seed: int = 0, platform: str = "scale", chunk: int = CHUNK, report: ScaleReport | None = None):
    """Yield the scale catalogue as DataFrames of at most `chunk` rows (`COLUMNS`); `src` from `load_sources`.
    `report` (optional) counts the retried and suffixed titles."""
    import pandas as pd

    if size < 1:
        raise ValueError(f"size must be at least 1, not {size}")

    leaves = _Leaves(src)
    report = report or ScaleReport(size=size, seed=seed, sources={}, templates=len(src))
    perm = np.random.default_rng([seed, 0]).permutation(len(src))
    seen = {title_hash(t) for t in leaves.cols["title"]}
    c = leaves.cols
    for start in range(0, size, chunk):
        rng = np.random.default_rng([seed, 1 + start // chunk])
        rows = []
        for i in range(start, min(size, start + chunk)):
            t = int(perm[i % len(perm)])
            title, brand, colour = _unique_title(leaves, t, i, seen, rng, report)
            description = _description(leaves, t, brand, colour, rng)
            path = [c[level][t] for level in LEVELS]
            rows.append(
                (f"S-{i:07d}", title, description, brand, *path, colour, c["gender"][t], platform, c["source"][t])
                + (c["source_id"][t],)
            )
        yield pd.DataFrame(rows, columns=list(COLUMNS))


def write(
    out: str | Path,
    size: int,
    *,
    seed: int = 0,
    platform: str = "scale",
    src=None,
    chunk: int = CHUNK,
    progress: Callable[[int], None] | None = None,
) -> ScaleReport:
    """Generate `size` products into the Parquet file `out`, chunk by chunk; returns the `ScaleReport`."""
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    src = load_sources() if src is None else src
    report = ScaleReport(size=size, seed=seed, sources=src["source"].value_counts().to_dict(), templates=len(src))
    report.leaves = int(src.groupby(list(LEVELS)).ngroups)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    writer = None
    try:
        for frame in generate(src, size, seed=seed, platform=platform, chunk=chunk, report=report):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table)
            if progress:
                progress(len(frame))
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(out)
    report.seconds = round(time.perf_counter() - started, 1)
    return report
