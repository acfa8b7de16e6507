"""`core retrain --benchmark` on a small database: accept the proposals on a copy, retrain, score the new leaves."""

from __future__ import annotations

from sqlalchemy import select

from core.bench import retrain as retrain_bench
from core.steps.predict import predict
from core.steps.train import train
from db import proposals as props
from db import repo
from db.models import ModelVersion, Product
from db.session import transaction
from tests.core.conftest import quiet


def test_benchmark_accepts_the_split_on_a_copy_and_scores_the_new_leaves(small_db, factory):
    train(small_db, log=quiet)
    predict(small_db, log=quiet)
    with transaction(factory) as s:
        shoes = repo.node_by_path(s, "Footwear > Shoes")
        heels = s.scalars(select(Product.id).where(Product.title.like("%Heels"))).all()
        flats = s.scalars(select(Product.id).where(Product.title.like("%Flats"))).all()
        props.replace_open_proposals(
            s,
            parent_node_id=shoes.id,
            run_key="t",
            clusters=[{"name": "Heels", "members": heels}, {"name": "flat pumps", "members": flats}],  # "Heels" clashes
        )
    if not small_db.startswith("sqlite"):
        try:
            retrain_bench.benchmark(small_db)
        except ValueError as exc:
            assert "SQLite files only" in str(exc)
            return
        raise AssertionError("the benchmark must refuse to run on a database it cannot copy")
    result = retrain_bench.benchmark(small_db)
    assert result["accepted_proposals"] == 2 and result["relabelled_products"] == 120
    assert result["new_version"] == result["previous_version"] + 1 and result["retrain_wall_s"] > 0
    paths = {n["path"] for n in result["per_node"]}
    assert paths == {"Footwear > Shoes > Heels 1", "Footwear > Shoes > flat pumps"}
    assert result["new_leaves"]["support_weighted_f1"] > 0.9  # the classes are separable
    assert result["new_leaves"]["previous_version_weighted_f1"] == 0.0  # the old model cannot name them
    with factory() as s:  # the working database is unchanged
        assert repo.node_by_path(s, "Footwear > Shoes > flat pumps") is None
        assert s.scalar(select(ModelVersion.id).order_by(ModelVersion.id.desc())) == result["previous_version"]
