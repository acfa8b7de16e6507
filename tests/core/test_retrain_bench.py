"""`core retrain --benchmark` on a small leak-free database: accept the proposals on a copy, retrain, score the new
leaves. The proposals split Footwear > Shoes by the hidden classes; the control splits the same products at random
(seeded, same sizes), which no model can learn, so its new leaves must score near chance."""

from __future__ import annotations

import math

import numpy as np
from sqlalchemy import select

from core import config
from core.bench import retrain as retrain_bench
from core.steps.predict import predict
from core.steps.train import train
from db import proposals as props
from db import repo
from db.models import ModelVersion, Product
from db.session import get_engine, transaction
from tests.core.conftest import quiet

HEELS, FLATS = "Footwear > Shoes > Heels", "Footwear > Shoes > Flats"


def propose(factory, clusters: dict[str, list[str]], run_key: str) -> None:
    """Open proposals under Footwear > Shoes: {name: member skus}."""
    with transaction(factory) as s:
        shoes = repo.node_by_path(s, "Footwear > Shoes")
        ids = dict(s.execute(select(Product.external_id, Product.id)).all())
        props.replace_open_proposals(
            s,
            parent_node_id=shoes.id,
            run_key=run_key,
            clusters=[{"name": name, "members": [ids[sku] for sku in skus]} for name, skus in clusters.items()],
        )


def chance_weighted_f1(shares: list[float]) -> float:
    """Support-weighted F1 of the best guess that knows nothing but the class shares: a constant class
    (F1 2s/(1+s) for it, 0 for the rest) or a guess in proportion to the shares (F1 = share per class)."""
    top = max(shares)
    return max(top * 2 * top / (1 + top), sum(s * s for s in shares))


def chance_and_sd(factory, version_id: int, groups: list[list[str]]) -> tuple[float, float]:
    """(`chance_weighted_f1` of the groups' shares among the held-out products in any group, the standard deviation
    of a coin-flip guess's accuracy on that many products: 0.5 / sqrt(m))."""
    with factory() as s:
        test_ids = s.get(ModelVersion, version_id).metrics["test_product_ids"]
        held_out = set(s.scalars(select(Product.external_id).where(Product.id.in_(test_ids))).all())
    counts = [len(held_out & set(g)) for g in groups]
    return chance_weighted_f1([c / sum(counts) for c in counts]), 0.5 / math.sqrt(sum(counts))


def test_benchmark_on_a_copy_scores_the_hidden_split_well_and_a_random_split_near_chance(small_db, small_catalogue, factory):
    version_id = train(small_db, log=quiet)
    predict(small_db, log=quiet)
    heels, flats = small_catalogue.skus_of(HEELS), small_catalogue.skus_of(FLATS)
    propose(factory, {"Heels": heels, "flat pumps": flats}, "t")  # "Heels" clashes with the existing leaf
    if not small_db.startswith("sqlite"):
        try:
            retrain_bench.benchmark(small_db)
        except ValueError as exc:
            assert "SQLite files only" in str(exc)
            return
        raise AssertionError("the benchmark must refuse to run on a database it cannot copy")
    result = retrain_bench.benchmark(small_db)
    assert result["accepted_proposals"] == 2 and result["relabelled_products"] == len(heels) + len(flats)
    assert result["new_version"] == result["previous_version"] + 1 and result["retrain_wall_s"] > 0
    paths = {n["path"] for n in result["per_node"]}
    assert paths == {"Footwear > Shoes > Heels 1", "Footwear > Shoes > flat pumps"}
    chance, sd = chance_and_sd(factory, version_id, [heels, flats])  # about 35 held-out shoes: sd about 0.085
    assert result["new_leaves"]["support_weighted_f1"] > chance + 3 * sd  # measured: 3.5 sd above
    assert result["new_leaves"]["previous_version_weighted_f1"] == 0.0  # the old model cannot name them
    with factory() as s:  # the working database is unchanged
        assert repo.node_by_path(s, "Footwear > Shoes > flat pumps") is None
        assert s.scalar(select(ModelVersion.id).order_by(ModelVersion.id.desc())) == result["previous_version"]

    shuffled = list(np.random.default_rng(3).permutation(heels + flats))
    pile_a, pile_b = shuffled[: len(heels)], shuffled[len(heels) :]
    propose(factory, {"pile a": pile_a, "pile b": pile_b}, "control")
    # the benchmark replaces its copy's file; the engine cached for the copy's URL still holds the first file open
    get_engine(f"sqlite:///{config.data_dir() / 'bench' / 'retrain.db'}").dispose()
    control = retrain_bench.benchmark(small_db)
    assert {n["path"] for n in control["per_node"]} == {"Footwear > Shoes > pile a", "Footwear > Shoes > pile b"}
    chance, sd = chance_and_sd(factory, version_id, [pile_a, pile_b])
    assert control["new_leaves"]["support_weighted_f1"] < chance + 2.5 * sd  # measured: 1.3 sd above
