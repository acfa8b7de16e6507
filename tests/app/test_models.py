"""The Models page: the versions, their comparison, activation / roll-back, and the retrain job."""

from __future__ import annotations

from sqlalchemy import select

from db import predictions as preds
from db.models import Job
from db.session import get_sessionmaker
from tests.app.helpers import run_page


def test_models_page_compares_versions_and_rolls_back(app_env, two_versions, no_spawn):
    first, second = two_versions
    at = run_page("models")
    assert not at.exception, at.exception
    versions = at.dataframe[0].value
    assert list(versions["version"]) == [f"#{second}", f"#{first}"] and list(versions["status"]) == ["active", "archived"]
    levels = at.dataframe[1].value
    assert levels[f"accuracy #{second}"].tolist()[-1] == 1.0 and levels[f"accuracy #{first}"].tolist()[-1] < 1.0
    nodes = at.dataframe[2].value
    assert len(nodes) >= 1 and (nodes["change"] > 0).any()  # the leaf #1 got wrong improved
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
