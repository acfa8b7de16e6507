"""Optimistic concurrency in one process: a stale version is refused naming who changed the row, every change bumps
the version, the database refuses what breaks an invariant, and lock waits end in one line (db/session.py)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.orm import sessionmaker

from db import actions, curation, predictions, proposals, session, users
from db.models import Label, ModelVersion, Proposal, TaxonomyNode
from db.repo import ConflictError, CurationError
from db.session import get_engine, make_engine, transaction


def act(factory, name: str, actor: str = "alice", **kwargs):
    with transaction(factory) as s:
        return actions.perform(s, name, user=users.operator(actor), **kwargs)


def version_of(factory, model, row_id: int) -> int:
    with factory() as s:
        return s.get(model, row_id).version


def test_a_rename_based_on_a_stale_version_is_refused_naming_who_renamed_it(factory, tree):
    seen = version_of(factory, TaxonomyNode, tree["Footwear > Shoes"])
    act(factory, "rename_node", node_id=tree["Footwear > Shoes"], new_name="Boots", expected_version=seen)
    assert version_of(factory, TaxonomyNode, tree["Footwear > Shoes"]) > seen  # bumped (once per write of the row)
    with pytest.raises(ConflictError, match=r"^Category 'Boots' was renamed by alice a moment ago: reload\.$"):
        act(factory, "rename_node", "bob", node_id=tree["Footwear > Shoes"], new_name="Trainers", expected_version=seen)
    with factory() as s:
        assert s.get(TaxonomyNode, tree["Footwear > Shoes"]).name == "Boots"


def test_a_merge_states_both_versions_and_is_refused_when_the_target_changed(factory, tree):
    casual, sports = tree["casual"], tree["sports"]
    saw = {casual: version_of(factory, TaxonomyNode, casual), sports: version_of(factory, TaxonomyNode, sports)}
    act(factory, "retire_node", "carol", node_id=sports, target_id=tree["flips"])
    with pytest.raises(ConflictError, match="Category 'Sports Shoes' was retired by carol a moment ago: reload"):
        act(factory, "merge_node", source_id=casual, target_id=sports, expected=saw)
    with factory() as s:  # nothing half-applied: the source keeps its labels and stays active
        assert s.get(TaxonomyNode, casual).status == "active"
        assert len(s.scalars(select(Label).where(Label.node_id == casual)).all()) == 2


def test_a_decided_proposal_refuses_a_second_decision_on_the_version_it_was_seen_at(factory, tree):
    with transaction(factory) as s:
        proposal = Proposal(parent_node_id=tree["Footwear > Shoes"], name="Loafers", members=[tree["p1"]], scores={})
        s.add(proposal)
    seen = version_of(factory, Proposal, proposal.id)
    act(factory, "reject_proposal", proposal_id=proposal.id, expected_version=seen)
    with pytest.raises(ConflictError, match=r"Proposal #\d+ \('Loafers'\) was rejected by alice a moment ago: reload"):
        act(factory, "accept_proposal", "bob", proposal_id=proposal.id, expected_version=seen)


def test_activation_is_refused_when_another_version_was_activated_since(factory):
    with transaction(factory) as s:
        rows = [ModelVersion(name=f"m{i}", status="active" if i == 0 else "candidate") for i in range(3)]
        s.add_all(rows)
    first, second, third = (r.id for r in rows)
    saw = {first: version_of(factory, ModelVersion, first), third: version_of(factory, ModelVersion, third)}
    act(factory, "activate_model", "alice", version_id=second)
    with pytest.raises(ConflictError, match=rf"Model version #{first} was .* by alice a moment ago: reload"):
        act(factory, "activate_model", "bob", version_id=third, expected=saw)
    with factory() as s:
        assert s.scalars(select(ModelVersion.id).where(ModelVersion.status == "active")).all() == [second]


def test_the_database_refuses_a_label_on_a_retired_category_in_one_line(factory, tree):
    act(factory, "retire_node", node_id=tree["flips"], target_id=tree["casual"])
    with pytest.raises(ConflictError, match=r"^Refused \(no product label on a retired category\): someone else"):
        with transaction(factory) as s:  # a writer that skips the checks (as a racing one would have)
            s.add(Label(product_id=tree["p5"], node_id=tree["flips"], source="human"))


def test_the_database_refuses_a_second_active_model_version(factory):
    with pytest.raises(ConflictError, match="^Refused, someone else is changing this"):
        with transaction(factory) as s:
            s.add_all([ModelVersion(name="a", status="active"), ModelVersion(name="b", status="active")])


def test_the_database_refuses_a_live_category_under_a_retired_one(factory, tree):
    act(factory, "retire_node", node_id=tree["flips"], target_id=tree["casual"])
    with pytest.raises(ConflictError, match="no live category under a retired one"):
        with transaction(factory) as s:
            s.add(TaxonomyNode(parent_id=tree["flips"], name="Slides", path="Footwear > Flip Flops > Slides", depth=3))


def test_an_event_is_undone_once_even_by_a_writer_that_skips_the_check(factory, tree):
    act(factory, "relabel_product", product_id=tree["p1"], node_id=tree["sports"])
    with factory() as s:
        event_id = s.scalar(text("SELECT max(id) FROM audit_events"))
    act(factory, "undo", event_id=event_id)
    with pytest.raises(CurationError, match="already undone by alice"):
        act(factory, "undo", "bob", event_id=event_id)
    with pytest.raises(ConflictError, match="^Refused, someone else"):  # the unique undo_of_id
        with transaction(factory) as s:
            curation.write_audit(s, actor="x", action="undo", summary="again").undo_of_id = event_id


def test_a_relabel_and_a_proposal_rename_bump_the_versions_of_what_they_change(factory, tree):
    with transaction(factory) as s:
        proposal = Proposal(parent_node_id=tree["Footwear > Shoes"], name="Loafers", members=[], scores={})
        s.add(proposal)
    act(factory, "relabel_product", product_id=tree["p1"], node_id=tree["sports"])
    act(factory, "relabel_product", product_id=tree["p1"], node_id=tree["flips"])
    with transaction(factory) as s:
        proposals.rename_proposal(s, proposal_id=proposal.id, name="Moccasins", actor="t")
    with factory() as s:
        human = s.scalar(select(Label).where(Label.product_id == tree["p1"], Label.source == "human"))
        assert (human.node_id, human.version) == (tree["flips"], 2)  # written once, changed once
        assert s.get(Proposal, proposal.id).version == 2


def test_a_sqlite_write_lock_held_too_long_is_one_line_not_a_traceback(tmp_path, sqlite_template):
    import shutil

    path = tmp_path / "locked.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    event.listen(engine, "connect", lambda conn, _r: conn.execute("PRAGMA busy_timeout=100"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # someone else's write transaction, open
    try:
        with pytest.raises(ConflictError, match="^The database is busy: someone else is changing this: reload and try again"):
            with transaction(sessionmaker(engine)) as s:
                s.execute(text("SELECT 1"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # advisory locks and lock_timeout are PostgreSQL's
def test_a_postgresql_lock_wait_past_the_timeout_is_one_line(factory, tree, db_url, monkeypatch):
    monkeypatch.setattr(session, "LOCK_TIMEOUT_S", 1)
    with get_engine(db_url).connect() as other:  # another curator's structural change, not yet committed
        other.execute(text("SELECT pg_advisory_xact_lock(hashtext('curator:taxonomy'))"))
        with pytest.raises(ConflictError, match="^The database is busy"):
            act(factory, "rename_node", node_id=tree["casual"], new_name="Loafers")
        other.rollback()
    act(factory, "rename_node", node_id=tree["casual"], new_name="Loafers")  # and once it is done, it goes through


def test_activation_archives_before_it_activates_whatever_the_ids(factory):
    with transaction(factory) as s:
        low, high = ModelVersion(name="low"), ModelVersion(name="high", status="active")
        s.add_all([low, high])
    with transaction(factory) as s:
        predictions.activate_model_version(s, version_id=low.id, actor="t")
    with factory() as s:
        assert {m.name: m.status for m in s.scalars(select(ModelVersion))} == {"low": "active", "high": "archived"}
