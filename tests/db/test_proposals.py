"""Proposal actions (accept / rename / merge / reject / move out) and their undo, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from db import actions, curation, repo
from db import proposals as props
from db.models import AuditEvent, Label, Proposal
from db.repo import CurationError
from db.session import transaction
from tests.db_rows import labelled_products


@pytest.fixture
def shoes(factory):
    """Six products under Footwear > Shoes and two open proposals splitting them."""
    with transaction(factory) as s:
        shoes, ids = labelled_products(s, 6)
        props.replace_open_proposals(
            s,
            parent_node_id=shoes.id,
            run_key="r1",
            clusters=[
                {"name": "running", "members": ids[:3], "suggested_names": ["running", "Sports Shoes"]},
                {"name": "stiletto", "members": ids[3:], "suggested_names": ["stiletto"]},
            ],
        )
        pids = [p.id for p in props.list_proposals(s, parent_node_id=shoes.id)]
    return {"shoes": shoes.id, "products": ids, "proposals": pids}


def run(factory, fn, **kw):
    with transaction(factory) as s:
        out = fn(s, actor="tester", **kw)
        return getattr(out, "id", out)


def undo_last(factory):
    with factory() as s:
        last = s.scalar(select(func.max(AuditEvent.id)))
    run(factory, actions.undo, event_id=last)


def labels(factory, ids):
    with factory() as s:
        return [repo.product_label(s, i)[0].path for i in ids]


def test_accept_creates_the_child_and_relabels_members_then_undoes(factory, shoes):
    node_id = run(factory, props.accept_proposal, proposal_id=shoes["proposals"][0], name="Running Shoes")
    assert labels(factory, shoes["products"]) == ["Footwear > Shoes > Running Shoes"] * 3 + ["Footwear > Shoes"] * 3
    with factory() as s:
        proposal = s.get(Proposal, shoes["proposals"][0])
        assert (proposal.status, proposal.created_node_id) == ("renamed", node_id)
        assert s.scalar(select(func.count()).select_from(Label).where(Label.source == "human")) == 3
    undo_last(factory)
    assert labels(factory, shoes["products"]) == ["Footwear > Shoes"] * 6
    with factory() as s:
        assert s.get(Proposal, shoes["proposals"][0]).status == "open"
        assert repo.node_by_path(s, "Footwear > Shoes > Running Shoes") is None


def test_accept_under_the_suggested_name_is_accepted(factory, shoes):
    run(factory, props.accept_proposal, proposal_id=shoes["proposals"][1])
    with factory() as s:
        assert s.get(Proposal, shoes["proposals"][1]).status == "accepted"
    with pytest.raises(CurationError, match="already accepted"):
        run(factory, props.reject_proposal, proposal_id=shoes["proposals"][1])


def test_accept_refuses_an_existing_name(factory, shoes):
    run(factory, curation.add_node, parent_id=shoes["shoes"], name="Heels")
    with pytest.raises(CurationError, match="already exists"):
        run(factory, props.accept_proposal, proposal_id=shoes["proposals"][1], name="Heels")
    assert labels(factory, shoes["products"][3:]) == ["Footwear > Shoes"] * 3


def test_rename_reject_merge_move_out_and_their_undo(factory, shoes):
    a, b = shoes["proposals"]
    run(factory, props.rename_proposal, proposal_id=a, name="Trainers")
    run(factory, props.merge_proposals, source_id=b, target_id=a)
    with factory() as s:
        assert sorted(s.get(Proposal, a).members) == sorted(shoes["products"]) and s.get(Proposal, b).status == "merged"
    undo_last(factory)
    run(factory, props.move_out, proposal_id=a, product_ids=shoes["products"][:1])
    with factory() as s:
        assert s.get(Proposal, a).members == shoes["products"][1:3]
    undo_last(factory)
    run(factory, props.reject_proposal, proposal_id=b)
    undo_last(factory)
    with factory() as s:
        assert s.get(Proposal, b).status == "open" and s.get(Proposal, a).members == shoes["products"][:3]
        rename_event = s.scalar(select(AuditEvent.id).where(AuditEvent.action == "rename_proposal"))
    run(factory, actions.undo, event_id=rename_event)
    with factory() as s:
        assert s.get(Proposal, a).name == "running"


def test_merge_needs_two_open_proposals_of_one_parent(factory, shoes):
    a, _ = shoes["proposals"]
    with pytest.raises(CurationError, match="two different"):
        run(factory, props.merge_proposals, source_id=a, target_id=a)
    with pytest.raises(CurationError, match="Unknown proposal"):
        run(factory, props.reject_proposal, proposal_id=9999)


def test_a_new_run_replaces_only_open_proposals(factory, shoes):
    run(factory, props.reject_proposal, proposal_id=shoes["proposals"][1])
    with transaction(factory) as s:
        props.replace_open_proposals(
            s, parent_node_id=shoes["shoes"], run_key="r2", clusters=[{"name": "new", "members": shoes["products"]}]
        )
    with factory() as s:
        kept = [(p.name, p.status) for p in props.list_proposals(s, parent_node_id=shoes["shoes"])]
    assert sorted(kept) == [("new", "open"), ("stiletto", "rejected")]
