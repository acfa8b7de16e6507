"""Accepting a proposal with its sub-groups as child categories, and showing another level of the discovery tree as
the node's open proposals (`choose_level`): one audited transaction each, undone whole, refused below the curator
role and on a stale version, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from db import actions, repo, users
from db import proposals as props
from db.models import AuditEvent, Label, Proposal, TaxonomyNode
from db.repo import ConflictError, CurationError
from db.session import transaction
from db.users import operator
from tests.db_rows import labelled_products

SUBGROUPS = [("Pumps", [0, 1]), ("Stilettos", [2, 3])]  # of the first proposal's six members (positions); 4, 5 in none


@pytest.fixture
def shoes(factory):
    """Eight products under Footwear > Shoes; proposal "heels" (six of them, two sub-groups) and "flats" (two)."""
    with transaction(factory) as s:
        shoes, ids = labelled_products(s, 8)
        subgroups = [{"node": n, "name": name, "members": [ids[i] for i in at]} for n, (name, at) in enumerate(SUBGROUPS)]
        clusters = [
            {"name": "Heels", "members": ids[:6], "scores": {"level": {"k": 2}, "subgroups": subgroups}},
            {"name": "Flats", "members": ids[6:], "scores": {"level": {"k": 2}, "subgroups": []}},
        ]
        props.replace_open_proposals(s, parent_node_id=shoes.id, run_key="r1", clusters=clusters)
        pids = [p.id for p in props.list_proposals(s, parent_node_id=shoes.id)]
        for role, name in (("viewer", "vic"), ("curator", "cora")):
            users.add_user(s, actor="setup", name=name, password=f"{name}'s passphrase", role=role)
    return {"shoes": shoes.id, "products": ids, "proposals": pids}


def do(factory, action, /, *, who: users.Identity | None = None, **kw):
    """Perform `action` as `who` (default cora, a curator) in one transaction."""
    with transaction(factory) as s:
        out = actions.perform(s, action, user=who or users.Identity("cora", "curator"), **kw)
        return getattr(out, "id", out)


def undo_last(factory):
    with factory() as s:
        last = s.scalar(select(func.max(AuditEvent.id)))
    with transaction(factory) as s:
        actions.perform(s, "undo", user=operator("cora"), event_id=last)


def paths(factory, ids):
    with factory() as s:
        return [repo.product_label(s, i)[0].path for i in ids]


def snapshot(factory):
    with factory() as s:
        return (
            s.execute(select(TaxonomyNode.id, TaxonomyNode.path, TaxonomyNode.status).order_by(TaxonomyNode.id)).all(),
            s.execute(select(Label.product_id, Label.source, Label.node_id).order_by(Label.id)).all(),
            [(p.id, p.name, p.status, p.members) for p in s.scalars(select(Proposal).order_by(Proposal.id))],
            s.scalar(select(func.count(AuditEvent.id))),
        )


def test_accept_with_sub_groups_makes_the_children_labels_members_there_and_undo_removes_it_all(factory, shoes):
    before = snapshot(factory)
    heels, ids = shoes["proposals"][0], shoes["products"]
    do(factory, "accept_proposal", proposal_id=heels, name="High Heels", subgroups=["Pumps", "Stilettos"], expected_version=1)
    base = "Footwear > Shoes > High Heels"
    assert paths(factory, ids) == [f"{base} > Pumps"] * 2 + [f"{base} > Stilettos"] * 2 + [base] * 2 + ["Footwear > Shoes"] * 2
    with factory() as s:
        node = repo.node_by_path(s, base)
        assert sorted(c.name for c in props.child_names(s, node_id=node.id)) == ["Pumps", "Stilettos"]
        event = s.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
        assert event.action == "accept_proposal" and "2 sub-categories" in event.summary
    undo_last(factory)
    after = snapshot(factory)
    assert after[:3] == before[:3]  # no node, label or proposal change is left
    assert after[3] == before[3] + 2  # the accept and its undo


def test_accept_without_sub_groups_makes_one_category(factory, shoes):
    do(factory, "accept_proposal", proposal_id=shoes["proposals"][0])
    assert paths(factory, shoes["products"][:6]) == ["Footwear > Shoes > Heels"] * 6
    with factory() as s:
        assert props.child_names(s, node_id=repo.node_by_path(s, "Footwear > Shoes > Heels").id) == []


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["Pumps", "pumps"], "Sub-groups 1 and 2 are both named 'pumps'"),
        (["Pumps", " "], "Sub-group 2: A category name cannot be empty"),
        (["Pumps"], "has 2 sub-groups, not 1: reload"),
    ],
)
def test_sub_group_names_that_clash_or_do_not_fit_are_refused_in_one_line_and_nothing_is_written(factory, shoes, names, message):
    before = snapshot(factory)
    with pytest.raises(CurationError, match=message) as refused:
        do(factory, "accept_proposal", proposal_id=shoes["proposals"][0], subgroups=names)
    assert "\n" not in str(refused.value)
    assert snapshot(factory) == before


def test_accept_refuses_a_name_an_existing_child_has_in_another_case(factory, shoes):
    do(factory, "add_node", who=operator("ada"), parent_id=shoes["shoes"], name="Heels Collection")
    with pytest.raises(CurationError, match="already has a category 'Heels Collection'"):
        do(factory, "accept_proposal", proposal_id=shoes["proposals"][0], name="heels collection", subgroups=["A", "B"])


def test_accept_with_sub_groups_is_refused_below_curator_and_on_a_stale_version_writing_nothing(factory, shoes):
    heels = shoes["proposals"][0]
    before = snapshot(factory)
    with pytest.raises(CurationError, match="needs the curator role"):
        do(factory, "accept_proposal", who=users.Identity("vic", "viewer"), proposal_id=heels, subgroups=["Pumps", "Stilettos"])
    assert snapshot(factory) == before
    do(factory, "rename_proposal", proposal_id=heels, name="Heel Shoes", expected_version=1)
    before = snapshot(factory)
    with pytest.raises(ConflictError, match="was renamed by cora"):
        do(factory, "accept_proposal", proposal_id=heels, subgroups=["Pumps", "Stilettos"], expected_version=1)
    assert snapshot(factory) == before


def test_undo_of_an_accept_with_sub_groups_is_refused_once_a_sub_category_holds_more(factory, shoes):
    do(factory, "accept_proposal", proposal_id=shoes["proposals"][0], subgroups=["Pumps", "Stilettos"])
    with factory() as s:
        pumps = repo.node_by_path(s, "Footwear > Shoes > Heels > Pumps").id
        accepted = s.scalar(select(func.max(AuditEvent.id)))
    do(factory, "relabel_product", product_id=shoes["products"][7], node_id=pumps)  # a product from outside the proposal
    with pytest.raises(CurationError, match="was changed since"):
        do(factory, "undo", event_id=accepted)


LEVEL = [{"name": "Heels", "members": [0, 1, 2, 3]}, {"name": "Wedges", "members": [4, 5]}, {"name": "Flats", "members": [6, 7]}]


def level_clusters(shoes) -> list[dict]:
    return [{"name": c["name"], "members": [shoes["products"][i] for i in c["members"]]} for c in LEVEL]


def open_names(factory, shoes) -> list[tuple[int, str, list[int]]]:
    with factory() as s:
        return [(p.id, p.name, p.members) for p in props.list_proposals(s, parent_node_id=shoes["shoes"], status="open")]


def test_choose_level_sets_the_open_proposals_aside_keeps_decided_ones_and_undo_brings_them_back_renamed(factory, shoes):
    heels, flats = shoes["proposals"]
    do(factory, "rename_proposal", proposal_id=heels, name="Heel Shoes")
    do(factory, "reject_proposal", proposal_id=flats)
    earlier = open_names(factory, shoes)
    with factory() as s:
        seen = {p.id: p.version for p in props.list_proposals(s, parent_node_id=shoes["shoes"], status="open")}
    do(
        factory,
        "choose_level",
        parent_node_id=shoes["shoes"],
        k=3,
        run_key="r1:k3",
        clusters=level_clusters(shoes),
        expected=seen,
    )
    now = open_names(factory, shoes)
    assert [n for _, n, _ in now] == ["Heels", "Wedges", "Flats"]
    with factory() as s:
        assert s.get(Proposal, heels).status == "superseded" and s.get(Proposal, flats).status == "rejected"
        assert props.edited_proposals(s, [heels]) == {heels: "rename_proposal"}
    undo_last(factory)
    assert open_names(factory, shoes) == earlier  # the renamed one, as it was
    with factory() as s:
        assert s.get(Proposal, flats).status == "rejected"
        assert s.scalar(select(func.count(Proposal.id))) == 2  # the level's proposals are gone


def test_choose_level_is_refused_on_a_stale_view_and_below_curator_writing_nothing(factory, shoes):
    heels, flats = shoes["proposals"]
    kw = {"parent_node_id": shoes["shoes"], "k": 3, "run_key": "r1:k3", "clusters": level_clusters(shoes)}
    before = snapshot(factory)
    with pytest.raises(CurationError, match="needs the curator role"):
        do(factory, "choose_level", who=users.Identity("vic", "viewer"), expected={heels: 1, flats: 1}, **kw)
    assert snapshot(factory) == before
    do(factory, "move_out", proposal_id=heels, product_ids=shoes["products"][:1])
    before = snapshot(factory)
    with pytest.raises(ConflictError, match="had products moved out by cora|was changed"):
        do(factory, "choose_level", expected={heels: 1, flats: 1}, **kw)
    assert snapshot(factory) == before
    do(factory, "reject_proposal", proposal_id=flats)
    before = snapshot(factory)
    with pytest.raises(ConflictError, match="changed a moment ago"):
        do(factory, "choose_level", expected={heels: 2, flats: 1}, **kw)  # flats is no longer open
    assert snapshot(factory) == before


def test_undo_of_choose_level_is_refused_once_a_level_proposal_was_curated_or_a_new_run_replaced_the_old(factory, shoes):
    kw = {"parent_node_id": shoes["shoes"], "k": 3, "run_key": "r1:k3", "clusters": level_clusters(shoes)}
    do(factory, "choose_level", **kw)
    with factory() as s:
        chosen = s.scalar(select(func.max(AuditEvent.id)))
    first = open_names(factory, shoes)[0][0]
    do(factory, "rename_proposal", proposal_id=first, name="Pointed Heels")
    with pytest.raises(CurationError, match="was decided or changed since"):
        do(factory, "undo", event_id=chosen)
    undo_last(factory)  # the rename
    with transaction(factory) as s:  # a new discovery run replaces open and set-aside proposals alike
        props.replace_open_proposals(s, parent_node_id=shoes["shoes"], run_key="r2", clusters=level_clusters(shoes))
    with pytest.raises(CurationError, match="decided or changed since|replaced"):
        do(factory, "undo", event_id=chosen)
    with factory() as s:
        assert {p.status for p in props.list_proposals(s, parent_node_id=shoes["shoes"])} == {"open"}


def test_curation_of_another_node_does_not_count_as_an_edit(factory, shoes):
    with transaction(factory) as s:
        node = repo.ensure_path(s, ("Footwear", "Sandals"))[0]
        props.replace_open_proposals(s, parent_node_id=node.id, run_key="x", clusters=[{"name": "x", "members": []}])
        pid = props.list_proposals(s, parent_node_id=node.id)[0].id
    do(factory, "rename_proposal", proposal_id=pid, name="Slides")
    with factory() as s:
        assert props.edited_proposals(s, shoes["proposals"]) == {}
        assert props.edited_proposals(s, [pid]) == {pid: "rename_proposal"}
