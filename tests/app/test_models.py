"""The Models page: the versions, their comparison, activation / roll-back, and the retrain job."""

from __future__ import annotations

from sqlalchemy import select

from db import predictions as preds
from db.models import Job
from db.session import get_sessionmaker
from tests.app.helpers import run_page


def test_models_page_compares_versions_per_level_and_node_and_rolls_back(app_env, tree, with_predictions, two_versions, no_spawn):
    first, second = two_versions
    wrong = with_predictions  # #1 sends this one product to another leaf, #2 gets every product right
    at = run_page("models")
    assert not at.exception, at.exception
    versions = at.dataframe[0].value
    assert list(versions["version"]) == [f"#{second}", f"#{first}"] and list(versions["status"]) == ["active", "archived"]
    levels = at.dataframe[1].value
    label, predicted = wrong.label.split(" > "), wrong.predicted.split(" > ")
    depth = max(len(p) for p in tree.counts)
    expected = []  # per level, over the products labelled that deep: #1 misses only where the prefixes differ
    for level in range(1, depth + 1):
        n = tree.products_at(level)
        expected.append(round((n - (len(label) >= level and label[:level] != predicted[:level])) / n, 4))
    assert levels[f"accuracy #{first}"].tolist() == expected and levels[f"accuracy #{second}"].tolist() == [1.0] * depth
    nodes = at.dataframe[2].value  # leaf F1 moves only for the misplaced product's label and the leaf it was sent to
    assert sorted(nodes["path"]) == sorted([wrong.label, wrong.predicted]) and (nodes["change"] > 0).all()
    at.selectbox(key=f"activate_pick_{second}_{second}").set_value(first).run()
    at.button(key="activate_btn").click().run()
    at.button(key="confirm_action").click().run()
    assert not at.exception, at.exception
    with get_sessionmaker(app_env)() as s:
        assert preds.active_model_version(s).id == first


def test_models_page_retrain_button_queues_one_job(app_env, two_versions, no_spawn):
    at = run_page("models")
    at.button(key="retrain_btn").click().run()
    assert not at.exception, at.exception
    with get_sessionmaker(app_env)() as s:
        job = s.scalars(select(Job)).one()
    assert job.kind == "retrain" and no_spawn == [job.id]
    at.run()
    assert at.button(key="retrain_btn").disabled  # one retrain at a time
