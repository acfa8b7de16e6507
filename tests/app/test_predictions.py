"""The Predictions page: the active model's placements, filtered and exported."""

from __future__ import annotations

from tests.app.helpers import run_page


def test_predictions_page_without_a_model_explains_what_to_do(app_env):
    at = run_page("predictions")
    assert "No predictions yet" in at.info[0].value


def test_predictions_page_filters_and_exports(with_predictions):
    at = run_page("predictions")
    assert "late-fusion" in at.caption[0].value
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Products"] == "80" and metrics["Agree with label"] == "98.8%"
    at.selectbox(key="pred_agree").set_value("disagrees with label").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Products"] == "1" and metrics["Sent to stage 2"] == "100.0%"
    assert any("disagrees" in c.value for c in at.caption)
    at.selectbox(key="pred_agree").set_value("all").run()
    at.slider(key="pred_range").set_value((0.5, 1.0)).run()
    assert {m.label: m.value for m in at.metric}["Products"] == "79"
