"""Model versions and their stored predictions (per product and taxonomy level)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from db.models import AuditEvent, ModelVersion, Platform, Prediction, Product, TaxonomyNode
from db.repo import MODELS, CurationError, check_version, effective_labels_subquery, image_location, lock, locked, write_audit

# a model version's params key: a first start's model of the titles alone, which the fill-in replaces by the model
# with photos once they are embedded (core.steps.start.first_model_choice, core.steps.fill.photo_model)
TEXT_FIRST = "text_first"


def is_text_first(version: ModelVersion | None) -> bool:
    """Whether `version` is a first start's model of the titles alone (`TEXT_FIRST` in its params)."""
    return version is not None and bool((version.params or {}).get(TEXT_FIRST))

def register_model_version(
    session: Session,
    *,
    name: str,
    metrics: dict[str, Any],
    params: dict[str, Any],
    artifact: str | None,
    taxonomy_version_id: int | None = None,
) -> ModelVersion:
    """Record a trained model (a candidate until activated)."""
    version = ModelVersion(name=name, metrics=metrics, params=params, artifact=artifact, taxonomy_version_id=taxonomy_version_id)
    session.add(version)
    session.flush()
    return version


def active_model_version(session: Session) -> ModelVersion | None:
    return session.scalar(select(ModelVersion).where(ModelVersion.status == "active").order_by(ModelVersion.id.desc()))


def _active_locked(session: Session) -> list[ModelVersion]:
    stmt = select(ModelVersion).where(ModelVersion.status == "active").order_by(ModelVersion.id.desc())
    return list(session.scalars(stmt.with_for_update().execution_options(populate_existing=True)))


def activate_model_version(
    session: Session, *, version_id: int, actor: str, expected: dict[int, int] | None = None
) -> ModelVersion:
    """Make `version_id` the active model (the previous one is archived); audited.

    `expected`: {model version id: version} of the one to activate and of the active one, as the caller saw them:
    refused when either changed since (e.g. someone activated another a moment ago)."""
    lock(session, MODELS)  # activations take turns; the database allows one active version
    expected = {int(k): v for k, v in (expected or {}).items()}
    version = locked(session, ModelVersion, version_id)
    if version is None:
        raise CurationError(f"Unknown model version {version_id}.")
    active = _active_locked(session)
    for row_id, saw in sorted(expected.items()):
        row = locked(session, ModelVersion, row_id)
        check_version(session, row, saw, what=f"Model version #{row_id}", key=row_id, actions=("activate_model",))
    previous = active[0] if active else None
    if previous is not None and previous.id == version.id:
        raise CurationError(f"Model version {version_id} is already active.")
    for row in active:
        row.status = "archived"
    session.flush()  # archived before the new one is active: the database allows one active version
    version.status = "active"
    write_audit(
        session,
        actor=actor,
        action="activate_model",
        summary=f"Activated model version #{version.id} ({version.name})",
        before={"version_id": previous.id if previous else None},
        after={"version_id": version.id},
    )
    return version


def undo_activate_model(session: Session, event: AuditEvent) -> None:
    """Give the active role back to the version that had it before (none: no version active)."""
    active = _active_locked(session)
    current = active[0] if active else None
    if current is None or current.id != event.after["version_id"]:
        raise CurationError(f"Cannot undo #{event.id} ({event.summary}): another version was activated since; undo that first.")
    previous_id = event.before.get("version_id")
    previous = session.get(ModelVersion, previous_id) if previous_id is not None else None
    if previous_id is not None and previous is None:
        raise CurationError(f"Cannot undo #{event.id}: model version #{previous_id} no longer exists.")
    current.status = "archived"
    session.flush()
    if previous is not None:
        previous.status = "active"


def replace_predictions(session: Session, *, model_version_id: int, rows: list[dict[str, Any]]) -> int:
    """Store a model version's predictions, replacing any earlier ones of that version.

    Args:
        rows: dicts with product_id, level (1-based), node_id, confidence, stage.
    """
    session.execute(delete(Prediction).where(Prediction.model_version_id == model_version_id))
    for start in range(0, len(rows), 10000):
        chunk = [{**r, "model_version_id": model_version_id} for r in rows[start : start + 10000]]
        session.execute(insert(Prediction), chunk)
    return len(rows)


def prediction_count(session: Session, *, model_version_id: int) -> int:
    """How many products have predictions of this version."""
    stmt = select(func.count(func.distinct(Prediction.product_id))).where(Prediction.model_version_id == model_version_id)
    return session.scalar(stmt) or 0


def mark_predicted(session: Session, *, model_version_id: int, key: str) -> None:
    """Record the data key the version's stored predictions were made on (so re-runs can be skipped), and when."""
    version = session.get(ModelVersion, model_version_id)
    version.params = {**version.params, "predicted_key": key, "predicted_at": datetime.now(UTC).isoformat()}


def deepest_predictions(session: Session, *, model_version_id: int) -> dict[int, int]:
    """{product id: node id of its deepest predicted level} of a model version (its full predicted path's node)."""
    best: dict[int, tuple[int, int]] = {}
    rows = session.execute(
        select(Prediction.product_id, Prediction.level, Prediction.node_id).where(Prediction.model_version_id == model_version_id)
    )
    for pid, level, node_id in rows:
        if pid not in best or level > best[pid][0]:
            best[pid] = (level, node_id)
    return {pid: node for pid, (_, node) in best.items()}


def prediction_table(session: Session, *, model_version_id: int) -> list[dict[str, Any]]:
    """One row per predicted product (in product id order): label path, predicted path, per-level confidence, stage
    (of its first level), agreement.

    Three narrow reads (the predictions' numbers, the predicted products with their labels, the category paths)
    rather than one join that repeats each product's text and label once per level (10-20% less CPU at 44k, and
    a product's text is held once, not once per level, at any size).
    """
    table: dict[int, dict[str, Any]] = {}
    levels = (
        select(Prediction.product_id, Prediction.confidence, Prediction.stage, Prediction.node_id)
        .where(Prediction.model_version_id == model_version_id)
        .order_by(Prediction.product_id, Prediction.level)
    )
    for pid, conf, stage, node_id in session.connection().execute(levels):
        row = table.get(pid)
        if row is None:  # a product's first level
            row = table[pid] = {"stage": stage, "confidence": 1.0, "levels": []}
        row["node"] = node_id  # the deepest level's node carries the full path
        row["levels"].append(conf)
        row["confidence"] *= conf
    if not table:
        return []
    paths = dict(session.execute(select(TaxonomyNode.id, TaxonomyNode.path)).all())
    eff = effective_labels_subquery()
    products = (
        select(Product.id, Product.external_id, Product.title, Product.image, Product.image_status, Platform.name, Platform.root)
        .add_columns(eff.c.node_id)
        .join(Platform, Platform.id == Product.platform_id)
        .outerjoin(eff, eff.c.product_id == Product.id)
        .where(Product.id.in_(select(Prediction.product_id).where(Prediction.model_version_id == model_version_id)))
        .order_by(Product.id)
    )
    out = []
    for pid, external_id, title, image, status, platform, root, label_id in session.connection().execute(products):
        got = table[pid]
        label, predicted = paths.get(label_id), paths[got["node"]]
        out.append(
            {
                "product_id": pid,
                "external_id": external_id,
                "platform": platform,
                "title": title,
                "image": image_location(root, image) if status == "ok" else None,
                "label": label,
                "stage": got["stage"],
                "confidence": got["confidence"],
                "levels": got["levels"],
                "predicted": predicted,
                "agrees": label == predicted if label else None,
            }
        )
    return out
