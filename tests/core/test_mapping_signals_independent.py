"""A platform's own mapping labels never feed its own suggestions (`core.steps.mapping.mapping_problem`).

Once a category's mapping is confirmed, its products carry master labels. If those products were among the master
nodes' sampled members, a confirmed mapping (right or wrong) would vouch for itself on the next `mapping suggest`,
and a benchmark run on a database where the reference mapping was confirmed would score the reference against
itself (it did: 1-nearest-neighbour over such samples "found" 0.86 of the H&M reference, 0.35 without them).
The check: confirm both categories of the second platform onto a deliberately wrong leaf, and the signals between
that platform's categories and the master nodes stay exactly what they were.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select

from core.steps.mapping import mapping_problem
from db import mappings
from db.models import Label, PlatformCategory
from db.session import get_sessionmaker, transaction
from tests.core import test_cli_steps as cli_steps
from tests.core.test_cli_steps import run_cli, session
from tests.core.test_mapping_steps import OTHER_MAP, write_other

base, workspace = cli_steps.base, cli_steps.workspace  # the synthetic shop, trained and predicted (fixtures)
WRONG = "Footwear > Sandals > Flip Flops"  # neither of the second platform's categories resembles it


def test_confirmed_mappings_of_a_platform_do_not_change_the_signals_of_its_own_categories(workspace, tmp_path):
    assert run_cli(["ingest", "--catalog", write_other(tmp_path), "--platform", "other", *OTHER_MAP, "--db", workspace])[0] == 0
    assert run_cli(["predict", "--db", workspace])[0] == 0
    before = mapping_problem(workspace, "other", log=lambda _: None)
    wrong = before.node_ids[before.nodes.index(tuple(WRONG.split(" > ")))]
    with transaction(get_sessionmaker(workspace)) as s:
        for category_id in before.category_ids:
            mappings.confirm_mapping(s, category_id=category_id, node_id=wrong, actor="tester")
    with session(workspace) as s:  # the confirmation did label the platform's products at the wrong leaf ...
        labelled = s.scalar(select(func.count()).select_from(Label).where(Label.source == "mapping", Label.node_id == wrong))
        members = s.scalar(select(func.count()).select_from(PlatformCategory).where(PlatformCategory.id.in_(before.category_ids)))
    assert labelled == 30 and members == 2
    after = mapping_problem(workspace, "other", log=lambda _: None)
    assert after.nodes == before.nodes and after.categories == before.categories
    # ... yet the wrong leaf gained nothing: its centroid is still made of the shop's own products
    for signal in ("vote", "name", "centroid"):
        np.testing.assert_array_equal(getattr(after.signals, signal), getattr(before.signals, signal), err_msg=signal)
