"""The registry of curation actions (db/actions.py) against what the actions really do, on both backends.

Every registered action is performed by name: it must write an audit event with its registered name, bump the
taxonomy version exactly when it is `structural`, change product paths exactly when it `relabels`, and (when
undoable) be undone by its handler back to the state before it. Every audit action name and every action name
the code uses must be registered.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db import actions, repo, review, standards, users
from db import mappings as maps
from db import predictions as preds
from db import proposals as props
from db.actions import ACTIONS, Action
from db.models import (
    AuditEvent,
    CategoryMapping,
    Label,
    ModelVersion,
    Product,
    Proposal,
    ReviewItem,
    StandardMapping,
    TaxonomyNode,
)
from db.repo import CurationError
from db.session import transaction
from db.users import operator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(factory, tree):
    """test_curation's six products and taxonomy, plus two open proposals under Shoes, one review item and one
    model version."""
    ids = dict(tree)
    with transaction(factory) as s:
        clusters = [
            {"name": "loafers", "members": [ids["p1"], ids["p2"]]},
            {"name": "runners", "members": [ids["p3"]]},
        ]
        props.replace_open_proposals(s, parent_node_id=ids["Footwear > Shoes"], run_key="r", clusters=clusters)
        ids["proposals"] = [p.id for p in props.list_proposals(s)]
        item = {
            "product_id": ids["p5"],
            "score": 0.9,
            "self_confidence": 0.1,
            "margin": -0.5,
            "flagged": True,
            "label_node_id": ids["tshirts"],
            "suggested_node_id": ids["tops"],
            "suggested_confidence": 0.8,
            "levels": [],
        }
        review.replace_open_items(s, run_key="r", rows=[item])
        ids["item"] = s.scalar(select(ReviewItem.id))
        ids["version"] = preds.register_model_version(s, name="v", metrics={}, params={}, artifact=None).id
        # a second (not master-seeding) platform: one category of two unlabelled products, suggested onto Tshirts
        other = repo.get_or_create_platform(s, name="other")
        category = maps.ensure_category(s, other.id, ("Tops", "Tee"), {})
        for ext in ("o1", "o2"):
            s.add(Product(platform_id=other.id, external_id=ext, title=ext, content_hash="x", platform_category_id=category.id))
        suggestion = {"category_id": category.id, "node_id": ids["tshirts"], "confidence": 0.9, "ambiguous": False}
        maps.store_suggestions(s, platform="other", suggestions=[{**suggestion, "candidates": []}], actor="prep")
        ids["other_category"] = category.id
        # a standard taxonomy of two categories, one suggested for Tshirts
        standards.import_standard(s, name="std", categories=[("1", ("Clothing",)), ("2", ("Clothing", "Shirts"))], actor="prep")
        shirts = {c.path: c.id for c in standards.categories_of(s, "std")}["Clothing > Shirts"]
        row = {"node_id": ids["tshirts"], "category_id": shirts, "confidence": 0.8, "ambiguous": False, "candidates": []}
        standards.store_standard_suggestions(s, standard="std", suggestions=[row], actor="prep")
        ids["std_shirts"] = shirts
    return ids


def _suggestion(category_id: int, node_id: int) -> dict:
    return {"category_id": category_id, "node_id": node_id, "confidence": 0.4, "ambiguous": True, "candidates": []}


def _confirmed_first(s, w):
    """The `reject_mapping` scenario: a confirmed mapping (its products labelled) to mark as having no equivalent."""
    actions.perform(s, "confirm_mapping", user=operator("prep"), category_id=w["other_category"])
    return {"category_id": w["other_category"], "no_equivalent": True}


def _no_equivalent_first(s, w):
    """The `propose_category` scenario: the other platform's category marked as having no master equivalent."""
    actions.perform(s, "reject_mapping", user=operator("prep"), category_id=w["other_category"], no_equivalent=True)
    return {"category_id": w["other_category"], "parent_node_id": w["Footwear"]}


def _relabel_first(s, w):
    """The `undo` scenario: a relabel to undo (performed in the preparation, so only its undo is measured)."""
    actions.perform(s, "relabel_product", user=operator("prep"), product_id=w["p1"], node_id=w["sports"])
    s.flush()
    return {"event_id": s.scalar(select(func.max(AuditEvent.id)))}


def _a_user(s, *, disabled: bool = False, **more) -> dict:
    """The user-management scenarios: a viewer zoe (disabled when asked) to act on; `more` are the action's own arguments."""
    users.add_user(s, actor="prep", name="zoe", password="zoe's passphrase", role="viewer")
    if disabled:
        users.disable_user(s, actor="prep", name="zoe")
    return {"name": "zoe", **more}


# one way to perform each registered action on `world`: (session, world) -> the action's keyword arguments
SCENARIOS = {
    "add_node": lambda s, w: {"parent_id": w["Footwear"], "name": "Boots"},
    "rename_node": lambda s, w: {"node_id": w["casual"], "new_name": "Everyday Shoes"},
    "move_node": lambda s, w: {"node_id": w["flips"], "new_parent_id": w["Footwear > Shoes"]},
    "merge_node": lambda s, w: {"source_id": w["tshirts"], "target_id": w["tops"]},
    "retire_node": lambda s, w: {"node_id": w["sports"], "target_id": w["casual"]},
    "relabel_product": lambda s, w: {"product_id": w["p1"], "node_id": w["sports"]},
    "accept_proposal": lambda s, w: {"proposal_id": w["proposals"][0], "name": "Loafers"},
    "rename_proposal": lambda s, w: {"proposal_id": w["proposals"][0], "name": "Moccasins"},
    "reject_proposal": lambda s, w: {"proposal_id": w["proposals"][0]},
    "merge_proposals": lambda s, w: {"source_id": w["proposals"][0], "target_id": w["proposals"][1]},
    "move_out": lambda s, w: {"proposal_id": w["proposals"][0], "product_ids": [w["p1"]]},
    "choose_level": lambda s, w: {
        "parent_node_id": w["Footwear > Shoes"],
        "k": 1,
        "run_key": "r:k1",
        "clusters": [{"name": "shoes", "members": [w["p1"], w["p2"], w["p3"]]}],
    },
    "review_decision": lambda s, w: {"item_id": w["item"], "decision": "accept"},
    "activate_model": lambda s, w: {"version_id": w["version"]},
    "confirm_mapping": lambda s, w: {"category_id": w["other_category"]},
    "reject_mapping": _confirmed_first,
    "bulk_confirm_mappings": lambda s, w: {"platform": "other", "min_confidence": 0.5},
    "decide_standard": lambda s, w: {"standard": "std", "node_id": w["tshirts"]},
    "suggest_standard": lambda s, w: {
        "standard": "std",
        "suggestions": [
            {"node_id": w["tops"], "category_id": w["std_shirts"], "confidence": 0.5, "ambiguous": True, "candidates": []}
        ],
    },
    "suggest_mappings": lambda s, w: {"platform": "other", "suggestions": [_suggestion(w["other_category"], w["tops"])]},
    "propose_category": _no_equivalent_first,
    "undo": _relabel_first,
    "add_user": lambda s, w: {"name": "zoe", "password": "zoe's passphrase", "role": "viewer"},
    "disable_user": lambda s, w: _a_user(s),
    "enable_user": lambda s, w: _a_user(s, disabled=True),
    "set_password": lambda s, w: _a_user(s, password="a new passphrase"),
    "change_role": lambda s, w: _a_user(s, role="curator"),
}
PERFORMED = [name for name, action in ACTIONS.items() if action.function is not None]


def state(factory) -> dict:
    """Everything an action may change (ids included), to compare before and after."""
    with factory() as s:
        return {
            "nodes": s.execute(
                select(TaxonomyNode.id, TaxonomyNode.parent_id, TaxonomyNode.name, TaxonomyNode.path, TaxonomyNode.status)
                .add_columns(TaxonomyNode.redirect_id, TaxonomyNode.depth)
                .order_by(TaxonomyNode.id)
            ).all(),
            "labels": s.execute(select(Label.product_id, Label.source, Label.node_id).order_by(Label.id)).all(),
            "proposals": [
                (p.id, p.name, p.status, sorted(p.members), p.created_node_id)
                for p in s.scalars(select(Proposal).order_by(Proposal.id))
            ],
            "review": s.execute(select(ReviewItem.id, ReviewItem.status, ReviewItem.decided_by).order_by(ReviewItem.id)).all(),
            # which version is active (undoing an activation archives the version rather than restoring "candidate")
            "active_model": s.scalars(select(ModelVersion.id).where(ModelVersion.status == "active")).all(),
            "mappings": s.execute(
                select(CategoryMapping.platform_category_id, CategoryMapping.master_node_id, CategoryMapping.status)
                .add_columns(CategoryMapping.confidence, CategoryMapping.origin, CategoryMapping.decided_by)
                .order_by(CategoryMapping.id)
            ).all(),
            "standard_mappings": s.execute(
                select(StandardMapping.master_node_id, StandardMapping.category_id, StandardMapping.status)
                .add_columns(StandardMapping.origin, StandardMapping.decided_by)
                .order_by(StandardMapping.id)
            ).all(),
        }


def product_paths(factory) -> dict:
    """{product id: (effective label path, title, content hash)}: what `Action.relabels` is about."""
    with factory() as s:
        eff = repo.effective_labels_subquery()
        rows = s.execute(
            select(Product.id, TaxonomyNode.path, Product.title, Product.content_hash)
            .outerjoin(eff, eff.c.product_id == Product.id)
            .outerjoin(TaxonomyNode, TaxonomyNode.id == eff.c.node_id)
        )
        return {r[0]: tuple(r[1:]) for r in rows}


def taxonomy_version(factory) -> int:
    with factory() as s:
        return repo.taxonomy_version(s)


def last_event(factory) -> AuditEvent:
    with factory() as s:
        return s.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))


def test_every_performed_action_has_a_scenario():
    assert sorted(SCENARIOS) == sorted(PERFORMED), "add a scenario for each new action to SCENARIOS"


@pytest.mark.parametrize("name", PERFORMED)
def test_each_action_writes_its_audit_name_and_is_undone_by_its_handler(factory, world, name):
    action = ACTIONS[name]
    with transaction(factory) as s:
        kwargs = SCENARIOS[name](s, world)
    before, paths, version = state(factory), product_paths(factory), taxonomy_version(factory)
    with transaction(factory) as s:
        actions.perform(s, name, user=operator("tester"), **kwargs)
    event = last_event(factory)
    assert (event.action, event.actor) == (name, "tester")
    assert taxonomy_version(factory) == version + action.structural
    assert (product_paths(factory) != paths) == action.relabels
    if action.undo is None:
        with pytest.raises(CurationError, match=f"cannot be undone: {action.not_undoable}"):
            with transaction(factory) as s:
                actions.undo(s, event_id=event.id, actor="tester")
        return
    assert actions.undoable(name)
    with transaction(factory) as s:
        undone = actions.undo(s, event_id=event.id, actor="undoer")
        undone_id = undone.id
    assert state(factory) == before and product_paths(factory) == paths
    assert taxonomy_version(factory) == version + 2 * action.structural
    with factory() as s:
        assert s.get(AuditEvent, event.id).undone_by_id == undone_id
        assert s.get(AuditEvent, undone_id).action == "undo" and s.get(AuditEvent, undone_id).undo_of_id == event.id


def test_perform_refuses_unknown_actions_and_those_a_core_step_records(factory):
    with transaction(factory) as s:
        with pytest.raises(CurationError, match="Unknown action 'review_decide'"):
            actions.perform(s, "review_decide", user=operator("t"), item_id=1, decision="accept")
        with pytest.raises(CurationError, match="a core step records it"):
            actions.perform(s, "ingest", user=operator("t"))


def test_an_action_says_how_it_is_undone_or_why_not():
    with pytest.raises(ValueError, match="undo handler, or the reason"):
        Action("x", "X", None)
    with pytest.raises(ValueError, match="unknown role"):
        Action("x", "X", None, not_undoable="because", role="owner")
    assert {a.role for a in ACTIONS.values()} <= set(actions.ROLES)
    assert actions.label("rename_node") == "Category renamed" and actions.label("retired_action") == "retired_action"
    assert not actions.undoable("undo") and not actions.undoable("ingest") and not actions.undoable("nonsense")


def _python_files(*folders: str):
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path, ast.parse(path.read_text(), filename=str(path))


def _callee(call: ast.Call) -> str:
    return call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")


def _strings(node: ast.AST | None) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List):
        return [s for element in node.elts for s in _strings(element)]
    return []


def names_in_code() -> tuple[dict[str, str], dict[str, str]]:
    """({audit action written: where}, {action name performed, requested or filtered on: where}) in the project's code."""
    written, used = {}, {}
    for path, tree in _python_files("db", "core", "app", "pages"):
        where = str(path.relative_to(ROOT))
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            callee = _callee(call)
            keywords = {k.arg: k.value for k in call.keywords}
            if callee != "add_argument":  # argparse's action="store_true" is no audit action
                written.update((name, where) for name in _strings(keywords.get("action")))
            if callee == "audit_history":
                used.update((name, where) for name in _strings(keywords.get("actions")))
            position = {"perform": 0, "request": 1}.get(callee)
            if position is not None and len(call.args) > position and where.startswith(("app", "pages")):
                used.update((name, where) for name in _strings(call.args[position]))
    return written, used


def test_every_audit_action_name_in_the_code_is_registered_and_every_registered_one_is_written():
    written, used = names_in_code()
    assert {name: where for name, where in written.items() if name not in ACTIONS} == {}
    assert sorted(ACTIONS) == sorted(written)  # no registered action that nothing writes
    assert {"review_decision", "rename_node", "accept_proposal", "undo", "activate_model"} <= set(used)
    assert {name: where for name, where in used.items() if name not in ACTIONS} == {}
