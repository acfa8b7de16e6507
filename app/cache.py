"""The app's only st.cache_* wrappers. Every cached value is keyed by the versions of what it is made from:
`data_version` (the audit high-water mark: any curation action or ingest), `labels_version` (the last event
that can move a product between categories), `proposals_version` (a discovery run replaces proposals without
an audit event), `model_key` (stored predictions), the chosen encoders and a map file's mtime; so a change to
what a value depends on invalidates it, and nothing else does."""

from __future__ import annotations

from typing import Any

import streamlit as st
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from app import clusters_view
from app.prediction_view import filter_predictions, prediction_frame, to_csv
from app.scatter import group_names, keyed, map_figure, map_image, map_view
from core import config
from core.embed.choice import EncoderChoice, chosen_encoders
from core.steps.compare import compare_versions, current_labels, predicted_paths
from core.steps.discover import LevelSource, NodeSearch, level_file, level_source, stored_level
from core.steps.maps import ALL, load_map, map_file, slug_for
from db import actions, jobs, mappings, repo, standards
from db import predictions as preds
from db import proposals as props
from db.models import AuditEvent, Job, ModelVersion, Platform, Prediction, Product, Proposal, TaxonomyNode
from db.session import get_sessionmaker, transaction, upgrade


def db_url() -> str:
    return config.database_url()


@st.cache_resource(show_spinner="Opening the taxonomy database...")
def _factory(url: str) -> sessionmaker[Session]:
    upgrade(url)  # idempotent; the app never runs on an old schema
    return get_sessionmaker(url)


def factory() -> sessionmaker[Session]:
    return _factory(db_url())


def data_version() -> tuple[int, int]:
    """(last audit event id, audit event count): changes whenever the data does.

    Every write of products, labels and the taxonomy is audited (an ingest that changes anything, each curation
    action and its undo), so the audit log is the data's high-water mark. The count is there too because ids are
    handed out before commit: an action that took id 10 and commits after one that took 11 leaves the last id at 11
    but adds one to the count. Both come from the audit table's primary key, however large the catalogue."""
    with factory()() as s:
        last, n = s.execute(select(func.max(AuditEvent.id), func.count(AuditEvent.id))).one()
        return last or 0, n or 0


def labels_version() -> tuple[int, int]:
    """(last audit event that can change a product's category path, how many there are): see
    `db.actions.Action.relabels` (an ingest is one); the count for the reason `data_version` has one.

    Unlike `data_version` it stays put when only proposals or the active model change.
    """
    relabels = AuditEvent.action.in_(actions.relabelling())
    with factory()() as s:
        last, n = s.execute(select(func.max(AuditEvent.id), func.count(AuditEvent.id)).where(relabels)).one()
        return last or 0, n or 0


def proposals_version() -> tuple[int, int]:
    """(last proposal id, proposal count): a discovery run replaces a node's open proposals (without an audit event)."""
    with factory()() as s:
        return s.scalar(select(func.max(Proposal.id))) or 0, s.scalar(select(func.count(Proposal.id))) or 0


@st.cache_data(show_spinner=False, max_entries=8)
def taxonomy_rows(url: str, version: tuple[int, int], include_retired: bool = False) -> list[dict[str, Any]]:
    with _factory(url)() as s:
        return repo.taxonomy_rows(s, include_retired=include_retired)


@st.cache_data(show_spinner=False, max_entries=8)
def catalogue_stats(url: str, version: tuple[int, int]) -> list[dict[str, Any]]:
    with _factory(url)() as s:
        return repo.catalogue_stats(s)


def taxonomy(include_retired: bool = False) -> list[dict[str, Any]]:
    return taxonomy_rows(db_url(), data_version(), include_retired)


def stats() -> list[dict[str, Any]]:
    """Per platform: products, labelled products, image statuses; only an ingest or an action that can relabel
    changes them (`labels_version`), so renaming a category or deciding a proposal does not count them again."""
    return catalogue_stats(db_url(), labels_version())


def model_key() -> tuple[int | None, str | None, int | None]:
    """(active model version id, when it last predicted, last prediction id): changes when predictions do."""
    with factory()() as s:
        version = preds.active_model_version(s)
        if version is None:
            return None, None, None
        return version.id, version.params.get("predicted_at"), s.scalar(select(func.max(Prediction.id)))


@st.cache_data(show_spinner="Loading predictions...", max_entries=4)
def _predictions(url: str, version: tuple[int, int], key: tuple):
    if key[0] is None:
        return None, prediction_frame([])
    with _factory(url)() as s:
        model = s.get(ModelVersion, key[0])
        info = {"id": model.id, "name": model.name, "metrics": model.metrics, "created_at": str(model.created_at)}
        info["text_first"] = preds.is_text_first(model)
        return info, prediction_frame(preds.prediction_table(s, model_version_id=model.id))


def predictions():
    """(active model version as a dict or None, DataFrame of its predictions)."""
    return _predictions(db_url(), data_version(), model_key())


@st.cache_data(show_spinner=False, max_entries=8)
def _prediction_csv(url: str, version: tuple[int, int], key: tuple, filters: tuple) -> bytes:
    _, df = _predictions(url, version, key)
    return to_csv(filter_predictions(df, **dict(filters)) if not df.empty else df)


def prediction_csv(**filters: Any) -> bytes:
    """The active model's predictions filtered by `filters` (`app.prediction_view.filter_predictions`'s keywords)
    as the export's CSV; cached by the data, the stored predictions and the filters (a page run does not rebuild it)."""
    frozen = tuple(sorted((k, tuple(v) if isinstance(v, list | tuple) else v) for k, v in filters.items()))
    return _prediction_csv(db_url(), data_version(), model_key(), frozen)


@st.cache_data(show_spinner=False, max_entries=64)
def _node_products(
    url: str, version: tuple[int, int], node_id: int, limit: int, offset: int, after: tuple[int, int] | None
) -> list[dict[str, Any]]:
    known = {row["id"]: row["products"] for row in taxonomy_rows(url, version, False)}  # the page's node counts, cached
    with _factory(url)() as s:
        products, _ = repo.products_in_node(s, node_id=node_id, limit=limit, offset=offset, after=after, total=known.get(node_id))
        return repo.product_cards(s, product_ids=[p.id for p in products])


@st.cache_resource(max_entries=64)
def _page_starts(url: str, version: tuple[int, int], node_id: int, limit: int) -> dict[int, tuple[int, int]]:
    """{offset: the `db.repo.page_key` of the product just before it}, filled as pages are read (keyset paging)."""
    return {}


def node_products(node_id: int, *, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    """Cards of a page of the products in a category or below it, those with a photo first (`db.repo.products_in_node`);
    cached until the data changes (any audited action or ingest). The page after one already read starts after its
    last product (keyset: no rows skipped); a page jumped to is read by offset."""
    url, version = db_url(), data_version()
    starts = _page_starts(url, version, node_id, limit)
    cards = _node_products(url, version, node_id, limit, offset, starts.get(offset) if offset else None)
    if len(cards) == limit:
        starts[offset + limit] = repo.page_key(cards[-1]["image_status"], cards[-1]["id"])
    return cards


@st.cache_data(show_spinner=False, max_entries=8)
def _proposal_parents(url: str, version: tuple[int, int], proposals: tuple[int, int]) -> dict[int, str]:
    with _factory(url)() as s:
        ids = sorted({p.parent_node_id for p in props.list_proposals(s)})
        return {i: repo.get_node(s, i).path for i in ids}


def proposal_parents() -> dict[int, str]:
    """{node id: path} of every category that has discovered proposals."""
    return _proposal_parents(db_url(), data_version(), proposals_version())


def proposals(parent_id: int) -> list[dict[str, Any]]:
    """The proposals under `parent_id` as plain dicts, those set aside by another level ("superseded") left out
    (not cached: a decision shows at once)."""
    with factory()() as s:
        return [
            {
                "id": p.id,
                "name": p.name,
                "status": p.status,
                "run_key": p.run_key,
                "members": list(p.members),
                "suggested_names": p.suggested_names,
                "scores": {k: v for k, v in p.scores.items() if k != "coords"},
                "coords": p.scores.get("coords", []),
                "version": p.version,  # what an action on it states it saw (`expected_version`)
            }
            for p in props.list_proposals(s, parent_node_id=parent_id)
            if p.status != "superseded"
        ]


@st.cache_data(show_spinner=False, max_entries=64)
def _child_shares(url: str, labels: tuple[int, int], parent_id: int, proposal_id: int, version: int) -> list[tuple[str, int]]:
    with _factory(url)() as s:
        return repo.child_shares(s, list(s.get(Proposal, proposal_id).members), parent_id)


def child_shares(proposal: dict[str, Any], parent_id: int) -> list[tuple[str, int]]:
    """[(existing child, products)] of the proposal's products by their current category (`db.repo.child_shares`),
    cached by the labels and the proposal's version (a move out changes its members)."""
    return _child_shares(db_url(), labels_version(), parent_id, proposal["id"], proposal["version"])


def edited_proposals(proposal_ids: list[int]) -> dict[int, str]:
    """{proposal id: last action} of those renamed, merged or moved out of since their run (not cached)."""
    with factory()() as s:
        return props.edited_proposals(s, proposal_ids)


def _map_mtime(slug: str) -> float:
    path = map_file(slug)
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_data(show_spinner=False, max_entries=16)
def _node_tree(slug: str, mtime: float) -> dict[str, Any] | None:
    data = load_map(slug)
    return clusters_view.map_tree(data["meta"]) if data is not None else None


def node_tree(slug: str) -> dict[str, Any] | None:
    """The named discovery tree of the node map `slug` (`app.clusters_view.map_tree`; cached until the map changes)."""
    return _node_tree(slug, _map_mtime(slug))


@st.cache_data(show_spinner="Loading the map...", max_entries=32)
def _level_scatter(slug: str, k: int, mtime: float) -> dict[str, Any] | None:
    data = load_map(slug)
    tree = clusters_view.map_tree(data["meta"]) if data is not None else None
    if tree is None or str(k) not in tree["levels"]:
        return None
    ids = data["product_ids"]
    names = clusters_view.level_names(tree, k, data["clusters"])
    return {**map_view(ids, data["xy"], names, max_groups=100), "meta": data["meta"], "token": f"level {slug} {k} {mtime}"}


def level_scatter(slug: str, k: int) -> dict[str, Any] | None:
    """Traces of the node map `slug` coloured by the groups of level `k` of its tree, from the map file alone (its
    leaves and tree: no discovery, no database); None without a tree. Cached until the map changes."""
    return _level_scatter(slug, int(k), _map_mtime(slug))


@st.cache_resource(show_spinner="Reading the node's discovery run...", max_entries=2)
def _level_source(url: str, node_id: int, run_key: str, encoders: tuple[str, str | None]) -> LevelSource:
    return level_source(url, node_id, choice=EncoderChoice(*encoders))


@st.cache_data(show_spinner="Naming and explaining the level's groups...", max_entries=16)
def _level_proposals(url: str, node_id: int, run_key: str, k: int, encoders: tuple[str, str | None]) -> dict[str, Any]:
    return clusters_view.build_level(_level_source(url, node_id, run_key, encoders), k)


@st.cache_data(show_spinner=False, max_entries=16)
def _stored_level(slug: str, run_key: str, k: int, mtime: float) -> list[dict[str, Any]] | None:
    return stored_level(slug, run_key, k)


def level_proposals(node_id: int, k: int) -> dict[str, Any]:
    """What the "choose_level" action stores for level `k` of the node's tree (`app.clusters_view.build_level`): the
    level as the discovery run precomputed it (`core.steps.discover.stored_level`), else (a run from before levels
    were stored) built from the run's tree, cached by (node, the map's discovery run, k, encoders); the run's
    features, tree and names are then read once per run (`_level_source`), so another level costs only its naming
    and explanations."""
    slug = slug_for(node_id)
    saved = load_map(slug)
    run_key = saved["meta"].get("run_key", "") if saved is not None else ""
    path = level_file(slug, int(k))
    stored = _stored_level(slug, run_key, int(k), path.stat().st_mtime if path.exists() else 0.0) if saved else None
    if stored is not None:
        return clusters_view.stored_level(run_key, int(k), stored)
    choice = chosen_encoders()
    return _level_proposals(db_url(), node_id, run_key, int(k), (choice.text, choice.image))


def cards(product_ids: list[int]) -> list[dict[str, Any]]:
    with factory()() as s:
        return repo.product_cards(s, product_ids=product_ids)


@st.cache_resource(show_spinner="Building the nearest-neighbour index...", max_entries=4)
def _node_search(url: str, labels: tuple[int, int], encoders: tuple[str, str | None], node_path: str) -> NodeSearch:
    return NodeSearch(url, node_path, choice=EncoderChoice(*encoders))


def node_search(node_path: str) -> NodeSearch:
    """FAISS indexes over a category's products: discovery features for neighbours, full titles for text search.

    Rebuilt when a product may have entered or left the category or changed (`labels_version`: an ingest, a relabel,
    a merge...) or another text encoder was chosen; not after a decision on a proposal.
    """
    choice = chosen_encoders()
    return _node_search(db_url(), labels_version(), (choice.text, choice.image), node_path)


def latest_job(kind: str) -> Job | None:
    """The newest job of `kind`; when it is queued or running, jobs whose process died are marked failed first
    (a write), so the pages' 2-second status fragments only read while nothing runs. Not cached."""
    job = _newest_job(kind)
    if job is None or job.status not in jobs.ACTIVE:
        return job
    with transaction(factory()) as s:
        jobs.reap(s)
    return _newest_job(kind)


def _newest_job(kind: str) -> Job | None:
    with factory()() as s:
        job = jobs.latest(s, kind=kind)
        if job is not None:
            s.expunge(job)
        return job


def model_versions() -> list[dict[str, Any]]:
    """Every model version, newest first, with whether it has stored predictions (not cached: small)."""
    with factory()() as s:
        counted = dict(
            s.execute(
                select(Prediction.model_version_id, func.count(func.distinct(Prediction.product_id))).group_by(
                    Prediction.model_version_id
                )
            ).all()
        )
        return [
            {
                "id": v.id,
                "name": v.name,
                "status": v.status,
                "created_at": v.created_at,
                "metrics": {k: x for k, x in v.metrics.items() if k not in ("test_product_ids", "per_node_f1")},
                "params": {k: x for k, x in v.params.items() if k != "node_ids"},
                "predicted": counted.get(v.id, 0),
                "version": v.version,  # what an activation states it saw (`expected`)
            }
            for v in s.scalars(select(ModelVersion).order_by(ModelVersion.id.desc()))
        ]


@st.cache_data(show_spinner="Comparing versions on their held-out products...", max_entries=16)
def _comparison(url: str, version: tuple[int, int], key: tuple, old_id: int, new_id: int) -> dict[str, Any]:
    with _factory(url)() as s:
        return compare_versions(s, old_id=old_id, new_id=new_id)


def comparison(old_id: int, new_id: int) -> dict[str, Any]:
    """Per-level and per-node scores of two versions (cached until the labels or stored predictions change)."""
    return _comparison(db_url(), data_version(), model_key(), old_id, new_id)


def maps_available() -> dict[str, str]:
    """{map slug: title} of the scatter views on disk: nodes with proposals, and the whole catalogue."""
    views = {slug_for(i): path for i, path in proposal_parents().items()}
    if map_file(ALL).exists():
        views[ALL] = "All products"
    return views


@st.cache_data(show_spinner="Loading the map...", max_entries=8)
def _scatter(
    url: str, version: tuple[int, int], key: tuple, proposals: tuple[int, int], slug: str, colour: str, depth: int, mtime: float
):
    data = _map_points(slug, mtime)
    if data is None:
        return None
    ids = data["product_ids"]
    keys, inverse = keyed(data["clusters"] if colour == "cluster" else ids)  # each group name made once per key
    extra: dict[str, Any] = {}
    with _factory(url)() as s:
        if colour == "label":
            extra["labels"] = current_labels(s, keys.tolist())
        elif colour == "prediction":
            extra["predictions"] = predicted_paths(s, model_version_id=key[0], product_ids=keys.tolist()) if key[0] else {}
        elif colour == "proposal":
            extra["proposals"] = {
                int(m): f"#{p.id} {p.name} ({p.status})"
                for p in props.list_proposals(s, parent_node_id=int(slug.split("-")[1]))
                if p.status != "superseded"  # set aside by another level of the tree
                for m in p.members
            }
    names = group_names(colour, keys, clusters=keys, depth=depth, **extra)
    most = 100 if colour in ("proposal", "cluster") else 24  # every proposal gets its own legend entry
    return {**map_view(ids, data["xy"], names, max_groups=most, inverse=inverse), "meta": data["meta"]}


def scatter(slug: str, colour: str, depth: int) -> dict[str, Any] | None:
    """Traces of the map `slug` coloured by `colour` (`app.scatter.map_view`: every product, or above
    `app.scatter.DENSITY_ABOVE` a density image and a sample), cached until the data, the model, the proposals or the
    map change; "token" names those inputs (`figure` caches the figure by it)."""
    inputs = (db_url(), data_version(), model_key(), proposals_version(), slug, colour, depth, _map_mtime(slug))
    data = _scatter(*inputs)
    return None if data is None else {**data, "token": repr(inputs)}


@st.cache_resource(show_spinner=False, max_entries=8)
def _figure(token: str, _data: dict[str, Any]):
    return map_figure(_data)


def figure(data: dict[str, Any]):
    """The Plotly figure of a map view (`app.scatter.map_figure`), built once per view and inputs ("token": shared by
    every session, which only read it) instead of on every run; without a token, built each time."""
    return _figure(data["token"], data) if data.get("token") else map_figure(data)


@st.cache_data(show_spinner=False, max_entries=16)
def _map_png(token: str, _data: dict[str, Any]) -> bytes:
    return map_image(_data)


def map_png(data: dict[str, Any]) -> bytes:
    """The map view drawn as a PNG on the server (`app.scatter.map_image`), once per view and inputs ("token", as
    `figure`); without a token, drawn each time."""
    return _map_png(data["token"], data) if data.get("token") else map_image(data)


@st.cache_resource(show_spinner=False, max_entries=4)
def _map_points(slug: str, mtime: float) -> dict[str, Any] | None:
    return load_map(slug)


def map_points(slug: str) -> dict[str, Any] | None:
    """The whole map `slug` ("product_ids", "xy" of every product; not copied per run), read once per map file: what
    a density view's box or lasso is resolved against (`app.scatter.selected_ids`)."""
    return _map_points(slug, _map_mtime(slug))


@st.cache_data(show_spinner=False, max_entries=8)
def _mapping_coverage(url: str, version: tuple[int, int]) -> list[dict[str, Any]]:
    with _factory(url)() as s:
        return mappings.coverage(s)


def mapping_coverage() -> list[dict[str, Any]]:
    """Per shop platform: products, mapped products, categories by mapping status (`db.mappings.coverage`)."""
    return _mapping_coverage(db_url(), data_version())


def mapping_platforms() -> list[str]:
    """The shop platforms whose categories are mapped onto the master taxonomy (those that do not seed it)."""
    return [row["platform"] for row in mapping_coverage() if not row["seeds_master"]]


@st.cache_data(show_spinner=False, max_entries=16)
def _mapping_table(url: str, version: tuple[int, int], platform: str) -> list[dict[str, Any]]:
    with _factory(url)() as s:
        return mappings.category_table(s, platform=platform)


def mapping_table(platform: str) -> list[dict[str, Any]]:
    """The platform's categories with product counts and their mapping (`db.mappings.category_table`)."""
    return _mapping_table(db_url(), data_version(), platform)


@st.cache_data(show_spinner=False, max_entries=8)
def _node_sources(url: str, version: tuple[int, int]) -> dict[int, list[str]]:
    with _factory(url)() as s:
        return mappings.node_sources(s)


def node_sources() -> dict[int, list[str]]:
    """{master node id: ["platform: category path", ...]}: the confirmed mappings onto each node."""
    return _node_sources(db_url(), data_version())


@st.cache_data(show_spinner=False, max_entries=64)
def _category_samples(url: str, version: tuple[int, int], category_id: int, limit: int) -> list[dict[str, Any]]:
    with _factory(url)() as s:
        ids = s.scalars(
            select(Product.id)
            .where(Product.platform_category_id == category_id)
            .order_by(case((Product.image_status == "ok", 0), else_=1), Product.id)
            .limit(limit)
        ).all()
        return repo.product_cards(s, product_ids=list(ids))


def category_samples(category_id: int, limit: int = 8) -> list[dict[str, Any]]:
    """Cards of up to `limit` products of a platform category, those with a photo first."""
    return _category_samples(db_url(), data_version(), category_id, limit)


def audit_events(kinds: tuple[str, ...] | None = None, limit: int = 15) -> list[AuditEvent]:
    """The newest audit events (of the actions `kinds` only, when given); not cached: an Undo shows at once."""
    with factory()() as s:
        events = repo.audit_history(s, limit=limit, actions=kinds)
        s.expunge_all()
        return events


@st.cache_data(show_spinner=False, max_entries=4)
def _standards(url: str, version: tuple[int, int]) -> list[str]:
    with _factory(url)() as s:
        return list(s.scalars(select(Platform.name).where(Platform.kind == "standard").order_by(Platform.name)))


def standard_names() -> list[str]:
    """The names of the imported standard taxonomies (platforms of kind "standard", e.g. "google")."""
    return _standards(db_url(), data_version())


@st.cache_data(show_spinner=False, max_entries=8)
def _standard_table(url: str, version: tuple[int, int], standard: str) -> list[dict[str, Any]]:
    with _factory(url)() as s:
        return standards.standard_table(s, standard=standard)


def standard_table(standard: str) -> list[dict[str, Any]]:
    """Every active master node with its mapping onto `standard` (`db.standards.standard_table`)."""
    return _standard_table(db_url(), data_version(), standard)


@st.cache_data(show_spinner=False, max_entries=4)
def _standard_categories(url: str, version: tuple[int, int], standard: str) -> dict[int, dict[str, str]]:
    with _factory(url)() as s:
        return {c.id: {"code": c.code or "", "path": c.path} for c in standards.categories_of(s, standard)}


def standard_categories(standard: str) -> dict[int, dict[str, str]]:
    """{category id: {"code": the standard's own id, "path": its path}} of every category of `standard`, by path."""
    return _standard_categories(db_url(), data_version(), standard)


def category_proposal(category_id: int) -> dict[str, Any] | None:
    """The latest proposal made from a platform category ("no master equivalent" proposed as a new master category):
    id, name, status, the parent's path and the created node's; not cached, so a proposal shows at once."""
    with factory()() as s:
        proposal = mappings.category_proposal(s, category_id)
        if proposal is None:
            return None
        node = lambda node_id: s.get(TaxonomyNode, node_id) if node_id is not None else None
        parent, created = node(proposal.parent_node_id), node(proposal.created_node_id)
        return {
            "id": proposal.id,
            "name": proposal.name,
            "status": proposal.status,
            "parent": parent.path if parent else None,
            "created_node_id": proposal.created_node_id,
            "created": created.path if created else None,
        }
