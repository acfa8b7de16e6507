"""Model versions, activation (audited) and stored predictions, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from db import actions, repo
from db import predictions as preds
from db.models import AuditEvent, Label, Prediction, Product
from db.repo import CurationError
from db.session import transaction


@pytest.fixture
def labelled(factory):
    """Three products labelled A > B > C, A > B > D and (unlabelled) returns ids and node ids."""
    with transaction(factory) as s:
        plat = repo.get_or_create_platform(s, name="shop", root="/img")
        nodes = {p: repo.ensure_path(s, tuple(p.split(" > ")))[0].id for p in ("A > B > C", "A > B > D")}
        nodes.update({p: repo.node_by_path(s, p).id for p in ("A", "A > B")})
        ids = []
        for ext, image in (("1", "1.jpg"), ("2", None), ("3", None)):
            prod = Product(
                platform_id=plat.id,
                external_id=ext,
                title=f"t{ext}",
                content_hash="h",
                image=image,
                image_status="ok" if image else "none",
            )
            s.add(prod)
            s.flush()
            ids.append(prod.id)
        s.add_all(
            [
                Label(product_id=ids[0], node_id=nodes["A > B > C"], source="platform"),
                Label(product_id=ids[1], node_id=nodes["A > B > C"], source="platform"),
            ]
        )
    return ids, nodes


def path_rows(pid, nodes, leaf, confs, stage=1):
    chain = ["A", "A > B", leaf]
    return [
        {"product_id": pid, "level": i + 1, "node_id": nodes[p], "confidence": c, "stage": stage}
        for i, (p, c) in enumerate(zip(chain, confs))
    ]


def test_predictions_table_compares_with_labels(factory, labelled):
    ids, nodes = labelled
    with transaction(factory) as s:
        v = preds.register_model_version(s, name="late", metrics={"hf1": 0.99}, params={}, artifact=None)
        rows = path_rows(ids[0], nodes, "A > B > C", [1.0, 0.9, 0.8])
        rows += path_rows(ids[1], nodes, "A > B > D", [1.0, 0.5, 0.6], stage=2)
        rows += path_rows(ids[2], nodes, "A > B > D", [0.9, 0.9, 0.9])
        assert preds.replace_predictions(s, model_version_id=v.id, rows=rows) == 9
        vid = v.id
    with factory() as s:
        table = {r["external_id"]: r for r in preds.prediction_table(s, model_version_id=vid)}
    assert table["1"]["agrees"] is True and table["1"]["image"] == "/img/1.jpg"
    assert table["2"]["agrees"] is False and table["2"]["stage"] == 2
    assert table["3"]["agrees"] is None and table["3"]["label"] is None
    assert table["2"]["predicted"] == "A > B > D" and table["2"]["levels"] == [1.0, 0.5, 0.6]
    assert table["2"]["confidence"] == pytest.approx(0.3)


def test_replacing_predictions_of_a_version_drops_the_old_ones(factory, labelled):
    ids, nodes = labelled
    with transaction(factory) as s:
        v = preds.register_model_version(s, name="m", metrics={}, params={}, artifact=None)
        preds.replace_predictions(s, model_version_id=v.id, rows=path_rows(ids[0], nodes, "A > B > C", [1, 1, 1]))
        preds.replace_predictions(s, model_version_id=v.id, rows=path_rows(ids[1], nodes, "A > B > C", [1, 1, 1]))
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Prediction)) == 3
        assert set(s.scalars(select(Prediction.product_id))) == {ids[1]}


def test_activation_archives_the_previous_version_and_is_audited(factory, labelled):
    with transaction(factory) as s:
        first = preds.register_model_version(s, name="v1", metrics={}, params={}, artifact=None).id
        second = preds.register_model_version(s, name="v2", metrics={}, params={}, artifact=None).id
    with transaction(factory) as s:
        preds.activate_model_version(s, version_id=first, actor="t")
    with transaction(factory) as s:
        preds.activate_model_version(s, version_id=second, actor="t")
    with factory() as s:
        assert preds.active_model_version(s).id == second
        assert repo.audit_history(s, limit=1)[0].summary == "Activated model version #2 (v2)"
    with pytest.raises(CurationError, match="already active"):
        with transaction(factory) as s:
            preds.activate_model_version(s, version_id=second, actor="t")
    with pytest.raises(CurationError, match="Unknown model version"):
        with transaction(factory) as s:
            preds.activate_model_version(s, version_id=999, actor="t")


def test_activation_is_undoable(factory):
    with transaction(factory) as s:
        first = preds.register_model_version(s, name="a", metrics={}, params={}, artifact=None).id
        second = preds.register_model_version(s, name="b", metrics={}, params={}, artifact=None).id
        preds.activate_model_version(s, version_id=first, actor="t")
        preds.activate_model_version(s, version_id=second, actor="t")
    with factory() as s:
        activate_first, activate_second = s.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).all()
    with pytest.raises(CurationError, match="another version was activated since"):
        with transaction(factory) as s:
            actions.undo(s, event_id=activate_first, actor="t")
    with transaction(factory) as s:
        actions.undo(s, event_id=activate_second, actor="t")  # roll back to the first
    with factory() as s:
        assert preds.active_model_version(s).id == first
    with transaction(factory) as s:
        actions.undo(s, event_id=activate_first, actor="t")
    with factory() as s:
        assert preds.active_model_version(s) is None
