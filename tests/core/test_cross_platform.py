"""Leave-platform-out evaluation (`python -m core evaluate --cross-platform`): the scoring by hand, and both
directions between test_cli_steps' synthetic shop and a second platform mapped onto two of its leaves."""

from __future__ import annotations

import json

import pytest

from core.bench.cross_platform import cut_score
from db import mappings
from db.models import PlatformCategory
from db.repo import node_by_path
from db.session import get_sessionmaker, transaction
from tests.core import test_cli_steps as cli_steps
from tests.core.test_cli_steps import PER_LEAF, run_cli
from tests.core.test_mapping_steps import OTHER, OTHER_MAP, write_other

base, workspace = cli_steps.base, cli_steps.workspace  # the synthetic shop, trained and predicted (fixtures)


def test_cut_score_cuts_each_prediction_to_its_truths_depth():
    truth = [("A", "B", "C"), ("A", "B"), ("D",)]
    predicted = [("A", "B", "X"), ("A", "B", "Y"), ("A", "B", "C")]
    out = cut_score(truth, predicted)
    # shared prefixes: 2 of 3, 2 of 2 (cut to depth 2), 0 of 1 -> 4 / 6
    assert out["hF1"] == pytest.approx(4 / 6)
    assert (out["top_level_accuracy"], out["exact_accuracy"], out["n"]) == (pytest.approx(2 / 3), pytest.approx(1 / 3), 3)


def test_evaluate_cross_platform_scores_both_directions_on_what_each_can_reach(workspace, tmp_path):
    assert (
        run_cli(
            ["ingest", "--catalog", write_other(tmp_path, per_category=30), "--platform", "other", *OTHER_MAP, "--db", workspace]
        )[0]
        == 0
    )
    factory = get_sessionmaker(workspace)
    with transaction(factory) as s:
        for category in s.query(PlatformCategory).filter(PlatformCategory.path.in_(list(OTHER))):
            node = node_by_path(s, OTHER[category.path])
            mappings.confirm_mapping(s, category_id=category.id, node_id=node.id, actor="test")
    out = tmp_path / "cross.json"
    status, printed = run_cli(
        ["evaluate", "--cross-platform", "--per-leaf", "0", "--out", str(out), "--db", workspace]  # platforms found
    )
    assert status == 0, printed
    result = json.loads(out.read_text())
    to_other, to_shop = result["directions"]
    assert (to_other["train"], to_other["test"], to_shop["train"], to_shop["test"]) == ("other", "shop", "shop", "other")
    # other's model knows 2 of the shop's 6 leaves: a third of the shop's products are reachable; the shop's knows both
    assert to_other["coverage"] == pytest.approx(2 / 6) and to_other["cross_test_products"] == 2 * PER_LEAF
    assert to_shop["coverage"] == 1.0 and to_shop["cross_test_products"] == 60
    assert set(to_shop["models"]) == {"text-only", "early-fusion", "late-fusion", "attention-fusion", "tfidf-svm (baseline)"}
    # the second platform's products carry the words of the leaf they are mapped to: the shop's models place most
    assert to_shop["models"]["text-only"]["cross_platform"]["exact_accuracy"] > 0.6
    assert "| shop -> other | late-fusion |" in printed
