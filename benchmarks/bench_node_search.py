"""Benchmark: the Clusters page's free-text search. Queries "<colour> <article type>" for every pair that at
least 30 products of the node share (colour from the catalogue's base_colour attribute); a result is relevant when
it has both. Compares, in the same run, searching the products' full-title MiniLM vectors (what `NodeSearch.search`
does) with searching the discovery features (titles and descriptions without brand, colour and care text; what
it did before), both through `core.ann.AnnIndex`.

    python -m benchmarks.bench_node_search --out benchmarks/results/node_search.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from sqlalchemy import select

    from core.config import database_url
    from core.discover.features import node_products
    from core.embed.encoders import get_encoder
    from core.steps.catalogue import catalogue_and_brands
    from core.steps.discover import NodeSearch
    from db.models import Product
    from db.session import get_sessionmaker

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default=database_url())
    parser.add_argument("--node", default="Footwear > Shoes")
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "node_search.json"))
    args = parser.parse_args()
    search = NodeSearch(args.db, args.node)
    depth = len(args.node.split(" > "))
    factory = get_sessionmaker(args.db)
    cat, _ = catalogue_and_brands(factory)
    kind = {int(cat.product_ids[i]): cat.labels[i][depth] for i in node_products(cat, args.node)}
    with factory() as s:
        rows = s.execute(select(Product.id, Product.attributes)).all()
    colour = {int(p): ((a or {}).get("base_colour") or "").lower() for p, a in rows}
    pairs = Counter((colour[p], kind[p]) for p in kind)
    queries = sorted((c, t) for (c, t), n in pairs.items() if n >= 30 and c)
    encoder = get_encoder("minilm")
    ways = {
        "full-title vectors (now)": lambda q: search.text_index.search(q, args.k)[1][0],
        "discovery features (before)": lambda q: search.index.search(np.concatenate([q, q], axis=1), args.k)[1][0],
    }
    result = {way: {"both": [], "colour": [], "type": []} for way in ways}
    for c, t in queries:
        q = encoder.embed([f"{c} {t.lower()}"])
        for way, find in ways.items():
            ids = [int(i) for i in find(q)]
            result[way]["both"].append(np.mean([colour[i] == c and kind[i] == t for i in ids]))
            result[way]["colour"].append(np.mean([colour[i] == c for i in ids]))
            result[way]["type"].append(np.mean([kind[i] == t for i in ids]))
    summary = {way: {m: round(float(np.mean(v)), 3) for m, v in r.items()} for way, r in result.items()}
    meta = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, CPU", "command": " ".join(sys.argv)}
    out = {"meta": meta, "node": args.node, "k": args.k, "queries": len(queries), "precision_at_k": summary}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"{len(queries)} queries '<colour> <type>' on {args.node}, precision@{args.k}:")
    print("| searched | colour and type | colour | type |\n|---|---|---|---|")
    for way, r in summary.items():
        print(f"| {way} | {r['both']} | {r['colour']} | {r['type']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
