"""Leave-platform-out: Myntra -> H&M and H&M -> Myntra (text), with the in-platform figures beside them.

    python -m benchmarks.bench_cross_platform --db sqlite:///data/curator.db --out benchmarks/results/cross_platform.json

The database must hold the default catalogue and the H&M sample of `benchmarks.bench_mapping` (platform `hm`).
H&M's master labels come from the hand-written reference mapping (tests/data/hm_reference_mapping.csv), confirmed
here through the Mapping actions (so its products get `mapping` labels the way a curator's decisions give them;
"no master equivalent" types are marked so and stay unlabelled). Then `python -m core evaluate --cross-platform`'s
function runs both directions (H&M grouped by product_code).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform as platform_mod
from datetime import date
from pathlib import Path

from sqlalchemy import select

from core.bench.cross_platform import markdown, run
from db import mappings
from db.models import CategoryMapping, PlatformCategory
from db.repo import node_by_path
from db.session import get_sessionmaker, transaction

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "hm_reference_mapping.csv"


def apply_reference(db_url: str, platform: str = "hm") -> dict[str, int]:
    """Confirm each H&M category's reference mapping (or mark it "no master equivalent"), skipping decided ones."""
    with open(REFERENCE, encoding="utf-8") as f:
        ref = {row["hm_path"]: row["master_path"] for row in csv.DictReader(f)}
    counts = {"confirmed": 0, "no_equivalent": 0, "kept": 0}
    factory = get_sessionmaker(db_url)
    with transaction(factory) as s:
        plat = mappings.get_platform(s, platform)
        decided = set(
            s.scalars(
                select(PlatformCategory.path)
                .join(CategoryMapping, CategoryMapping.platform_category_id == PlatformCategory.id)
                .where(PlatformCategory.platform_id == plat.id, CategoryMapping.status.in_(("confirmed", "no_equivalent")))
            )
        )
        for row in mappings.category_table(s, platform=platform):
            if row["path"] in decided:
                counts["kept"] += 1
            elif ref[row["path"]]:
                node = node_by_path(s, ref[row["path"]])
                mappings.confirm_mapping(s, category_id=row["category_id"], node_id=node.id, actor="reference mapping")
                counts["confirmed"] += 1
            else:
                mappings.reject_mapping(s, category_id=row["category_id"], no_equivalent=True, actor="reference mapping")
                counts["no_equivalent"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--per-leaf", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/cross_platform.json")
    args = parser.parse_args()
    applied = apply_reference(args.db)
    print(f"reference mapping applied: {applied}", flush=True)
    result = run(args.db, ("myntra", "hm"), group_keys={"hm": "product_code"}, per_leaf=args.per_leaf, seed=args.seed)
    result.update(
        date=date.today().isoformat(),
        machine=f"{platform_mod.machine()}, {os.cpu_count()} cores, CPU",
        command="python -m benchmarks.bench_cross_platform",
        reference_applied=applied,
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(markdown(result))


if __name__ == "__main__":
    main()
