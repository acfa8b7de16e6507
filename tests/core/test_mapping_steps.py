"""`mapping suggest|export`, `taxonomy import-google|export-feed` and `mapping suggest --target google` through
`core.cli.main`, on test_cli_steps' synthetic shop (the master-seeding platform, trained and predicted with the
stand-in encoders) and a second platform written here.

The second platform's products use the words the shop's leaves favour (test_cli_steps.leaf_words), under category
names of their own, so the vote (the shop's model placing them) and the centroid signal point at the leaf whose
words they carry: the expected mapping comes from how this test built the data, not from the code.
"""

from __future__ import annotations

import csv
import json

import numpy as np
from sqlalchemy import func, select

from db.models import AuditEvent, CategoryMapping, Label, PlatformCategory, StandardMapping, TaxonomyNode
from db.users import operator
from tests.core import test_cli_steps as cli_steps
from tests.core.test_cli_steps import LEAVES, leaf_words, run_cli, session

base, workspace = cli_steps.base, cli_steps.workspace  # the synthetic shop, trained and predicted (fixtures)

# their category -> the shop leaf whose words its products carry ("Shirts" shares its name with the leaf, "Pumps" not)
OTHER = {"Tops > Shirts": "Apparel > Topwear > Shirts", "Shoes > Pumps": "Footwear > Shoes > Heels"}
OTHER_MAP = ["--map", "id=sku", "--map", "title=name", "--map", "path=category", "--map", "description=none"]
OTHER_MAP += ["--map", "brand=none", "--map", "image=none"]
GOOGLE = """# Google_Product_Taxonomy_Version: test
166 - Apparel & Accessories
1604 - Apparel & Accessories > Clothing
212 - Apparel & Accessories > Clothing > Shirts & Tops
187 - Apparel & Accessories > Shoes
204 - Apparel & Accessories > Clothing > Pants
1 - Animals & Pet Supplies
"""


def write_other(folder, *, per_category: int = 15, extra: str = "") -> str:
    vocab = leaf_words()
    rng = np.random.default_rng(5)
    lines = ["sku,name,category"]
    for c, (category, leaf) in enumerate(OTHER.items()):
        for i in range(per_category):
            words = [str(w) for w in rng.choice(vocab[leaf], size=3)] + [str(rng.choice(vocab["filler"]))]
            lines.append(f"o{c}-{i},{' '.join(words)},{category}")
    path = folder / "other.csv"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return str(path)


def test_mapping_suggest_points_each_category_at_the_leaf_its_products_resemble_and_export_writes_them(workspace, tmp_path):
    status, out = run_cli(["ingest", "--catalog", write_other(tmp_path), "--platform", "other", *OTHER_MAP, "--db", workspace])
    assert status == 0 and "2 of 2 categories of 'other' have no confirmed master mapping" in out
    with session(workspace) as s:
        nodes_before = s.scalar(select(func.count()).select_from(TaxonomyNode))
    assert run_cli(["predict", "--db", workspace])[0] == 0
    status, out = run_cli(["mapping", "suggest", "--platform", "other", "--out", str(tmp_path / "s.json"), "--db", workspace])
    assert status == 0
    rows = {r["path"]: r for r in json.loads((tmp_path / "s.json").read_text())}
    for path, leaf in OTHER.items():  # the best master candidate is the leaf whose words the products carry ...
        best_node = next(c for c in rows[path]["candidates"] if c["node_id"] is not None)
        assert best_node["path"] == leaf and len(rows[path]["candidates"]) == 5
        assert best_node["vote"] > 0.5  # the shop's model placed most of them there
    # ... and where the names agree too, it is the suggestion
    assert rows["Tops > Shirts"]["master_path"] == "Apparel > Topwear > Shirts"
    assert "Tops > Shirts  ->  Apparel > Topwear > Shirts" in out
    with session(workspace) as s:
        stored = s.execute(select(PlatformCategory.path, CategoryMapping.status).join(CategoryMapping)).all()
        assert sorted(p for p, st in stored if st == "suggested") == sorted(OTHER)
        assert s.scalar(select(func.count()).select_from(TaxonomyNode)) == nodes_before
        assert (
            s.scalar(select(func.count()).select_from(Label).where(Label.source == "mapping")) == 0
        )  # suggestions label nothing
    status, out = run_cli(["mapping", "export", "--platform", "other", "--out", str(tmp_path / "m.csv"), "--db", workspace])
    assert status == 0 and "2 categories of 'other' written" in out
    with open(tmp_path / "m.csv", encoding="utf-8") as f:
        exported = {r["platform_path"]: r for r in csv.DictReader(f)}
    assert {p: (r["master_path"], r["status"]) for p, r in exported.items()} == {
        p: (rows[p]["master_path"] or "", "suggested") for p in OTHER
    }
    assert all(0 < float(r["confidence"]) <= 1 for r in exported.values())


def test_mapping_refuses_an_unknown_platform_and_a_missing_one(workspace):
    status, _ = run_cli(["mapping", "suggest", "--platform", "zara", "--db", workspace])
    assert status == 2
    assert run_cli(["mapping", "export", "--db", workspace])[0] == 2


def test_an_exported_category_name_that_a_spreadsheet_would_run_is_neutralised(workspace, tmp_path):
    extra = 'x1,kalo mipe,"=HYPERLINK(""http://x"") > Evil"\n'
    assert (
        run_cli(
            ["ingest", "--catalog", write_other(tmp_path, extra=extra), "--platform", "other", *OTHER_MAP, "--db", workspace]
        )[0]
        == 0
    )
    assert run_cli(["mapping", "export", "--platform", "other", "--out", str(tmp_path / "m.csv"), "--db", workspace])[0] == 0
    with open(tmp_path / "m.csv", encoding="utf-8") as f:
        paths = [r["platform_path"] for r in csv.DictReader(f)]
    assert '\'=HYPERLINK("http://x") > Evil' in paths and not any(p.startswith("=") for p in paths)


def test_google_taxonomy_import_suggest_confirm_and_feed(workspace, tmp_path):
    file = tmp_path / "google.txt"
    file.write_text(GOOGLE, encoding="utf-8")
    status, out = run_cli(["taxonomy", "import-google", str(file), "--db", workspace])
    assert status == 0 and "6 new, 0 updated, 0 unchanged" in out
    assert "0 new, 0 updated, 6 unchanged" in run_cli(["taxonomy", "import-google", str(file), "--db", workspace])[1]
    status, out = run_cli(["mapping", "suggest", "--target", "google", "--out", str(tmp_path / "g.json"), "--db", workspace])
    assert status == 0
    rows = {r["master_path"]: r for r in json.loads((tmp_path / "g.json").read_text())}
    # every active master node got a ranking; the shoe nodes share the word "Shoes" with Google's Shoes only
    with session(workspace) as s:
        active = s.scalar(select(func.count()).select_from(TaxonomyNode).where(TaxonomyNode.status == "active"))
        assert len(rows) == active == s.scalar(select(func.count()).select_from(StandardMapping))
    best = next(c for c in rows["Footwear > Shoes"]["candidates"] if c["category_id"] is not None)
    assert best["path"] == "Apparel & Accessories > Shoes" and best["name"] > 0
    status, out = run_cli(["taxonomy", "export-feed", "--out", str(tmp_path / "feed.csv"), "--db", workspace])
    assert status == 0
    with open(tmp_path / "feed.csv", encoding="utf-8") as f:
        feed = list(csv.DictReader(f))
    # nothing confirmed yet: every product listed with its master path, none with a Google category
    assert len(feed) == 240 and not any(r["google_product_category"] for r in feed)
    assert {r["master_path"] for r in feed} == set(LEAVES)


def test_the_feed_gives_each_product_the_google_category_of_its_node_or_nearest_mapped_ancestor(workspace, tmp_path):
    from db import actions
    from db.session import get_sessionmaker, transaction

    file = tmp_path / "google.txt"
    file.write_text(GOOGLE, encoding="utf-8")
    assert run_cli(["taxonomy", "import-google", str(file), "--db", workspace])[0] == 0
    assert run_cli(["mapping", "suggest", "--target", "google", "--db", workspace])[0] == 0
    for node, code in (("Footwear > Shoes", "187"), ("Apparel > Topwear > Shirts", "212")):
        status, out = run_cli(["mapping", "confirm", "--target", "google", "--node", node, "--code", code, "--db", workspace])
        assert status == 0 and "1 master categories mapped" in out
    assert run_cli(["mapping", "confirm", "--target", "google", "--node", "Nowhere", "--db", workspace])[0] == 2
    with session(workspace) as s:  # each confirmation is one undoable audit event
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "decide_standard")).all()
        assert len(events) == 2 and all(e.actor for e in events)
        with transaction(get_sessionmaker(workspace)) as t:
            actions.undo(t, event_id=events[1].id, actor="ana")
            actions.perform(
                t,
                "decide_standard",
                user=operator("ana"),
                standard="google",
                node_id=events[1].after["node_id"],
                category_id=events[1].after["category_id"],
            )
    assert run_cli(["taxonomy", "export-feed", "--out", str(tmp_path / "feed.csv"), "--db", workspace])[0] == 0
    with open(tmp_path / "feed.csv", encoding="utf-8") as f:
        by_leaf: dict[str, set] = {}
        for r in csv.DictReader(f):
            by_leaf.setdefault(r["master_path"], set()).add((r["google_product_category"], r["google_product_category_path"]))
    assert (
        by_leaf["Footwear > Shoes > Heels"] == by_leaf["Footwear > Shoes > Flats"] == {("187", "Apparel & Accessories > Shoes")}
    )
    assert by_leaf["Apparel > Topwear > Shirts"] == {("212", "Apparel & Accessories > Clothing > Shirts & Tops")}
    assert by_leaf["Apparel > Topwear > Tshirts"] == by_leaf["Footwear > Sandals > Flip Flops"] == {("", "")}


def test_a_malformed_google_file_is_refused_with_its_lines_and_nothing_is_stored(workspace, tmp_path):
    file = tmp_path / "bad.txt"
    file.write_text("# header\n1 - Animals\nnot a line\n1 - Animals > Cats\n7 - Toys > Dolls\n", encoding="utf-8")
    status, _ = run_cli(["taxonomy", "import-google", str(file), "--db", workspace])
    assert status == 2
    from core.data.google_taxonomy import TaxonomyFileError, read_google_taxonomy

    try:
        read_google_taxonomy(file)
    except TaxonomyFileError as exc:
        message = str(exc)
    assert "line 3: expected 'ID - Level 1 > Level 2 ...'" in message
    assert "line 4: id 1 already used on line 2" in message
    assert "category 7 'Toys > Dolls': its parent is not in the file" in message
    with session(workspace) as s:
        assert s.scalar(select(func.count()).select_from(PlatformCategory).where(PlatformCategory.code.is_not(None))) == 0


def test_the_shared_google_taxonomy_file_reads_whole():
    from core.config import google_taxonomy_file
    from core.data.google_taxonomy import read_google_taxonomy

    categories = read_google_taxonomy(google_taxonomy_file())
    by_code = {c.code: c.path for c in categories}
    assert len(categories) == 5582 and by_code["166"] == ("Apparel & Accessories",)
    assert by_code["212"] == ("Apparel & Accessories", "Clothing", "Shirts & Tops")
    assert sum(1 for c in categories if len(c.path) == 1) == 21 and max(len(c.path) for c in categories) == 7
