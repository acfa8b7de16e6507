"""Benchmark: the database reads the pages and the batch steps make, at one catalogue size (run after
`bench_scale --steps ingest` on the same database): wall ms of each (best of `--repeat`, cold first run listed too),
the rows it returned, and the process's peak resident MB after it (`resource.getrusage`, so a read that holds the
whole catalogue in memory shows).

    python -m benchmarks.bench_scale_db --db postgresql+psycopg://postgres@127.0.0.1:54329/curator_scale_1m \\
        --label 1m --out benchmarks/results/scale_db_1m.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from datetime import date
from pathlib import Path

from sqlalchemy import select

from core.steps.catalogue import load_catalogue
from db import mappings, repo
from db.models import Product, TaxonomyNode
from db.session import get_sessionmaker


def _largest_leaf(s) -> int:
    counts = repo.node_counts(s)
    kids = repo.children_map(s)
    leaves = [n for n in s.scalars(select(TaxonomyNode.id)) if not kids.get(n)]
    return max(leaves, key=lambda n: counts.get(n, (0, 0))[0])


def _key_at(s, node: int, position: int) -> tuple[int, int] | None:
    """The `page_key` of the product at `position` (0-based) of the node's photo-first order (read by offset)."""
    page, _ = repo.products_in_node(s, node_id=node, limit=1, offset=position)
    return repo.page_key(page[0].image_status, page[0].id) if page else None


def reads(s, db_url: str) -> dict:
    """name -> a function of the session returning something with a length (what the page or step reads)."""
    os.environ["DATABASE_URL"] = db_url  # app.cache reads the database it names
    from app import cache

    top = s.scalar(select(TaxonomyNode.id).where(TaxonomyNode.parent_id.is_(None)).order_by(TaxonomyNode.id))
    leaf = _largest_leaf(s)
    known = repo.node_counts(s)[top][1]  # what the Taxonomy page already has for the node
    deep = min(100_000, known) - 1
    after = _key_at(s, top, deep)
    return {
        "data_version (every page: app.cache.data_version)": lambda: cache.data_version(),
        "labels_version (app.cache.labels_version)": lambda: cache.labels_version(),
        "taxonomy_rows (Taxonomy page)": lambda: repo.taxonomy_rows(s),
        "catalogue_stats (Catalogue page)": lambda: repo.catalogue_stats(s),
        "products_in_node, top node, first page of 24": lambda: repo.products_in_node(s, node_id=top, limit=24)[0],
        "products_in_node, top node, first page, total given (as the app reads it)": lambda: repo.products_in_node(
            s, node_id=top, limit=24, total=known
        )[0],
        "products_in_node, top node, page at offset 100,000": lambda: repo.products_in_node(
            s, node_id=top, limit=24, offset=100_000, total=known
        )[0],
        f"products_in_node, top node, keyset page after product {deep + 1:,}": lambda: repo.products_in_node(
            s, node_id=top, limit=24, after=after, total=known
        )[0],
        "products_in_node, largest leaf, first page": lambda: repo.products_in_node(s, node_id=leaf, limit=24)[0],
        "product_cards of 24": lambda: repo.product_cards(
            s, product_ids=list(s.scalars(select(Product.id).order_by(Product.id.desc()).limit(24)))
        ),
        "mappings.coverage (Mapping page)": lambda: mappings.coverage(s),
        "load_catalogue (what embed/train/predict/review/map read first)": lambda: load_catalogue(s).product_ids,
    }


def measure(db_url: str, repeat: int) -> list[dict]:
    rows = []
    factory = get_sessionmaker(db_url)
    with factory() as s:
        for name, read in reads(s, db_url).items():
            times, size = [], 0
            for _ in range(repeat if not name.startswith("load_catalogue") else 1):
                started = time.perf_counter()
                out = read()
                times.append((time.perf_counter() - started) * 1000)
                size = len(out)
                s.expire_all()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            row = {"read": name, "cold_ms": round(times[0], 1), "best_ms": round(min(times), 1), "rows": size}
            row["peak_mb_after"] = round(peak)
            print(row, flush=True)
            rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", required=True)
    parser.add_argument("--label", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = measure(args.db, args.repeat)
    meta = {"date": date.today().isoformat(), "label": args.label, "command": " ".join(sys.argv)}
    meta["loadavg_1_5_15"] = {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
