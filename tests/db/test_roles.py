"""Roles, enforced in the action registry (db.actions.perform), not only by hidden buttons: every registered action
performed as a viewer, a curator and an admin (parametrised over ACTIONS, so a new action is covered at once).

Which role each action needs is written here, by hand, from the issue: viewers perform nothing; curators decide on
proposals, mappings, labels and review items and undo; admins also change the taxonomy's structure, manage users,
activate models and import. A refused action writes nothing; a permitted one names the signed-in user in the audit.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core import jobs
from db import actions, curation, users
from db.actions import ACTIONS
from db.models import AuditEvent, Job, User
from db.repo import CurationError
from db.session import transaction
from tests.db.test_actions import SCENARIOS, state, world  # noqa: F401 - world is a fixture

ADMIN = {
    "add_node", "rename_node", "move_node", "merge_node", "retire_node",  # the taxonomy's structure
    "add_user", "disable_user", "enable_user", "set_password", "change_role",  # users
    "activate_model", "import_standard", "ingest",  # models and imports
}  # fmt: skip
CURATOR = {
    "relabel_product", "accept_proposal", "rename_proposal", "reject_proposal", "merge_proposals", "move_out", "choose_level",
    "review_decision", "confirm_mapping", "reject_mapping", "bulk_confirm_mappings", "suggest_mappings",
    "decide_standard", "suggest_standard", "propose_category", "undo",
}  # fmt: skip
RECORDED_BY_A_STEP = {"import_standard", "ingest"}  # no function: nobody performs them through the registry
RANK = {"viewer": 0, "curator": 1, "admin": 2}
PEOPLE = {"viewer": "vic", "curator": "cora", "admin": "ada"}


@pytest.fixture
def people(factory, world):  # noqa: F811 - the imported fixture
    with transaction(factory) as s:
        for role, name in PEOPLE.items():
            users.add_user(s, actor="setup", name=name, password=f"{name}'s passphrase", role=role)
    return world


def everything(factory) -> tuple:
    with factory() as s:
        audit = s.execute(select(AuditEvent.id, AuditEvent.action, AuditEvent.undone_by_id).order_by(AuditEvent.id)).all()
        people = s.execute(select(User.name, User.role, User.disabled, User.password_hash).order_by(User.id)).all()
    return state(factory), audit, people


def test_every_registered_action_has_its_role_written_here():
    assert sorted(ACTIONS) == sorted(ADMIN | CURATOR), "say here which role a new action needs"
    assert not ADMIN & CURATOR


@pytest.mark.parametrize("role", list(RANK))
@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_each_action_is_refused_below_its_role_and_a_refusal_writes_nothing(factory, people, name, role):
    needed = "admin" if name in ADMIN else "curator"
    who = users.Identity(PEOPLE[role], role)  # as signed in: the role is re-read from the database
    with transaction(factory) as s:
        kwargs = SCENARIOS[name](s, people) if name not in RECORDED_BY_A_STEP else {}
    before = everything(factory)
    if name in RECORDED_BY_A_STEP or RANK[role] < RANK[needed]:
        message = "a core step records it" if name in RECORDED_BY_A_STEP else f"needs the {needed} role; you are an? {role}"
        with pytest.raises(CurationError, match=message):
            with transaction(factory) as s:
                actions.perform(s, name, user=who, **kwargs)
        assert everything(factory) == before
        return
    with transaction(factory) as s:
        actions.perform(s, name, user=who, **kwargs)
    with factory() as s:
        last = s.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
    assert (last.action, last.actor) == (name, PEOPLE[role])


def test_a_curator_cannot_undo_an_admins_structural_change(factory, people):
    with transaction(factory) as s:
        event = curation.rename_node(s, node_id=people["casual"], new_name="Everyday", actor="ada")
        event_id = s.scalar(select(func.max(AuditEvent.id)))
    assert event is not None
    with pytest.raises(CurationError, match="needs the admin role; you are a curator"):
        with transaction(factory) as s:
            actions.perform(s, "undo", user=users.Identity("cora", "curator"), event_id=event_id)
    with transaction(factory) as s:
        actions.perform(s, "undo", user=users.Identity("ada", "admin"), event_id=event_id)


def test_the_role_is_read_from_the_database_at_each_action(factory, people):
    """A session signed in as an admin loses the rights once demoted or disabled (the role it holds is not trusted)."""
    signed_in = users.Identity("ada", "admin")
    kwargs = {"parent_id": people["Footwear"], "name": "Boots"}
    with transaction(factory) as s:
        users.add_user(s, actor="setup", name="root", password="root's passphrase", role="admin")  # not the last admin
        users.change_role(s, actor="setup", name="ada", role="curator")
    with pytest.raises(CurationError, match="needs the admin role; you are a curator"):
        with transaction(factory) as s:
            actions.perform(s, "add_node", user=signed_in, **kwargs)
    with transaction(factory) as s:
        users.change_role(s, actor="setup", name="ada", role="admin")
        users.disable_user(s, actor="setup", name="ada")
    with pytest.raises(CurationError, match="disabled"):
        with transaction(factory) as s:
            actions.perform(s, "add_node", user=signed_in, **kwargs)
    with pytest.raises(CurationError, match="disabled"):  # a name that is no user at all is refused the same way
        with transaction(factory) as s:
            actions.perform(s, "add_node", user=users.Identity("mallory", "admin"), **kwargs)


@pytest.mark.parametrize(("kind", "needed"), [("retrain", "admin"), ("import", "admin"), ("review", "curator")])
def test_background_jobs_are_refused_below_their_role(factory, db_url, people, kind, needed):
    for role, name in PEOPLE.items():
        who = users.Identity(name, role)
        if RANK[role] < RANK[needed]:
            with pytest.raises(CurationError, match=f"Starting a {kind} job needs the {needed} role"):
                jobs.start(db_url, kind=kind, user=who, spawn=False)
        else:
            job_id = jobs.start(db_url, kind=kind, user=who, spawn=False)
            with transaction(factory) as s:
                s.get(Job, job_id).status = "done"  # out of the way of the next start
    with factory() as s:
        started_by = s.scalars(select(Job.params).order_by(Job.id)).all()
    assert [p["actor"] for p in started_by] == [n for r, n in PEOPLE.items() if RANK[r] >= RANK[needed]]
