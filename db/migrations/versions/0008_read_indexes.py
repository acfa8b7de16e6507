"""read indexes: what the pages' reads need at a million products (db/repo.py, db/mappings.py coverage)

- labels (node_id, product_id) replaces labels (node_id): a category's products and the label counts by node are
  read from the index alone;
- labels (product_id) where source <> 'platform': the products that can have an outranked label (a person's,
  a mapping's or a model's label beside the platform's), so the node counts subtract only those;
- products (platform_id, image_status, id): the catalogue statistics by platform and image status (and which of
  those products have a label);
- products (image_status, id): a category's products with a photo first, read in order and stopped after a page;
- products (platform_id, platform_category_id): products per platform category (the Mapping page's coverage).

Indexes only: no row is written, changed or deleted. Downgrade drops them and restores labels (node_id).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 20:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

OUTRANKING = "source <> 'platform'"  # db.models.LABEL_SOURCES[-1], the source every other outranks
INDEXES = (  # name, table, columns
    ("ix_labels_node_product", "labels", ["node_id", "product_id"]),
    ("ix_products_platform_status", "products", ["platform_id", "image_status", "id"]),
    ("ix_products_status_id", "products", ["image_status", "id"]),
    ("ix_products_platform_category", "products", ["platform_id", "platform_category_id"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    op.create_index(
        "ix_labels_outranking",
        "labels",
        ["product_id"],
        sqlite_where=sa.text(OUTRANKING),
        postgresql_where=sa.text(OUTRANKING),
    )
    op.drop_index("ix_labels_node_id", table_name="labels")
    if op.get_bind().dialect.name == "postgresql":
        for table in ("labels", "products"):  # fresh statistics, so the planner uses the new indexes at once
            op.execute(f"ANALYZE {table}")


def downgrade() -> None:
    op.create_index("ix_labels_node_id", "labels", ["node_id"])
    op.drop_index("ix_labels_outranking", table_name="labels")
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
