"""The page caches' keys (app/cache.py `data_version`, `labels_version`) change after every kind of write that
changes what the pages read: an ingest that adds products, one that only changes them, a curation action, its
undo, a change of the taxonomy's shape, and an action whose audit id is lower than one already committed (ids are
handed out before commit, so two curators' actions can commit out of order). `labels_version` stays put when
only something that cannot move a product between categories is audited. SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime

from sqlalchemy import func, insert, select

from app import cache
from core.steps.ingest import ingest
from db import actions, repo, users
from db.models import AuditEvent, Product
from db.session import transaction

ANA = users.Identity("ana", "admin", operator=True)
HEADER = ["id", "title", "description", "brand", "image", "master_category", "sub_category", "article_type"]


def write_catalogue(path, titles: dict[str, str]):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for ext, title in titles.items():
            writer.writerow([ext, title, "", "Acme", "", "Footwear", "Shoes", "Boots"])
    return path


def versions():
    return cache.data_version(), cache.labels_version()


def audit(factory, *, action: str, event_id: int | None = None) -> None:
    row = {"actor": "test", "action": action, "summary": action, "before": {}, "after": {}, "time": datetime.now(UTC)}
    with transaction(factory) as s:
        s.execute(insert(AuditEvent), [{**row, "id": event_id}] if event_id else [row])


def test_data_and_labels_versions_change_after_every_kind_of_write(db_url, factory, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    seen = [versions()]

    def changed(*, labels: bool = True) -> None:
        now = versions()
        assert now[0] not in [v[0] for v in seen]  # a data version not seen before
        assert (now[1] not in [v[1] for v in seen]) if labels else now[1] == seen[-1][1]
        seen.append(now)

    ingest(write_catalogue(tmp_path / "a.csv", {"b1": "boot one", "b2": "boot two"}), platform="shop", db_url=db_url)
    changed()  # new products
    ingest(write_catalogue(tmp_path / "b.csv", {"b1": "boot one, in brown", "b2": "boot two"}), platform="shop", db_url=db_url)
    with factory() as s:
        assert s.scalar(select(func.count(Product.id))) == 2  # the same products: only a title changed
        product = s.scalar(select(Product.id).where(Product.external_id == "b1"))
        boots = repo.node_by_path(s, "Footwear > Shoes > Boots").id
        shoes = repo.node_by_path(s, "Footwear > Shoes").id
    changed()
    with transaction(factory) as s:
        actions.perform(s, "relabel_product", user=ANA, product_id=product, node_id=shoes)
    changed()
    with transaction(factory) as s:
        actions.undo(s, event_id=s.scalar(select(func.max(AuditEvent.id))), actor="ana")
    changed()
    with transaction(factory) as s:
        actions.perform(s, "add_node", user=ANA, parent_id=boots, name="Wellies")
    changed(labels=False)
    audit(factory, action="activate_model")  # audited, but moves no product
    changed(labels=False)
    with factory() as s:
        newest = s.scalar(select(func.max(AuditEvent.id)))
    audit(factory, action="relabel_product", event_id=newest + 5)
    changed()
    audit(factory, action="relabel_product", event_id=newest + 2)  # took its id first, committed after: same last id
    changed()
