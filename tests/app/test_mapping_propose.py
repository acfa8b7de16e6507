"""The Mapping page's way from "no master equivalent" to a new master category: Propose (under the parent picked,
defaulting to where the best candidate sits), the proposal decided through the proposal flow, then "Map onto the new
category". Checked in the database; the data is tests/app/mapping_data.py (its Lamp has no master equivalent and a
leaf, Apparel > Topwear > Shirts, as runner-up)."""

from __future__ import annotations

from sqlalchemy import select

from db import proposals as props
from db.models import Product, Proposal, TaxonomyNode
from db.session import get_sessionmaker, transaction
from tests.app import test_mapping
from tests.app.test_mapping import decision, mapping_labels, open_category, texts

world = test_mapping.world  # the fixture: `shop` seeds the master taxonomy, `hm` is mapped onto it
LAMP = "Furniture > Lamp"


def node_id(url: str, path: str) -> int:
    with get_sessionmaker(url)() as s:
        return s.scalar(select(TaxonomyNode.id).where(TaxonomyNode.path == path))


def test_a_category_with_no_equivalent_is_proposed_then_mapped_onto_the_category_its_proposal_created(world):
    cid = world.cats[LAMP]
    at = open_category(world, LAMP)
    assert not [b for b in at.button if b.key == "map_propose"]  # only once it is marked "no master equivalent"
    at.button(key="map_none").click().run()
    parent = at.selectbox(key=f"map_new_parent_{cid}")
    assert parent.value == node_id(world.url, "Apparel > Topwear")  # the runner-up leaf's parent
    parent.set_value(node_id(world.url, "Apparel")).run()
    at.text_input(key=f"map_new_name_{cid}").set_value("Home Decor").run()
    at.button(key="map_propose").click().run()
    assert not at.exception, at.exception
    with get_sessionmaker(world.url)() as s:
        proposal = s.scalar(select(Proposal))
        lamp_products = list(s.scalars(select(Product.id).where(Product.external_id == "H5")))
        assert (proposal.status, proposal.name, proposal.members) == ("open", "Home Decor", lamp_products)
        assert proposal.parent_node_id == node_id(world.url, "Apparel")
    assert any("Proposed as Apparel > Home Decor" in t for t in texts(at))
    with transaction(get_sessionmaker(world.url)) as s:  # decided where proposals are decided (the Clusters page)
        created = props.accept_proposal(s, proposal_id=proposal.id, actor="ana")
    at.run()
    at.button(key="map_onto_created").click().run()
    assert decision(world.url, cid) == ("confirmed", "Apparel > Home Decor") and created.path == "Apparel > Home Decor"
    assert mapping_labels(world.url) == {"H5": "Apparel > Home Decor"}
