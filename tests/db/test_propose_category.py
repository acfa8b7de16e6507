"""A platform category with no master equivalent becomes a new master category through the proposal flow:
`propose_category` (one audited, undoable action) opens a proposal under the parent the person chose, with all the
category's products; accepting it (the existing `accept_proposal`) creates the node and labels them there; a later
discovery run under that parent keeps it; and the wrong requests are refused with what to do."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from db import actions, mappings
from db import proposals as props
from db.models import AuditEvent, Proposal, TaxonomyNode
from db.repo import CurationError
from db.session import transaction
from db.users import operator
from tests.db import test_mappings
from tests.db.test_mappings import labels_of

two_platforms = test_mappings.two_platforms  # the fixture: `shop` seeds the master taxonomy, `hm` maps onto it
ANA = operator("ana")


def _no_equivalent(factory, category_id):
    with transaction(factory) as s:
        actions.perform(s, "reject_mapping", user=ANA, category_id=category_id, no_equivalent=True)


def test_a_category_without_equivalent_is_proposed_accepted_as_a_master_node_and_its_products_labelled(factory, two_platforms):
    cats, nodes, pids = two_platforms["cats"], two_platforms["nodes"], two_platforms["pids"]
    lamp = cats["Furniture > Lamp"]
    with pytest.raises(CurationError, match="mark it 'no master equivalent' before"), transaction(factory) as s:
        actions.perform(s, "propose_category", user=ANA, category_id=lamp, parent_node_id=nodes["Apparel"])
    _no_equivalent(factory, lamp)
    with transaction(factory) as s:
        proposal = actions.perform(s, "propose_category", user=ANA, category_id=lamp, parent_node_id=nodes["Apparel"])
        proposal_id = proposal.id
    with factory() as s:
        proposal = s.get(Proposal, proposal_id)
        assert (proposal.status, proposal.name, proposal.parent_node_id) == ("open", "Lamp", nodes["Apparel"])
        assert proposal.members == [pids["H4"]]  # every product of the category, and only those
        event = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert event.action == "propose_category" and event.actor == "ana" and "'Apparel > Lamp'" in event.summary
    with pytest.raises(CurationError, match="already proposed"), transaction(factory) as s:
        actions.perform(s, "propose_category", user=ANA, category_id=lamp, parent_node_id=nodes["Apparel"])
    # a discovery run under the same parent replaces its own open proposals, not this one
    with transaction(factory) as s:
        props.replace_open_proposals(s, parent_node_id=nodes["Apparel"], run_key="run-1", clusters=[])
    with factory() as s:
        assert s.get(Proposal, proposal_id).status == "open"
    with transaction(factory) as s:
        node = actions.perform(s, "accept_proposal", user=ANA, proposal_id=proposal_id, name="Lamps")
        assert node.path == "Apparel > Lamps"
    assert labels_of(factory, source="human") == {"H4": "Apparel > Lamps"}
    with factory() as s:
        assert mappings.category_proposal(s, lamp).created_node_id == node.id


def test_undo_withdraws_an_open_proposal_but_not_an_accepted_one(factory, two_platforms):
    cats, nodes = two_platforms["cats"], two_platforms["nodes"]
    lamp = cats["Furniture > Lamp"]
    _no_equivalent(factory, lamp)
    with transaction(factory) as s:
        proposal = actions.perform(s, "propose_category", user=ANA, category_id=lamp, parent_node_id=nodes["Footwear"])
        event_id = s.scalar(select(func.max(AuditEvent.id)))
    with transaction(factory) as s:
        actions.perform(s, "undo", user=ANA, event_id=event_id)
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Proposal)) == 0
    with transaction(factory) as s:  # proposed again, accepted: the proposal can no longer be withdrawn
        proposal = actions.perform(s, "propose_category", user=ANA, category_id=lamp, parent_node_id=nodes["Footwear"])
        event_id = s.scalar(select(func.max(AuditEvent.id)))
        actions.perform(s, "accept_proposal", user=ANA, proposal_id=proposal.id)
    with pytest.raises(CurationError, match="is accepted; undo that first"), transaction(factory) as s:
        actions.perform(s, "undo", user=ANA, event_id=event_id)
    with factory() as s:
        assert s.scalar(select(TaxonomyNode.path).where(TaxonomyNode.name == "Lamp")) == "Footwear > Lamp"


def test_a_proposal_that_would_repeat_an_existing_master_category_is_refused(factory, two_platforms):
    cats, nodes = two_platforms["cats"], two_platforms["nodes"]
    tee = cats["Garment Upper body > T-shirt"]
    _no_equivalent(factory, tee)
    with (
        pytest.raises(CurationError, match="'Apparel > Topwear > Tshirts' already exists: map onto it"),
        transaction(factory) as s,
    ):
        mappings.propose_category(s, category_id=tee, parent_node_id=nodes["Apparel > Topwear"], name="Tshirts", actor="ana")
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Proposal)) == 0
