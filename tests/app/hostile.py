"""A hostile catalogue, for the escaping tests (tests/app/test_escaping.py renders pages with AppTest,
tests/e2e/test_hostile_catalogue.py in Chromium): titles, descriptions, brands, ids, category names, a second
platform's name, proposal names, an audit event's actor and summary, and job messages that are Markdown, HTML,
Streamlit directives, LaTeX and formulas, all pointing at `track` (a URL no browser should ever fetch), a title of
100,000 characters, and a photo that was replaced after ingest by a file that is no image.

Every value the pages show comes from the constants below (the tests' own data)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select

from core.data.ingest import ColumnMap
from core.steps.ingest import ingest
from core.steps.maps import save_map, slug_for
from db import jobs, repo, review
from db import predictions as preds
from db import proposals as props
from db.models import Product, TaxonomyNode
from db.session import get_sessionmaker, transaction, upgrade

EVIL = "http://evil.invalid/x"
LONG_TITLE_CHARS = 100_000
FORMULAS = {"=": '=HYPERLINK("http://evil.invalid","x")', "+": "+1+cmd", "-": "-2+3", "@": "@SUM(1,2)"}


def markup(track: str) -> dict[str, str]:
    """The hostile strings, by what they try, each pointing at `track` or at EVIL."""
    return {
        "image": f"![x]({track})",
        "link": f"[click]({EVIL})",
        "anchor": f'<a href="{EVIL}">anchor</a>',
        "img": f'<img src="{track}" onerror="alert(1)">',
        "script": "<script>alert(1)</script>",
        "directive": ":red[red] :blue-badge[badge]",
        "math": "$x^2$",
        "autolink": f"{EVIL} www.evil.invalid mail@evil.invalid",
        "emoji": ":smile: :material/home:",
    }


@dataclass
class HostileWorld:
    url: str
    track: str
    folder: Path
    titles: dict[str, str] = field(default_factory=dict)  # external id -> title
    leaf: str = ""  # the hostile leaf's path (every product is in it)
    long_id: str = ""  # the product with the 100,000-character title
    proposal_names: list[str] = field(default_factory=list)
    actor: str = ""
    summary: str = ""


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8), colour).save(path)


def catalogue(track: str) -> pd.DataFrame:
    """The master platform's rows: one product per hostile string, the formulas, the long title."""
    m = markup(track)
    top, mid, leaf = "Footwear", f"Shoes {m['link']}", f"{m['directive']} {m['math']} {m['image']}"  # no ">" in a name
    rows = [
        {
            "id": f"p-{kind}",
            "title": f"{value} title",
            "description": f"{m['image']} {m['link']} {value}",
            "brand": m["img"] if kind == "image" else m["script"],
            "image": "",
        }
        for kind, value in m.items()
    ]
    rows[0]["image"] = track  # a remote photo: never shown, never fetched by the page
    rows[1]["image"], rows[2]["image"] = "ok.png", "replaced.png"
    rows[3]["id"] = f"[id]({EVIL})"
    rows += [{"id": f"f-{k}", "title": v, "description": v, "brand": v, "image": ""} for k, v in FORMULAS.items()]
    long_title = (m["image"] + " " + "long " * LONG_TITLE_CHARS)[:LONG_TITLE_CHARS]
    rows.append({"id": "p-long", "title": long_title, "description": "", "brand": "", "image": ""})
    frame = pd.DataFrame(rows)
    frame["master_category"], frame["sub_category"], frame["article_type"] = top, mid, leaf
    return frame


def build(folder: Path, track: str, data: Path) -> HostileWorld:
    """A SQLite database under `folder` holding the hostile catalogue and everything the pages show of it; the map
    goes to `data` (the app's DATA_DIR)."""
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'hostile.db'}"
    upgrade(url)
    frame = catalogue(track)
    _png(folder / "ok.png", (200, 30, 30))
    _png(folder / "replaced.png", (30, 200, 30))
    frame.to_csv(folder / "master.csv", index=False)
    ingest(folder / "master.csv", platform="myntra", db_url=url, images_root=folder)
    (folder / "replaced.png").write_bytes(b"this is no longer an image")  # replaced after ingest
    m = markup(track)
    other = pd.DataFrame(
        [{"id": "o-1", "title": m["image"], "description": "", "brand": "", "image": "", "category": f"Odd {m['link']}"}]
    )
    other.to_csv(folder / "other.csv", index=False)
    ingest(folder / "other.csv", platform="shop <b>2</b>", db_url=url, mapping=ColumnMap(levels=(), path="category"))
    world = HostileWorld(url=url, track=track, folder=folder, titles=dict(zip(frame["id"], frame["title"])))
    world.leaf = " > ".join(frame.loc[0, ["master_category", "sub_category", "article_type"]])
    world.long_id = "p-long"
    _curate(world, m)
    _save_map(world, data)
    return world


def _curate(world: HostileWorld, m: dict[str, str]) -> None:
    """Predictions (every product in its leaf), a review queue, two proposals, a map, an audit event and jobs."""
    with transaction(get_sessionmaker(world.url)) as s:
        nodes = {n.path: n.id for n in s.scalars(select(TaxonomyNode))}
        products = s.scalars(select(Product).order_by(Product.id)).all()
        master = [p for p in products if p.external_id in world.titles]
        version = preds.register_model_version(s, name=m["anchor"], metrics={"hf1": 0.5}, params={}, artifact=None)
        preds.activate_model_version(s, version_id=version.id, actor="test")
        parts = world.leaf.split(" > ")
        rows = [
            {"product_id": p.id, "level": k, "node_id": nodes[" > ".join(parts[:k])], "confidence": 0.9, "stage": 1}
            for p in master
            for k in (1, 2, 3)
        ]
        preds.replace_predictions(s, model_version_id=version.id, rows=rows)
        leaf = nodes[world.leaf]
        items = [
            {
                "product_id": p.id,
                "score": 0.9 - 0.01 * k,
                "self_confidence": 0.1,
                "margin": -0.4,
                "flagged": True,
                "label_node_id": leaf,
                "suggested_node_id": nodes[" > ".join(parts[:2])],
                "suggested_confidence": 0.8,
                "levels": [],
            }
            for k, p in enumerate(master)
        ]
        review.replace_open_items(s, run_key="t", rows=items)
        ids = [p.id for p in master]
        world.proposal_names = [f"{m['image']} one", f"{m['anchor']} two"]
        clusters = [
            {
                "name": name,
                "members": members,
                "coords": [[float(i), float(i)] for i in range(len(members))],
                "suggested_names": [name, m["link"]],
                "scores": {"size": len(members), "coherence": 0.5, "top_terms": [m["img"], m["directive"]]},
            }
            for name, members in zip(world.proposal_names, (ids[: len(ids) // 2], ids[len(ids) // 2 :]))
        ]
        props.replace_open_proposals(s, parent_node_id=leaf, run_key="t", clusters=clusters)
        world.actor, world.summary = m["img"], f"renamed {m['image']} to {m['link']}"
        repo.write_audit(s, actor=world.actor, action="rename_node", summary=world.summary)
        for kind in ("retrain", "review", "import", "mapping"):
            job = jobs.start_job(s, kind=kind, params={"name": m["image"], "platform": m["anchor"]}, actor=m["script"])
            jobs.report(s, job_id=job.id, message=m["link"], log=f"{kind}: {m['image']}")
            jobs.finish(s, job_id=job.id, error=f"{m['img']} {m['directive']}" if kind != "retrain" else None)


def _save_map(world: HostileWorld, data: Path) -> None:
    """The map of the hostile leaf (its products on a circle), saved under `data`."""
    with get_sessionmaker(world.url)() as s:
        leaf = repo.node_by_path(s, world.leaf).id
        ids = [p.id for p in s.scalars(select(Product).order_by(Product.id)) if p.external_id in world.titles]
    n, before = len(ids), os.environ.get("DATA_DIR")
    os.environ["DATA_DIR"] = str(data)
    try:
        save_map(
            slug_for(leaf),
            product_ids=np.array(ids),
            xy=np.column_stack([np.cos(np.arange(n) * 2 * math.pi / n), np.sin(np.arange(n) * 2 * math.pi / n)]),
            clusters=np.zeros(n),
            meta={"timings": {"view": 1.0}},
        )
    finally:
        if before is None:
            os.environ.pop("DATA_DIR")
        else:
            os.environ["DATA_DIR"] = before
