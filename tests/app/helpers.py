"""Helpers of the page tests: run a page, read the database, and the taxonomy the test's catalogue slice makes.

Expected values come from the slice file itself (`CatalogueTree`), never from the functions the pages render with.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from app import auth
from db import repo, users
from db.models import Product, ReviewItem, TaxonomyNode
from db.session import get_sessionmaker, transaction
from db.users import Identity

ROOT = Path(__file__).resolve().parents[2]
LEVELS = ("master_category", "sub_category", "article_type")  # the columns the myntra catalogue's paths are made of


@dataclass(frozen=True)
class Misplaced:
    """The product the `with_predictions` fixture sends to another leaf: its label and that leaf (from the file)."""

    product_id: int
    external_id: str
    label: str
    predicted: str


WRONG_CONFIDENCE, RIGHT_CONFIDENCE = 0.4, 0.97  # per level, in the `with_predictions` fixture
# the users the `app_env` fixture adds, by role: (name, password); the pages run signed in as the admin
PEOPLE = {
    "viewer": ("vic", "vic's passphrase"),
    "curator": ("cora", "cora's passphrase"),
    "admin": ("merchandiser", "m's passphrase"),
}


def _names(cells) -> tuple[str, ...]:
    """A row's category names, whitespace collapsed, empty levels dropped."""
    return tuple(n for n in (" ".join(str(c).split()) for c in cells) if n)


def slice_paths(frame) -> dict[str, str]:
    """{external id: category path} of every product of a catalogue slice, read from the file."""
    return {str(i): " > ".join(_names(cells)) for i, *cells in zip(frame["id"], *(frame[c] for c in LEVELS))}


@dataclass(frozen=True)
class CatalogueTree:
    """The category paths of a catalogue slice and how many products each holds (descendants included)."""

    counts: dict[tuple[str, ...], int]

    @classmethod
    def of(cls, frame) -> CatalogueTree:
        counts: Counter[tuple[str, ...]] = Counter()
        for cells in zip(*(frame[c] for c in LEVELS)):
            names = _names(cells)
            for depth in range(1, len(names) + 1):
                counts[names[:depth]] += 1
        return cls(dict(counts))

    def products(self, path: str) -> int:
        return self.counts[tuple(path.split(" > "))]

    def paths(self, depth: int | None = None) -> list[str]:
        """Every category path (of `depth` only, when given) in tree order: parents first, names sorted."""
        return [" > ".join(p) for p in sorted(self.counts) if depth is None or len(p) == depth]

    def leaves(self) -> list[str]:
        """Paths without sub-categories, in tree order."""
        inner = {p[:-1] for p in self.counts}
        return [" > ".join(p) for p in sorted(self.counts) if p not in inner]

    def products_at(self, depth: int) -> int:
        """How many products have a category at least `depth` levels deep."""
        return sum(n for p, n in self.counts.items() if len(p) == depth)


def add_people(url: str) -> None:
    """Add the `PEOPLE` users to the database at `url`."""
    with transaction(get_sessionmaker(url)) as s:
        for role, (name, password) in PEOPLE.items():
            users.add_user(s, actor="test", name=name, password=password, role=role)


def signed_in(at: AppTest, role: str = "admin") -> AppTest:
    """`at` as a browser session in which the `PEOPLE` user of `role` has signed in (what app/auth.py keeps)."""
    at.session_state[auth.SESSION_KEY] = auth.signed_in_record(Identity(PEOPLE[role][0], role))
    return at


def run_page(name: str, *, role: str = "admin") -> AppTest:
    """Run pages/`name`.py signed in as the `PEOPLE` user of `role` (the admin: every button is theirs)."""
    at = signed_in(AppTest.from_file(ROOT / "pages" / f"{name}.py", default_timeout=60), role)
    at.run()
    assert not at.exception, at.exception
    return at


def node_id(url: str, path: str) -> int:
    with get_sessionmaker(url)() as s:
        return repo.node_by_path(s, path).id


def node_ids(url: str) -> dict[str, int]:
    """{path: id} of every category."""
    with get_sessionmaker(url)() as s:
        return dict(s.execute(select(TaxonomyNode.path, TaxonomyNode.id)).all())


def label_path(url: str, product_id: int) -> tuple[str, str]:
    with get_sessionmaker(url)() as s:
        node, source = repo.product_label(s, product_id)
        return node.path, source


def repo_title(url: str, product_id: int) -> str:
    with get_sessionmaker(url)() as s:
        return s.get(Product, product_id).title


def item_id(url: str, product_id: int) -> int:
    with get_sessionmaker(url)() as s:
        return s.scalar(select(ReviewItem.id).where(ReviewItem.product_id == product_id))


def chart_traces(at: AppTest) -> list[dict]:
    """The first Plotly chart's traces, typed arrays ({"dtype", "bdata"}: how Plotly sends NumPy arrays) as lists. The
    Clusters page first shows its map as a picture: when no chart is there, its "Select on the map" toggle is turned
    on (and the page run again) first."""
    if not at.get("plotly_chart"):
        at.toggle(key="clu_select_map").set_value(True).run()
        assert not at.exception, at.exception
    return [plotly_values(t) for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]


def plotly_values(value):
    """`value` from a Plotly figure's JSON with each base64 typed array decoded into a list of numbers."""
    if isinstance(value, list):
        return [plotly_values(v) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) <= {"dtype", "bdata", "shape"} and "bdata" in value:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]).newbyteorder("<")).tolist()
    return {k: plotly_values(v) for k, v in value.items()}


def external_ids(url: str) -> dict[int, str]:
    """{product id: external id} of every product in the database."""
    with get_sessionmaker(url)() as s:
        return dict(s.execute(select(Product.id, Product.external_id)).all())


def served_csv(at: AppTest, storages: list, key: str) -> list[dict[str, str]]:
    """Press the download button `key` and parse the bytes its URL serves after that run (as the browser downloads them).

    `storages` lists the media stores of the runs (the `media_stores` fixture); the button's URL names a file
    of the latest one. A deferred button (its data a callable, built when clicked) has no URL until the browser asks
    the server for the file: that request runs the callable the run registered (`execute_deferred`), as here.
    """
    button = at.download_button(key=key)
    if button.proto.deferred_file_id:
        url = storages[-1].manager.execute_deferred(button.proto.deferred_file_id)
    else:
        at.download_button(key=key).click().run()
        assert not at.exception, at.exception
        url = at.download_button(key=key).proto.url
    served = storages[-1].get_file(url.rsplit("/", 1)[-1])
    assert served.filename == "predictions.csv" and served.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(served.content.decode("utf-8"))))
