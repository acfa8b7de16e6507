"""The one registry of curation actions: what people can do, how each is undone, what the audit log calls it.

An `Action`'s `name` is both the name the pages perform it by (`app.widgets.perform(name, ...)`, which calls
`perform` here) and the audit action its function writes, so the pages, the audit log and `undo` cannot
disagree. Adding an undoable action is one entry in `ACTIONS` plus its two functions: the action (session
keyword-only, never commits, writes one audit event named after the entry) and the handler that reverses
that event. tests/db/test_actions.py checks every entry against what its function writes and undoes.

Roles are enforced here, on the server side, whatever a page shows: `perform` runs an action only for a user who
holds its `role` now (viewer < curator < admin, re-read from the users table for a signed-in user; the command
line's local operator acts as an admin), refusing before anything is written, and the audit event names that
user. Viewers perform nothing; curators decide on proposals, mappings, labels and review items, and undo;
admins also change the taxonomy's structure, manage users and activate models. Undoing an event needs the role
of the action that wrote it, too. Background jobs are checked the same way (`JOB_ROLES`, `authorize_job`).
tests/db/test_roles.py performs every registered action as every role.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from db import curation, review, standards, users
from db import mappings as maps
from db import predictions as preds
from db import proposals as props
from db.models import USER_ROLES, AuditEvent
from db.repo import MODELS, TAXONOMY, CurationError, bump_taxonomy_version, lock, locked, write_audit

ROLES = USER_ROLES  # ranked: viewer < curator < admin; each role may do everything the roles before it may
ACTING_ROLES = ROLES[1:]  # a viewer performs nothing
# who may start each kind of background job (core.jobs.start checks it through `authorize_job`)
JOB_ROLES = {
    "retrain": "admin",
    "import": "admin",
    "review": "curator",
    "mapping": "curator",
    "standard": "curator",
    "fill": "admin",  # discovery, the catalogue map and label scores behind a starting app (`make serve`)
}


@dataclass(frozen=True)
class Action:
    """One audited action.

    Attributes:
        name: what `perform` is called with, and the audit action the function writes.
        label: what a person reads for it in the audit history.
        function: (session, *, actor, **kwargs); None for an event a core step writes itself (db cannot import core).
        undo: (session, event) reversing one audit event of this action; None when it cannot be undone ...
        not_undoable: ... and then why (shown to whoever asks to undo it).
        structural: it changes the taxonomy, so it and its undo bump the taxonomy version.
        relabels: it can change some product's category path (or the products themselves): caches of a
            category's products (the Clusters page's search index) are keyed by the last such event.
        role: the least role that may perform it ("curator" or "admin"; `perform` refuses anyone below).
    """

    name: str
    label: str
    function: Callable[..., Any] | None
    undo: Callable[[Session, AuditEvent], None] | None = None
    not_undoable: str = ""
    structural: bool = False
    relabels: bool = False
    role: str = "curator"

    def __post_init__(self) -> None:
        if (self.undo is None) != bool(self.not_undoable):
            raise ValueError(f"Action {self.name!r}: give an undo handler, or the reason it cannot be undone (not both).")
        if self.role not in ACTING_ROLES:
            raise ValueError(f"Action {self.name!r}: unknown role {self.role!r}; use one of {ACTING_ROLES}.")


def undo(session: Session, *, event_id: int, actor: str) -> AuditEvent:
    """Reverse the audited action `event_id` through its registered handler; writes an 'undo' audit event and returns it.

    Takes the locks the undone action takes (db/repo.py `lock`), then reads the event fresh and locked, so of two
    people undoing one event the second is told it was undone (the database also allows one undo per event)."""
    event = session.get(AuditEvent, event_id)
    if event is None:
        raise CurationError(f"Unknown audit event #{event_id}.")
    action = ACTIONS.get(event.action)
    if action is None or action.undo is None:
        why = action.not_undoable if action else "no action of that name is registered"
        raise CurationError(f"#{event.id} is a {event.action!r} event, which cannot be undone: {why}.")
    if event.action == "activate_model":
        lock(session, MODELS)
    else:
        lock(session, TAXONOMY, shared=not action.structural)
    event = locked(session, AuditEvent, event_id)
    if event.undone_by_id is not None:
        by = session.get(AuditEvent, event.undone_by_id)
        who = f" by {by.actor}" if by is not None else ""
        raise CurationError(f"#{event.id} ({event.summary}) was already undone{who} (#{event.undone_by_id}).")
    action.undo(session, event)
    session.flush()
    undo_event = write_audit(
        session, actor=actor, action="undo", summary=f"Undid #{event.id}: {event.summary}", before=event.after, after=event.before
    )
    undo_event.undo_of_id = event.id
    event.undone_by_id = undo_event.id
    if action.structural:
        bump_taxonomy_version(session, event=undo_event)
    session.flush()
    return undo_event


_NOT_AGAIN = "an undo is reversed by doing the action again"
_REINGEST = "ingest the earlier catalogue file again instead"
_REIMPORT = "import the earlier taxonomy file again instead"
_RESUGGEST = "suggestions change no label; confirm or reject them instead"
_USERS = "a change to a user is reversed by another change: python -m core users"

ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (
        Action("add_node", "Category added", curation.add_node, curation.undo_add_node, structural=True, role="admin"),
        Action(
            "rename_node",
            "Category renamed",
            curation.rename_node,
            curation.undo_rename_node,
            structural=True,
            relabels=True,
            role="admin",
        ),
        Action(
            "move_node",
            "Category moved",
            curation.move_node,
            curation.undo_move_node,
            structural=True,
            relabels=True,
            role="admin",
        ),
        Action(
            "merge_node",
            "Categories merged",
            curation.merge_node,
            curation.undo_merge_node,
            structural=True,
            relabels=True,
            role="admin",
        ),
        Action(
            "retire_node",
            "Category retired",
            curation.retire_node,
            curation.undo_retire_node,
            structural=True,
            relabels=True,
            role="admin",
        ),
        Action("relabel_product", "Product relabelled", curation.relabel_product, curation.undo_relabel_product, relabels=True),
        Action(
            "accept_proposal",
            "Proposal accepted",
            props.accept_proposal,
            props.undo_accept_proposal,
            structural=True,
            relabels=True,
        ),
        Action("rename_proposal", "Proposal renamed", props.rename_proposal, props.undo_rename_proposal),
        Action("reject_proposal", "Proposal rejected", props.reject_proposal, props.undo_reject_proposal),
        Action("merge_proposals", "Proposals merged", props.merge_proposals, props.undo_merge_proposals),
        Action("move_out", "Products moved out of a proposal", props.move_out, props.undo_move_out),
        Action("choose_level", "Proposals of another level shown", props.choose_level, props.undo_choose_level),
        Action("review_decision", "Review decision", review.decide, review.undo_review_decision, relabels=True),
        Action("confirm_mapping", "Category mapping confirmed", maps.confirm_mapping, maps.undo_mapping_decision, relabels=True),
        Action("reject_mapping", "Category mapping rejected", maps.reject_mapping, maps.undo_mapping_decision, relabels=True),
        Action(
            "bulk_confirm_mappings", "Category mappings confirmed", maps.bulk_confirm, maps.undo_mapping_decision, relabels=True
        ),
        Action("suggest_mappings", "Category mappings suggested", maps.store_suggestions, not_undoable=_RESUGGEST),
        Action("propose_category", "New master category proposed", maps.propose_category, maps.undo_propose_category),
        Action(
            "decide_standard", "Standard category mapping decided", standards.decide_standard, standards.undo_standard_decision
        ),
        Action(
            "suggest_standard", "Standard categories suggested", standards.store_standard_suggestions, not_undoable=_RESUGGEST
        ),
        Action("import_standard", "Standard taxonomy imported", None, not_undoable=_REIMPORT, role="admin"),
        Action("activate_model", "Model activated", preds.activate_model_version, preds.undo_activate_model, role="admin"),
        Action("add_user", "User added", users.add_user, not_undoable=_USERS, role="admin"),
        Action("disable_user", "User disabled", users.disable_user, not_undoable=_USERS, role="admin"),
        Action("enable_user", "User enabled", users.enable_user, not_undoable=_USERS, role="admin"),
        Action("set_password", "Password set", users.set_password, not_undoable=_USERS, role="admin"),
        Action("change_role", "Role changed", users.change_role, not_undoable=_USERS, role="admin"),
        Action("undo", "Undo", undo, not_undoable=_NOT_AGAIN, relabels=True),  # as the undone action may
        Action("ingest", "Catalogue ingested", None, not_undoable=_REINGEST, relabels=True, role="admin"),  # core.steps.ingest
    )
}


def get(name: str) -> Action:
    """The registered action `name`."""
    action = ACTIONS.get(name)
    if action is None:
        raise CurationError(f"Unknown action {name!r}.")
    return action


def _article(role: str) -> str:
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"


def holds(have: str | None, needed: str) -> bool:
    """Whether the role `have` is `needed` or ranks above it (viewer < curator < admin); None holds nothing."""
    return have is not None and ROLES.index(have) >= ROLES.index(needed)


def authorize(session: Session, user: users.Identity, role: str, what: str) -> None:
    """Refuse (CurationError, before anything is written) unless `user` now holds `role` or a higher one."""
    have = users.current_role(session, user)
    if not holds(have, role):
        raise CurationError(f"{what} needs the {role} role; you are {_article(have)}.")


def authorize_job(session: Session, user: users.Identity, kind: str) -> None:
    """Refuse starting a background job of `kind` unless `user` holds its role (`JOB_ROLES`)."""
    authorize(session, user, JOB_ROLES.get(kind, "admin"), f"Starting a {kind} job")


def _needed_role(session: Session, action: Action, kwargs: dict[str, Any]) -> str:
    """The role `action` needs here: undoing an event needs the role of the action that wrote it, too."""
    if action.name != "undo":
        return action.role
    event = session.get(AuditEvent, kwargs.get("event_id")) if isinstance(kwargs.get("event_id"), int) else None
    undone = ACTIONS.get(event.action) if event is not None else None
    return max(action.role, undone.role if undone else action.role, key=ROLES.index)


def perform(session: Session, name: str, /, *, user: users.Identity, **kwargs: Any) -> Any:
    """Do the registered action `name` as `user` in `session` (the caller owns the transaction); returns what its
    function does. Refused, before anything is written, unless `user` holds the action's role; the audit event
    names `user`.

    `session` and `name` are positional-only, so an action's own `name=` argument passes through in `kwargs`.
    """
    action = get(name)
    if action.function is None:
        raise CurationError(f"{action.label} is not done from here: a core step records it.")
    authorize(session, user, _needed_role(session, action, kwargs), f"'{action.label}'")
    return action.function(session, actor=user.name, **kwargs)


def label(name: str) -> str:
    """A person's name for the audit action `name` (the name itself when unregistered, e.g. from an older version)."""
    action = ACTIONS.get(name)
    return action.label if action else name


def undoable(name: str) -> bool:
    """Whether audit events of action `name` can be undone."""
    action = ACTIONS.get(name)
    return action is not None and action.undo is not None


def relabelling() -> tuple[str, ...]:
    """The audit actions that can change which category a product is in (see `Action.relabels`)."""
    return tuple(name for name, action in ACTIONS.items() if action.relabels)
