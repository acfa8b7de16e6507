"""Discovery on several nodes: tuned vs held-out, discovery vs the plain pipeline vs BERTopic (issue 16).

Each node's level below is hidden and scored as in `python -m core discover --benchmark`; results are merged into
one JSON (one entry per platform and node), so Myntra and H&M nodes can be run from their own databases:

    DATA_DIR=/work/benchdata python -m benchmarks.bench_discovery_nodes --db sqlite:///... --platform myntra \\
        --tuned "Footwear > Shoes" --held-out "Apparel > Bottomwear" "Accessories > Bags" --max-products 2000
    DATA_DIR=/work/hm100k/data python -m benchmarks.bench_discovery_nodes --db sqlite:///... --platform hm \\
        --held-out "Garment Lower body" "Accessories" --max-products 2000

Nodes larger than --max-products are scored on a seeded random sample (the JSON says "sampled": true).

Fashion-MNIST (photos only, `python -m core ingest --fashion-mnist`) has one level of classes; a node made of
several of them, the classes hidden, is held out the same way (BERTopic left out: the products have no text):

    DATA_DIR=/work/fmdata python -m benchmarks.bench_discovery_nodes --db sqlite:////work/fmdata/fashion-mnist.db \
        --platform zalando --fashion-mnist footwear tops all
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.bench.discovery import benchmark, benchmark_classes

OUT = Path("benchmarks/results/discovery_nodes.json")
# Fashion-MNIST nodes made of several classes (core.data.fashion_mnist.CLASSES), the classes hidden
FASHION_MNIST_NODES = {
    "footwear": ("Sandal", "Sneaker", "Ankle boot"),
    "tops": ("T-shirt/top", "Pullover", "Dress", "Coat", "Shirt"),
    "all": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}


def summary_row(entry: dict) -> list[str]:
    """One line per method of a node: proposals at the default level, then the hidden-level scores."""
    rows = []
    for name, run in entry["runs"].items():
        d, h = run["default"], run["hidden_level"]
        rows.append(
            f"{entry['platform']:6s} {entry['role']:8s} {entry['node'][:24]:24s} {name.split(' (')[0]:9s} "
            f"default {d['proposals']:3d} (purity {d['purity']:.3f}, {d['share_unassigned']:.0%} unassigned, names "
            f"{d['name_accuracy']:.2f}) | k={h['k']}: ARI {h['ari']:.3f} NMI {h['nmi']:.3f} purity {h['purity']:.3f} "
            f"names {h['name_accuracy']:.2f}"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--platform", required=True, help="a label for the JSON (myntra, hm, ...)")
    parser.add_argument("--tuned", nargs="*", default=[], help="nodes the defaults were tuned on")
    parser.add_argument("--held-out", nargs="*", default=[], help="nodes never tuned on")
    parser.add_argument("--max-products", type=int, default=2000)
    parser.add_argument("--fashion-mnist", nargs="*", default=[], choices=sorted(FASHION_MNIST_NODES), help="held-out nodes")
    parser.add_argument("--no-bertopic", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    results = json.loads(args.out.read_text()) if args.out.exists() else {"nodes": {}}
    for role, nodes in (("tuned", args.tuned), ("held-out", args.held_out)):
        for node in nodes:
            entry = benchmark(args.db, node_path=node, max_products=args.max_products, bertopic=not args.no_bertopic)
            entry.update(platform=args.platform, role=role)
            save(results, f"{args.platform}: {node}", entry, args.out)
    for node in args.fashion_mnist:
        entry = benchmark_classes(args.db, list(FASHION_MNIST_NODES[node]), name=node, max_products=args.max_products)
        entry.update(platform=args.platform, role="held-out")
        save(results, f"{args.platform}: {node}", entry, args.out)
    return 0


def save(results: dict, key: str, entry: dict, out: Path) -> None:
    """Put one node's entry in the results, write them and print its rows."""
    results["nodes"][key] = entry
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=float))
    print("\n".join(summary_row(entry)), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
