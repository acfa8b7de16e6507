"""platform taxonomies and category mappings: each platform keeps its own category tree; the master taxonomy is
the curated one (taxonomy_nodes); category_mappings say where a platform category goes in it, standard_mappings
where a master node goes in a standard taxonomy (Google Product Taxonomy)

Existing databases: every platform already there placed its categories in the master taxonomy at ingest, so each
becomes a master-seeding platform (seeds_master), its tree is rebuilt from the master nodes its `platform` labels
point at (the node's current path: a category renamed since ingest keeps its new name), each product points at its
category, and each category gets a confirmed mapping onto that node (origin "migration"). No label, audit event,
prediction or decision is touched.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SEP = " > "


def _mapping_columns(prefix: str) -> list[sa.Column]:
    return [
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("ambiguous", sa.Boolean(), nullable=False),
        sa.Column("origin", sa.String(length=50), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _create_tables() -> None:
    op.create_table(
        "platform_categories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=50), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["platform_categories.id"], name=op.f("fk_platform_categories_parent_id_platform_categories")
        ),
        sa.ForeignKeyConstraint(["platform_id"], ["platforms.id"], name=op.f("fk_platform_categories_platform_id_platforms")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_categories")),
        sa.UniqueConstraint("platform_id", "path", name="uq_platform_category_path"),
    )
    op.create_index(op.f("ix_platform_categories_platform_id"), "platform_categories", ["platform_id"], unique=False)
    op.create_table(
        "category_mappings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform_category_id", sa.Integer(), nullable=False),
        sa.Column("master_node_id", sa.Integer(), nullable=True),
        *_mapping_columns("category_mappings"),
        sa.ForeignKeyConstraint(
            ["master_node_id"], ["taxonomy_nodes.id"], name=op.f("fk_category_mappings_master_node_id_taxonomy_nodes")
        ),
        sa.ForeignKeyConstraint(
            ["platform_category_id"],
            ["platform_categories.id"],
            name=op.f("fk_category_mappings_platform_category_id_platform_categories"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_category_mappings")),
        sa.UniqueConstraint("platform_category_id", name=op.f("uq_category_mappings_platform_category_id")),
    )
    op.create_index(op.f("ix_category_mappings_master_node_id"), "category_mappings", ["master_node_id"], unique=False)
    op.create_table(
        "standard_mappings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("master_node_id", sa.Integer(), nullable=False),
        sa.Column("category_id", sa.Integer(), nullable=True),
        *_mapping_columns("standard_mappings"),
        sa.ForeignKeyConstraint(
            ["category_id"], ["platform_categories.id"], name=op.f("fk_standard_mappings_category_id_platform_categories")
        ),
        sa.ForeignKeyConstraint(
            ["master_node_id"], ["taxonomy_nodes.id"], name=op.f("fk_standard_mappings_master_node_id_taxonomy_nodes")
        ),
        sa.ForeignKeyConstraint(["platform_id"], ["platforms.id"], name=op.f("fk_standard_mappings_platform_id_platforms")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_standard_mappings")),
        sa.UniqueConstraint("platform_id", "master_node_id", name="uq_standard_mapping_node"),
    )


def _backfill(conn) -> None:
    """Each platform's tree from its platform labels' nodes; products point at it; confirmed identity mappings."""
    now = datetime.now(UTC)
    conn.execute(sa.text("UPDATE platforms SET seeds_master = :t"), {"t": True})
    rows = conn.execute(
        sa.text(
            "SELECT p.platform_id, l.product_id, n.id AS node_id, n.path FROM labels l "
            "JOIN products p ON p.id = l.product_id JOIN taxonomy_nodes n ON n.id = l.node_id "
            "WHERE l.source = 'platform'"
        )
    ).all()
    nodes = dict(conn.execute(sa.text("SELECT path, id FROM taxonomy_nodes")).all())
    category: dict[tuple[int, str], int] = {}
    mapped: set[tuple[int, str]] = set()

    def ensure(platform_id: int, path: str, *, holds_products: bool) -> int:
        key = (platform_id, path)
        if key not in category:
            parts = path.split(SEP)
            parent = ensure(platform_id, SEP.join(parts[:-1]), holds_products=False) if len(parts) > 1 else None
            category[key] = conn.execute(
                sa.text(
                    "INSERT INTO platform_categories (platform_id, parent_id, name, path, depth, created_at) "
                    "VALUES (:pl, :pa, :n, :p, :d, :c) RETURNING id"
                ),
                {"pl": platform_id, "pa": parent, "n": parts[-1], "p": path, "d": len(parts), "c": now},
            ).scalar_one()
        if holds_products and path in nodes and key not in mapped:
            mapped.add(key)
            conn.execute(
                sa.text(
                    "INSERT INTO category_mappings (platform_category_id, master_node_id, status, confidence, "
                    "ambiguous, origin, candidates, decided_by, decided_at, updated_at) VALUES "
                    "(:pc, :n, 'confirmed', 1.0, :f, 'migration', '[]', 'migration', :c, :c)"
                ),
                {"pc": category[key], "n": nodes[path], "f": False, "c": now},
            )
        return category[key]

    pairs = [{"c": ensure(platform_id, path, holds_products=True), "p": product_id} for platform_id, product_id, _, path in rows]
    if pairs:  # one executemany, not a round trip per product
        conn.execute(sa.text("UPDATE products SET platform_category_id = :c WHERE id = :p"), pairs)


def upgrade() -> None:
    # plain ADD COLUMN (no batch copy on SQLite: products and platforms are referenced with ON DELETE CASCADE)
    op.add_column("platforms", sa.Column("kind", sa.String(length=20), server_default="shop", nullable=False))
    op.add_column("platforms", sa.Column("seeds_master", sa.Boolean(), server_default="0", nullable=False))
    _create_tables()
    fk = op.f("fk_products_platform_category_id_platform_categories")
    if op.get_bind().dialect.name == "sqlite":  # SQLite adds a column's foreign key only inline
        op.execute("ALTER TABLE products ADD COLUMN platform_category_id INTEGER REFERENCES platform_categories (id)")
    else:
        op.add_column("products", sa.Column("platform_category_id", sa.Integer(), nullable=True))
        op.create_foreign_key(fk, "products", "platform_categories", ["platform_category_id"], ["id"])
    op.create_index(op.f("ix_products_platform_category_id"), "products", ["platform_category_id"], unique=False)
    _backfill(op.get_bind())


def downgrade() -> None:
    op.drop_index(op.f("ix_products_platform_category_id"), table_name="products")
    op.drop_column("products", "platform_category_id")
    op.drop_table("standard_mappings")
    op.drop_index(op.f("ix_category_mappings_master_node_id"), table_name="category_mappings")
    op.drop_table("category_mappings")
    op.drop_index(op.f("ix_platform_categories_platform_id"), table_name="platform_categories")
    op.drop_table("platform_categories")
    op.drop_column("platforms", "seeds_master")
    op.drop_column("platforms", "kind")
