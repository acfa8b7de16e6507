"""platform column map: the column mapping of a platform's catalogue files, remembered by the Import page

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a nullable column: existing platforms keep everything and have no remembered mapping yet
    with op.batch_alter_table("platforms", schema=None) as batch_op:
        batch_op.add_column(sa.Column("column_map", sa.JSON(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN, also on SQLite (3.35+): batch mode would copy the table, which products reference
    op.drop_column("platforms", "column_map")
