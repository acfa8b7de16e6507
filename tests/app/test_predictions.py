"""The Predictions page: the active model's placements, filtered (by agreement, confidence, platform), and the CSV
its Export button serves."""

from __future__ import annotations

import pandas as pd

from db import predictions as preds
from db.session import get_sessionmaker, transaction
from tests.app.helpers import RIGHT_CONFIDENCE, WRONG_CONFIDENCE, run_page, served_csv, slice_paths
from tests.app.mapping_data import HM, SHOP, make_world
from tests.app.shown import shown


def test_predictions_page_without_a_model_explains_what_to_do(app_env):
    at = run_page("predictions")
    assert "No predictions yet" in at.info[0].value


def test_predictions_page_metrics_follow_the_agreement_and_confidence_filters(with_predictions, tree):
    n = sum(tree.products(root) for root in tree.paths(1))  # every product of the slice, one of them misplaced
    at = run_page("predictions")
    assert "late-fusion" in shown(at.caption[0].value)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Products"] == f"{n:,}" and metrics["Agree with label"] == f"{(n - 1) / n:.1%}"
    assert metrics["Sent to stage 2"] == f"{1 / n:.1%}"
    at.selectbox(key="pred_agree").set_value("disagrees with label").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Products"] == "1" and metrics["Sent to stage 2"] == "100.0%" and metrics["Agree with label"] == "0.0%"
    assert any("disagrees" in c.value for c in at.caption)
    at.selectbox(key="pred_agree").set_value("all").run()
    at.slider(key="pred_range").set_value((0.5, 1.0)).run()  # 0.4 per level: the misplaced product falls below 0.5
    assert {m.label: m.value for m in at.metric}["Products"] == f"{n - 1:,}"


def test_predictions_export_button_serves_the_filtered_rows_as_csv(with_predictions, app_slice, media_stores):
    wrong, paths = with_predictions, slice_paths(pd.read_parquet(app_slice))
    at = run_page("predictions")
    at.selectbox(key="pred_agree").set_value("disagrees with label").run()
    (row,) = served_csv(at, media_stores, "pred_export")
    depth = len(wrong.predicted.split(" > "))
    assert (row["product_id"], row["external_id"]) == (str(wrong.product_id), wrong.external_id)
    assert (row["label"], row["predicted"], row["stage"], row["agrees"]) == (wrong.label, wrong.predicted, "2", "False")
    assert abs(float(row["confidence"]) - WRONG_CONFIDENCE**depth) < 1e-9  # the whole path: the product of its levels
    assert [float(row[f"level_{k}"]) for k in range(1, depth + 1)] == [WRONG_CONFIDENCE] * depth

    at.selectbox(key="pred_agree").set_value("all").run()
    rows = served_csv(at, media_stores, "pred_export")
    assert sorted(r["external_id"] for r in rows) == sorted(paths)
    assert rows[0]["external_id"] == wrong.external_id  # least confident first: 0.4 per level against 0.97

    at.slider(key="pred_range").set_value((0.5, 1.0)).run()
    rows = served_csv(at, media_stores, "pred_export")
    assert sorted(r["external_id"] for r in rows) == sorted(set(paths) - {wrong.external_id})
    assert all(r["label"] == r["predicted"] == paths[r["external_id"]] and r["agrees"] == "True" for r in rows)
    depth = {e: len(p.split(" > ")) for e, p in paths.items()}
    assert all(abs(float(r["confidence"]) - RIGHT_CONFIDENCE ** depth[r["external_id"]]) < 1e-9 for r in rows)


def test_predictions_page_platform_filter_keeps_only_that_platforms_products(tmp_path, monkeypatch):
    world = make_world(tmp_path)
    shirts = "Apparel > Topwear > Shirts".split(" > ")
    with transaction(get_sessionmaker(world.url)) as s:  # every product of both platforms predicted a shirt
        version = preds.register_model_version(s, name="late-fusion", metrics={"hf1": 0.9}, params={}, artifact=None)
        preds.activate_model_version(s, version_id=version.id, actor="test")
        rows = [
            {
                "product_id": pid,
                "level": k + 1,
                "node_id": world.nodes[" > ".join(shirts[: k + 1])],
                "confidence": 0.9,
                "stage": 1,
            }
            for pid in world.pids.values()
            for k in range(len(shirts))
        ]
        preds.replace_predictions(s, model_version_id=version.id, rows=rows)
    monkeypatch.setenv("DATABASE_URL", world.url)
    at = run_page("predictions")
    assert at.multiselect(key="pred_platforms").options == ["hm", "shop"]
    assert {m.label: m.value for m in at.metric}["Products"] == str(len(HM) + len(SHOP))
    for platform, rows_of in (("hm", HM), ("shop", SHOP)):
        at.multiselect(key="pred_platforms").set_value([platform]).run()
        assert {m.label: m.value for m in at.metric}["Products"] == str(len(rows_of))
        table = at.dataframe[0].value
        assert sorted(table["external_id"]) == sorted(sku for sku, _, _ in rows_of) and set(table["platform"]) == {platform}
