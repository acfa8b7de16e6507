"""versions and invariants: a `version` counter on the rows curators change at the same time, and the invariants
the database itself enforces from now on

- `version` (integer, 1 for every existing row) on taxonomy_nodes, proposals, category_mappings, standard_mappings,
  labels and model_versions: every change bumps it, and an action states the version it saw, so the second of two
  conflicting actions is refused (db/repo.py `check_version`).
- at most one active model version: a partial unique index (`WHERE status = 'active'`, both backends);
- an event is undone at most once: unique audit_events.undo_of_id and undone_by_id;
- one decision per proposal, no product label on a retired category, no live category under a retired one:
  triggers (SQLite: `RAISE(ABORT)`; PostgreSQL: PL/pgSQL raising check_violation), which refuse the write that
  would break them.

Existing databases: rows written by two curators racing before this revision may already break an invariant. Only
what the new indexes cannot be created over is repaired, each repair keeping every row: of several active model
versions the newest stays active and the others are archived; of several undo events of one event, the one the
event names (`undone_by_id`) keeps its link and the others lose `undo_of_id` (their summary still says what they
undid). A label on a retired category is moved along the category's redirects to the active category its products
went to (as the retire or merge would have), when there is one. No label, decision or audit event is deleted.

Future migrations on SQLite: a batch "move and copy" of labels, taxonomy_nodes or proposals drops these triggers;
create them again afterwards (`create_triggers`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

VERSIONED = ("taxonomy_nodes", "proposals", "category_mappings", "standard_mappings", "labels", "model_versions")
LABEL_ON_RETIRED = "invariant: no product label on a retired category"
LIVE_UNDER_RETIRED = "invariant: no live category under a retired one"
RETIRE_NOT_EMPTY = "invariant: a retired category holds no labels and no live sub-categories"
DECIDED_ONCE = "invariant: a proposal is decided once"

_NODE_RETIRED = "EXISTS (SELECT 1 FROM taxonomy_nodes t WHERE t.id = NEW.{col} AND t.status = 'retired')"
_NOT_EMPTY = (
    "(EXISTS (SELECT 1 FROM labels l WHERE l.node_id = NEW.id) "
    "OR EXISTS (SELECT 1 FROM taxonomy_nodes c WHERE c.parent_id = NEW.id AND c.status <> 'retired'))"
)
_REDECIDED = (
    "OLD.status <> 'open' AND NEW.status <> 'open' "
    "AND (NEW.status <> OLD.status OR NEW.created_node_id IS DISTINCT FROM OLD.created_node_id)"
)

SQLITE_TRIGGERS = {  # name: (timing and event, condition, message)
    "trg_labels_live_node_insert": ("BEFORE INSERT ON labels", _NODE_RETIRED.format(col="node_id"), LABEL_ON_RETIRED),
    "trg_labels_live_node_update": ("BEFORE UPDATE OF node_id ON labels", _NODE_RETIRED.format(col="node_id"), LABEL_ON_RETIRED),
    "trg_nodes_live_parent_insert": (
        "BEFORE INSERT ON taxonomy_nodes",
        "NEW.status <> 'retired' AND " + _NODE_RETIRED.format(col="parent_id"),
        LIVE_UNDER_RETIRED,
    ),
    "trg_nodes_live_parent_update": (
        "BEFORE UPDATE OF status, parent_id ON taxonomy_nodes",
        "NEW.status <> 'retired' AND (OLD.status IS NOT NEW.status OR OLD.parent_id IS NOT NEW.parent_id) AND "
        + _NODE_RETIRED.format(col="parent_id"),
        LIVE_UNDER_RETIRED,
    ),
    "trg_nodes_retire_empty": (
        "BEFORE UPDATE OF status ON taxonomy_nodes",
        "NEW.status = 'retired' AND OLD.status <> 'retired' AND " + _NOT_EMPTY,
        RETIRE_NOT_EMPTY,
    ),
    "trg_proposals_decided_once": ("BEFORE UPDATE ON proposals", _REDECIDED.replace("IS DISTINCT FROM", "IS NOT"), DECIDED_ONCE),
}

PG_FUNCTIONS = {  # function: (trigger, timing and event, body)
    "curator_label_live_node": (
        "trg_labels_live_node",
        "BEFORE INSERT OR UPDATE OF node_id ON labels",
        f"IF {_NODE_RETIRED.format(col='node_id')} THEN RAISE EXCEPTION '{LABEL_ON_RETIRED} (category %)', NEW.node_id "
        "USING ERRCODE = 'check_violation'; END IF;",
    ),
    "curator_node_invariants": (
        "trg_taxonomy_nodes_invariants",
        "BEFORE INSERT OR UPDATE OF status, parent_id ON taxonomy_nodes",
        "IF NEW.status <> 'retired' AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status "
        f"OR OLD.parent_id IS DISTINCT FROM NEW.parent_id) AND {_NODE_RETIRED.format(col='parent_id')} THEN "
        f"RAISE EXCEPTION '{LIVE_UNDER_RETIRED} (category %)', NEW.id USING ERRCODE = 'check_violation'; END IF; "
        f"IF TG_OP = 'UPDATE' AND NEW.status = 'retired' AND OLD.status <> 'retired' AND {_NOT_EMPTY} THEN "
        f"RAISE EXCEPTION '{RETIRE_NOT_EMPTY} (category %)', NEW.id USING ERRCODE = 'check_violation'; END IF;",
    ),
    "curator_proposal_decided_once": (
        "trg_proposals_decided_once",
        "BEFORE UPDATE ON proposals",
        f"IF {_REDECIDED} THEN RAISE EXCEPTION '{DECIDED_ONCE} (proposal %)', NEW.id USING ERRCODE = 'check_violation'; END IF;",
    ),
}


def create_triggers() -> None:
    """The invariant triggers of this revision, on the current backend."""
    if op.get_bind().dialect.name == "postgresql":
        for function, (trigger, event, body) in PG_FUNCTIONS.items():
            op.execute(
                f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NEW; END $$"
            )
            op.execute(f"CREATE TRIGGER {trigger} {event} FOR EACH ROW EXECUTE FUNCTION {function}()")
        return
    for trigger, (event, condition, message) in SQLITE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {trigger} {event} WHEN {condition} BEGIN SELECT RAISE(ABORT, '{message}'); END")


def _repair() -> None:
    """Make room for the new unique indexes and move labels off retired categories (see the module docstring)."""
    conn = op.get_bind()
    newest = conn.execute(sa.text("SELECT max(id) FROM model_versions WHERE status = 'active'")).scalar()
    if newest is not None:
        conn.execute(sa.text("UPDATE model_versions SET status = 'archived' WHERE status = 'active' AND id <> :i"), {"i": newest})
    dupes = conn.execute(
        sa.text("SELECT undo_of_id FROM audit_events WHERE undo_of_id IS NOT NULL GROUP BY undo_of_id HAVING count(*) > 1")
    ).scalars()
    for undone in list(dupes):
        keep = conn.execute(sa.text("SELECT undone_by_id FROM audit_events WHERE id = :i"), {"i": undone}).scalar()
        conn.execute(
            sa.text("UPDATE audit_events SET undo_of_id = NULL WHERE undo_of_id = :i AND id <> :k"),
            {"i": undone, "k": keep or -1},
        )
    nodes = {r.id: r for r in conn.execute(sa.text("SELECT id, status, redirect_id FROM taxonomy_nodes"))}
    for node_id in list(conn.execute(sa.text("SELECT DISTINCT node_id FROM labels")).scalars()):
        target, seen = nodes[node_id], set()
        while target.status == "retired" and target.redirect_id is not None and target.id not in seen:
            seen.add(target.id)
            target = nodes[target.redirect_id]
        if target.id != node_id and target.status != "retired":
            conn.execute(sa.text("UPDATE labels SET node_id = :t WHERE node_id = :n"), {"t": target.id, "n": node_id})


def upgrade() -> None:
    for table in VERSIONED:
        op.add_column(table, sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    _repair()
    op.create_index(
        "uq_model_versions_one_active",
        "model_versions",
        ["status"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index("uq_audit_events_undo_of_id", "audit_events", ["undo_of_id"], unique=True)
    op.create_index("uq_audit_events_undone_by_id", "audit_events", ["undone_by_id"], unique=True)
    create_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for function, (trigger, event, _) in PG_FUNCTIONS.items():
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {event.rsplit(' ', 1)[-1]}")
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    else:
        for trigger in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.drop_index("uq_audit_events_undone_by_id", table_name="audit_events")
    op.drop_index("uq_audit_events_undo_of_id", table_name="audit_events")
    op.drop_index("uq_model_versions_one_active", table_name="model_versions")
    for table in VERSIONED:  # a plain column: SQLite (3.35+) drops it in place, no table copy (which the keys refuse)
        op.execute(f"ALTER TABLE {table} DROP COLUMN version")
