"""SQLAlchemy 2.0 typed models of the taxonomy database.

The schema is created and changed only by the Alembic migrations in db/migrations; these classes
must match them (tests/db/test_migrations.py compares the two).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

PATH_SEP = " > "
NODE_STATUSES = ("active", "proposed", "retired")
# priority order: the first present wins; "mapping" labels come from a confirmed category mapping (db/mappings.py)
LABEL_SOURCES = ("human", "mapping", "model", "platform")
PLATFORM_KINDS = ("shop", "standard")  # a standard (e.g. the Google Product Taxonomy) has categories, no products
MAPPING_STATUSES = ("suggested", "confirmed", "rejected", "no_equivalent")
IMAGE_STATUSES = ("ok", "none", "missing", "unreadable", "remote")
USER_ROLES = ("viewer", "curator", "admin")  # ranked: each may do what the ones before it may (db/actions.py)


def utcnow() -> datetime:
    return datetime.now(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Platform(Base):
    __tablename__ = "platforms"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    root: Mapped[str | None] = mapped_column(Text)  # folder image paths are relative to
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    column_map: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # its files' columns, remembered (db/platforms.py)
    kind: Mapped[str] = mapped_column(String(20), default="shop", server_default="shop")
    # its categories are master categories: ingest adds them to the master taxonomy and labels its products directly
    seeds_master: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class PlatformCategory(Base):
    """A category of a platform's own tree, as ingested (reference data; the master taxonomy is TaxonomyNode)."""

    __tablename__ = "platform_categories"
    __table_args__ = (UniqueConstraint("platform_id", "path", name="uq_platform_category_path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("platforms.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("platform_categories.id"))
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(String(1000))
    depth: Mapped[int] = mapped_column(Integer)
    code: Mapped[str | None] = mapped_column(String(50))  # the standard's own id (Google: its numeric category id)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("platform_id", "external_id", name="uq_product_platform_ext"),
        # the pages' reads (migration 0008): statistics, photos first, products per platform category
        Index("ix_products_platform_status", "platform_id", "image_status", "id"),
        Index("ix_products_status_id", "image_status", "id"),
        Index("ix_products_platform_category", "platform_id", "platform_category_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("platforms.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    brand: Mapped[str | None] = mapped_column(String(200))
    image: Mapped[str | None] = mapped_column(Text)  # relative to platform.root, or a URL
    image_status: Mapped[str] = mapped_column(String(20), default="none")
    image_stamp: Mapped[str | None] = mapped_column(String(100))  # size:mtime of the checked file
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))
    platform_category_id: Mapped[int | None] = mapped_column(ForeignKey("platform_categories.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    platform: Mapped[Platform] = relationship()


class TaxonomyNode(Base):
    __tablename__ = "taxonomy_nodes"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_nodes.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(String(1000), unique=True)
    depth: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="active")
    redirect_id: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_nodes.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # bumped by every change (migration 0007)

    __mapper_args__ = {"version_id_col": version}  # an UPDATE of a row changed since it was read matches nothing


class TaxonomyVersion(Base):
    """One row per change of the taxonomy's shape; the latest number is the taxonomy version."""

    __tablename__ = "taxonomy_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    audit_event_id: Mapped[int | None] = mapped_column(ForeignKey("audit_events.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Label(Base):
    """A product's place in the taxonomy according to one source (one label per source)."""

    __tablename__ = "labels"
    __table_args__ = (
        UniqueConstraint("product_id", "source", name="uq_label_product_source"),
        Index("ix_labels_node_product", "node_id", "product_id"),  # a category's products, counts by node (0008)
        Index(  # the products that can have an outranked label (db.repo.direct_counts; migration 0008)
            "ix_labels_outranking",
            "product_id",
            sqlite_where=text("source <> 'platform'"),
            postgresql_where=text("source <> 'platform'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    node_id: Mapped[int] = mapped_column(ForeignKey("taxonomy_nodes.id"))
    source: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # bumped by set_label, mapping syncs (0007)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (  # at most one active model version (migration 0007)
        Index(
            "uq_model_versions_one_active",
            "status",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="candidate")  # candidate/active/archived
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artifact: Mapped[str | None] = mapped_column(Text)
    taxonomy_version_id: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_versions.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # bumped by every change (migration 0007)

    __mapper_args__ = {"version_id_col": version}


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (Index("ix_prediction_product_model", "product_id", "model_version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    level: Mapped[int] = mapped_column(Integer)
    node_id: Mapped[int] = mapped_column(ForeignKey("taxonomy_nodes.id"))
    confidence: Mapped[float] = mapped_column(Float)
    stage: Mapped[int] = mapped_column(Integer, default=1)


class Proposal(Base):
    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_node_id: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_nodes.id"))
    status: Mapped[str] = mapped_column(String(20), default="open")
    name: Mapped[str] = mapped_column(String(200))
    suggested_names: Mapped[list[Any]] = mapped_column(default=list)
    members: Mapped[list[Any]] = mapped_column(default=list)  # product ids
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_node_id: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_nodes.id"))
    run_key: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # bumped by every change (migration 0007)

    __mapper_args__ = {"version_id_col": version}


class _Decision:
    """The columns a mapping decision has, wherever it maps from and to."""

    status: Mapped[str] = mapped_column(String(20), default="suggested")
    confidence: Mapped[float | None] = mapped_column(Float)
    ambiguous: Mapped[bool] = mapped_column(Boolean, default=False)
    origin: Mapped[str] = mapped_column(String(50), default="suggest")
    candidates: Mapped[list[Any]] = mapped_column(default=list)
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CategoryMapping(_Decision, Base):
    """Where a platform category goes in the master taxonomy (one row per platform category).

    `master_node_id` is the suggested or confirmed master node (None for "no_equivalent"); `candidates` holds the
    ranked suggestions [{node_id, path, score, vote, name, centroid}]; `origin` says where the mapping came from
    (suggest, seed, human, migration).
    """

    __tablename__ = "category_mappings"

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_category_id: Mapped[int] = mapped_column(ForeignKey("platform_categories.id"), unique=True)
    master_node_id: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_nodes.id"), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # bumped by every change (migration 0007)

    __mapper_args__ = {"version_id_col": version}


class StandardMapping(_Decision, Base):
    """Where a master node goes in a standard taxonomy (a platform of kind "standard"): one row per (standard, node)."""

    __tablename__ = "standard_mappings"
    __table_args__ = (UniqueConstraint("platform_id", "master_node_id", name="uq_standard_mapping_node"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("platforms.id"))
    master_node_id: Mapped[int] = mapped_column(ForeignKey("taxonomy_nodes.id"))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("platform_categories.id"))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # bumped by every change (migration 0007)

    __mapper_args__ = {"version_id_col": version}


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (  # an event is undone at most once (migration 0007)
        Index("uq_audit_events_undo_of_id", "undo_of_id", unique=True),
        Index("uq_audit_events_undone_by_id", "undone_by_id", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    summary: Mapped[str] = mapped_column(Text, default="")
    before: Mapped[dict[str, Any]] = mapped_column(default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(default=dict)
    undo_of_id: Mapped[int | None] = mapped_column(ForeignKey("audit_events.id"))
    undone_by_id: Mapped[int | None] = mapped_column(ForeignKey("audit_events.id"))


REVIEW_STATUSES = ("open", "accepted", "kept", "relabelled")


class ReviewItem(Base):
    """A product whose label looks wrong to the out-of-fold model, in the ranked review queue.

    `score` ranks the queue (higher: more likely mislabelled); `levels` holds per taxonomy level the
    self-confidence, normalised margin and confident-learning flag the score was made from.
    """

    __tablename__ = "review_items"
    __table_args__ = (Index("ix_review_status_score", "status", "score"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    run_key: Mapped[str] = mapped_column(String(100))
    score: Mapped[float] = mapped_column(Float)
    self_confidence: Mapped[float] = mapped_column(Float)  # P(label path), out of fold
    margin: Mapped[float] = mapped_column(Float)  # P(label path) - P(best other path)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)  # confident-learning off-diagonal
    label_node_id: Mapped[int] = mapped_column(ForeignKey("taxonomy_nodes.id"))  # label when scored
    suggested_node_id: Mapped[int] = mapped_column(ForeignKey("taxonomy_nodes.id"))
    suggested_confidence: Mapped[float] = mapped_column(Float)
    levels: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(20), default="open")
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued/running/done/failed
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    log: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(200))  # machine the job's process runs on
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the process is alive
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class User(Base):
    """Someone who may sign in to the app (db/users.py): an argon2 hash of the password, never the password itself.

    `failed_attempts` and `locked_until` rate-limit sign-in: after too many wrong passwords in a row the user is
    locked for a while (db.users.authenticate); a disabled user cannot sign in at all.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(20))  # one of USER_ROLES
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    password_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
