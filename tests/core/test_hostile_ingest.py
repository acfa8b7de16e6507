"""Hostile catalogue input through the real ingest step, on SQLite and PostgreSQL alike.

Every input either goes in with a listed problem naming its row and column (a photo that leaves the image folder,
is a decompression bomb or cannot be named is marked unreadable and never served), or the whole file is refused
with listed problems and the database is left exactly as it was; never a traceback. Each case has one expected
outcome, checked on both backends, so the two accept and refuse the same inputs.
"""

from __future__ import annotations

import csv
import struct
import zlib
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from sqlalchemy import select

from core.data.ingest import ColumnMap, IngestError
from core.embed.encoders import ImageEncoder, load_image
from core.steps.catalogue import load_catalogue
from core.steps.ingest import ingest
from db.models import PlatformCategory, Product, TaxonomyNode
from tests.db_rows import table_rows

MAPPING = ColumnMap.parse(["id=sku", "title=name", "brand=brand", "path=category", "image=picture", "description=none"])
HEADER = ["sku", "name", "brand", "category", "picture", "extra"]
BOMB_SIDE = 20000  # 400 million pixels: over PIL's MAX_IMAGE_PIXELS (89 million) twice over


def bomb_png(path: Path, side: int = BOMB_SIDE) -> Path:
    """A valid 1-bit black PNG of side x side pixels, written in a streamed way: about 60 kB on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + the packed bits of one row
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row * 500) for _ in range(side // 500)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1 bit per pixel, greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="session")
def bomb_file(tmp_path_factory) -> Path:
    return bomb_png(tmp_path_factory.mktemp("bomb") / "bomb.png")


@pytest.fixture
def shop(tmp_path, bomb_file) -> Path:
    """tmp/a/shop: the image folder (good.png, bomb.png, a symlink leaving it); tmp/secret.jpg: a real photo outside."""
    folder = tmp_path / "a" / "shop"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(folder / "good.png")
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "secret.jpg")
    (folder / "bomb.png").write_bytes(bomb_file.read_bytes())
    (folder / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    return folder


GOOD_ROWS = [
    ["A1", "Red shirt", "Acme", "Apparel > Topwear > Shirts", "good.png", "cotton"],
    ["A2", "Blue jeans", "Acme", "Apparel > Bottomwear > Jeans", "", ""],
]


def write_rows(folder: Path, rows: list[list[str]], name: str = "cat.csv") -> Path:
    path = folder / name
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def hostile_row(**cells: str) -> list[str]:
    """Row 3 of the file: a plain product with the given cells replaced."""
    row = dict(zip(HEADER, ["H1", "Green hat", "Acme", "Accessories > Hats", "", ""]))
    row.update(cells)
    return [row[c] for c in HEADER]


# name -> (the cells of row 3, the column its problem names)
REFUSED = {
    "10 MB cell": ({"name": "x" * 10_000_000}, "name"),
    "category name over 200 characters": ({"category": "Accessories > " + "c" * 201}, "category"),
    "category path over 1,000 characters": ({"category": " > ".join(["p" * 150] * 7)}, "category"),
    "id over 200 characters": ({"sku": "i" * 201}, "sku"),
    "brand over 200 characters": ({"brand": "b" * 201}, "brand"),
    "duplicate id": ({"sku": "A1"}, "sku"),
    "id made a duplicate by its NUL": ({"sku": "A\x001"}, "sku"),
}


def hostile_photo_rows(shop: Path) -> dict[str, tuple[dict[str, str], str]]:
    """name -> (the cells of row 3, the column its problem names): the photo is refused, the product goes in."""
    return {
        "decompression bomb (20000x20000 PNG)": ({"picture": "bomb.png"}, "picture"),
        "5,000-character image name": ({"picture": "n" * 5000 + ".jpg"}, "picture"),
        "NUL in the image path": ({"picture": "good\x00.png"}, "picture"),
        "image ../../secret.jpg": ({"picture": "../../secret.jpg"}, "picture"),
        "absolute image path": ({"picture": str(shop.parent.parent / "secret.jpg")}, "picture"),
        "symlink leaving the image folder": ({"picture": "link.jpg"}, "picture"),
    }


PHOTO_CASES = list(hostile_photo_rows(Path("/t/a/shop")))

# name -> (the cells of row 3, the column its problem names, {stored field: expected value})
CLEANED = {
    "NUL in a title": ({"name": "Green\x00 hat"}, "name", {"title": "Green hat"}),
    "NUL in a category path": ({"category": "Accessories > Ha\x00ts"}, "category", {"category": "Accessories > Hats"}),
    "NUL in a brand": ({"brand": "Ac\x00me"}, "brand", {"brand": "Acme"}),
    "NUL in an attribute": ({"extra": "wo\x00ol"}, "extra", {"attributes": {"extra": "wool"}}),
    "Infinity and NaN in JSON attributes": (
        {"extra": '{"w": Infinity, "h": NaN, "d": -Infinity, "ok": 1.5}'},
        "extra",
        {"attributes": {"extra": {"w": None, "h": None, "d": None, "ok": 1.5}}},
    ),
}


def ingest_file(db_url: str, path: Path):
    return ingest(path, platform="shop", db_url=db_url, mapping=MAPPING)


def row3_problem(lines: list[str], column: str) -> list[str]:
    return [line for line in lines if "row 3" in line and f"column {column!r}" in line]


@pytest.mark.parametrize("case", list(REFUSED))
def test_hostile_row_refuses_the_file_by_row_and_column_and_changes_nothing(db_url, shop, case):
    ingest_file(db_url, write_rows(shop, GOOD_ROWS))
    before = table_rows(db_url)
    cells, column = REFUSED[case]
    with pytest.raises(IngestError) as err:
        ingest_file(db_url, write_rows(shop, [*GOOD_ROWS, hostile_row(**cells)]))
    assert [(p.row, p.column) for p in err.value.problems] == [(3, column)], str(err.value)[:2000]
    assert len(str(err.value)) < 5000  # the problem quotes a hostile value shortened, not 10 MB of it
    assert table_rows(db_url) == before


@pytest.mark.parametrize("case", PHOTO_CASES)
def test_hostile_photo_is_listed_marked_unreadable_and_never_served(db_url, factory, shop, case):
    cells, column = hostile_photo_rows(shop)[case]
    report = ingest_file(db_url, write_rows(shop, [*GOOD_ROWS, hostile_row(**cells)]))
    assert report.inserted == 3
    assert len(row3_problem(report.image_problems, column)) == 1, report.image_problems
    with factory() as s:
        status = dict(s.execute(select(Product.external_id, Product.image_status)).all())
        stored = s.scalar(select(Product.image).where(Product.external_id == "H1"))
        cat = load_catalogue(s)
    assert status == {"A1": "ok", "A2": "none", "H1": "unreadable"}
    assert "\x00" not in stored
    served = dict(zip(cat.external_ids, cat.images))
    assert served["H1"] is None and served["A1"] == str(shop.resolve() / "good.png")


@pytest.mark.parametrize("case", list(CLEANED))
def test_nul_and_non_finite_values_are_cleaned_and_listed(db_url, factory, shop, case):
    cells, column, expected = CLEANED[case]
    report = ingest_file(db_url, write_rows(shop, [*GOOD_ROWS, hostile_row(**cells)]))
    assert report.inserted == 3
    assert len(row3_problem(report.problems, column)) == 1, report.problems
    with factory() as s:
        product = s.scalar(select(Product).where(Product.external_id == "H1"))
        category = s.get(PlatformCategory, product.platform_category_id)
        got = {"title": product.title, "brand": product.brand, "attributes": product.attributes, "category": category.path}
        assert s.scalar(select(TaxonomyNode.id).where(TaxonomyNode.path == category.path)) is not None
    assert {k: got[k] for k in expected} == expected


def test_non_finite_parquet_numbers_are_nulled_and_listed(db_url, factory, shop):
    df = pd.DataFrame(
        {
            "sku": ["P1", "P2", "P3"],
            "name": ["Cap", "Sock", "Belt"],
            "brand": ["Acme"] * 3,
            "category": ["Accessories > Caps", "Apparel > Socks", "Accessories > Belts"],
            "picture": [None, None, None],
            "weight": [1.5, float("inf"), float("-inf")],
        }
    )
    df.to_parquet(shop / "cat.parquet")
    report = ingest_file(db_url, shop / "cat.parquet")
    assert report.inserted == 3
    assert [line for line in report.problems if "column 'weight'" in line and ("row 2" in line or "row 3" in line)]
    assert len(report.problems) == 2, report.problems
    with factory() as s:
        attrs = dict(s.execute(select(Product.external_id, Product.attributes)).all())
    assert attrs == {"P1": {"weight": 1.5}, "P2": {}, "P3": {}}


def test_a_malformed_row_is_refused_by_row(db_url, shop):
    ingest_file(db_url, write_rows(shop, GOOD_ROWS))
    before = table_rows(db_url)
    path = write_rows(shop, GOOD_ROWS)
    path.write_text(path.read_text() + "H1,Hat,Acme,A > B,,,one too many\n")
    with pytest.raises(IngestError) as err:
        ingest_file(db_url, path)
    assert [(p.row, p.column) for p in err.value.problems] == [(3, None)]
    assert table_rows(db_url) == before


def test_a_photo_replaced_after_ingest_by_a_bomb_or_text_is_unreadable_on_reingest(db_url, factory, shop, bomb_file):
    (shop / "p1.png").write_bytes((shop / "good.png").read_bytes())
    (shop / "p2.png").write_bytes((shop / "good.png").read_bytes())
    rows = [["A1", "Red shirt", "Acme", "A > B", "p1.png", ""], ["A2", "Blue shirt", "Acme", "A > B", "p2.png", ""]]
    ingest_file(db_url, write_rows(shop, rows))
    (shop / "p1.png").write_bytes(bomb_file.read_bytes())
    (shop / "p2.png").write_text("not a photo any more, and a different size")
    report = ingest_file(db_url, write_rows(shop, rows))
    assert report.images_checked == 2 and report.image_status == {"unreadable": 2}
    with factory() as s:
        assert set(s.scalars(select(Product.image_status))) == {"unreadable"}


class _ZeroImageEncoder(ImageEncoder):
    """The real image path of every image encoder (load, mask the unreadable), with a stand-in network."""

    id = "test-zero-image"

    def _config_dim(self) -> int:
        return 4

    def _load(self, device: str) -> None:
        import torch

        self._model = torch.nn.Identity()

    def _features(self, images: list, device: str):
        import torch

        return torch.ones((len(images), 4))


def test_a_photo_replaced_after_ingest_is_masked_in_embedding_not_a_crash(db_url, factory, shop, bomb_file):
    for name in ("p1.png", "p2.png", "p3.png"):
        (shop / name).write_bytes((shop / "good.png").read_bytes())
    rows = [[f"A{i}", f"Shirt {i}", "Acme", "A > B", f"p{i}.png", ""] for i in (1, 2, 3)]
    ingest_file(db_url, write_rows(shop, rows))
    (shop / "p1.png").write_bytes(bomb_file.read_bytes())  # replaced after ingest: the database still says "ok"
    (shop / "p2.png").write_text("not a photo")
    with factory() as s:
        cat = load_catalogue(s)
    assert cat.has_image.all()
    _, ok = _ZeroImageEncoder().embed_masked(cat.images, device="cpu")
    assert ok.tolist() == [False, False, True]


def test_load_image_refuses_a_bomb_between_one_and_two_times_the_pil_limit(tmp_path, monkeypatch):
    # PIL only warns (does not raise) between MAX_IMAGE_PIXELS and twice that; the photo must still be refused
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000 * 1000)
    path = bomb_png(tmp_path / "b.png", side=1500)
    assert load_image(path) is None
    small = bomb_png(tmp_path / "s.png", side=900)
    assert load_image(small).size == (900, 900)


def test_the_import_pages_pre_check_lists_what_ingest_would_refuse_and_leaves_the_frame_as_it_was():
    import pandas as pd

    from core.data.ingest import ColumnMap
    from core.steps.import_job import check_frame

    mapping = ColumnMap.parse(["id=sku", "title=name", "path=category", "description=none", "brand=none", "image=none"])
    frame = pd.DataFrame({"sku": ["A1", "x" * 201], "name": ["Shirt\x00", "Tee"], "category": ["A > B", "A > B"]})
    problems = check_frame(frame, mapping=mapping, file="shop.csv")
    assert [(p.row, p.column) for p in problems] == [(2, "sku")]  # the 201-character id, the database's limit 200
    assert frame["name"].tolist() == ["Shirt\x00", "Tee"]  # checked on a copy: the page's preview is not changed
