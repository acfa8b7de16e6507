"""The Clusters page on a node whose discovery run kept its named tree: the granularity control ("Number of
proposals"), the map re-coloured by a level, making a level the open proposals (confirmed when they were curated,
undoable), a proposal's sub-groups, explanation and name ideas, and accepting it with its sub-groups.

The tree is fitted here over real features (the chosen text encoder) of the "Apparel" products of the 80-product
slice, with one leaf cluster per hidden article type (read from the slice file), so what each level groups is known
from the test's own data: every group is a union of whole article types.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from app import cache
from core.discover.clustering import cluster_coherence
from core.discover.levels import Hierarchy
from core.steps.discover import HIERARCHY, LeafRun, NodeRun, level_clusters, name_alternatives, node_encoder, node_features
from core.steps.maps import save_map, slug_for
from db import actions, repo
from db import proposals as props
from db.models import AuditEvent, Label, Proposal, TaxonomyNode
from db.session import get_sessionmaker, transaction
from db.users import operator
from tests.app.helpers import chart_traces, run_page, slice_paths
from tests.app.shown import shown

NODE = "Apparel"
GOOGLE = """1 - Apparel & Accessories
2 - Apparel & Accessories > Clothing
3 - Apparel & Accessories > Clothing > Shirts & Tops
4 - Apparel & Accessories > Clothing > Pants
"""


def fit_tree(url: str, paths: dict[str, str], *, node_path: str = NODE, k: int | None = None) -> dict:
    """Fit the tree of `node_path` over one leaf cluster per hidden article type (`paths`: {external id: category
    path}, from the catalogue file), store the proposals of level `k` (default: the tree's own default) as discovery
    would, and save the node's map with the tree; returns what the tests check against."""
    factory = get_sessionmaker(url)
    with factory() as s:
        node = repo.node_by_path(s, node_path)
        products, _ = repo.products_in_node(s, node_id=node.id, limit=1000)
        rows = sorted((p.id, paths[p.external_id], p.title, p.brand) for p in products)
        children = [c.name for c in props.child_names(s, node_id=node.id)]
    ids = np.array([r[0] for r in rows])
    types = sorted({r[1] for r in rows})
    leaves = np.array([types.index(r[1]) for r in rows])
    titles, brands = [r[2] for r in rows], [r[3] for r in rows]
    encoder = node_encoder()
    X = node_features(factory, ids, encoder=encoder)
    hier = Hierarchy(node_name=node_path.rsplit(" > ", 1)[-1], taken=children, **HIERARCHY).fit(X, leaves, titles, brands=brands)
    xy = np.random.default_rng(0).normal(size=(len(ids), 2)).astype(np.float32)
    run = LeafRun(leaves, xy, *cluster_coherence(X, leaves))
    node_run = NodeRun(node_path, ids, X, titles, brands, children)
    clusters = level_clusters(run, hier, node_run, k=k, alternatives=name_alternatives(factory, encoder), text_dim=encoder.dim)
    with transaction(factory) as s:
        props.replace_open_proposals(s, parent_node_id=node.id, run_key="t", clusters=clusters)
    tree = hier.as_dict()
    save_map(slug_for(node.id), product_ids=ids, xy=xy, clusters=leaves, meta={"node": node_path, "run_key": "t", "tree": tree})
    by_type = {t: {int(i) for i, lab in zip(ids, leaves) if lab == n} for n, t in enumerate(types)}
    return {"id": node.id, "slug": slug_for(node.id), "ids": ids, "by_type": by_type, "tree": tree, "k": k or tree["default_k"]}


@pytest.fixture(scope="module")
def shared_embeddings(tmp_path_factory):
    """One embedding cache for the module's tests (the same products and names each time: embedded once)."""
    return tmp_path_factory.mktemp("embeddings")


@pytest.fixture
def google_file(app_env, tmp_path, monkeypatch, shared_embeddings):
    """A four-line Google Product Taxonomy (the alternatives' "google" source); the app's DATA_DIR (`app_env`) uses the
    module's embedding cache."""
    (tmp_path / "embeddings").symlink_to(shared_embeddings, target_is_directory=True)
    path = tmp_path / "google.txt"
    path.write_text(GOOGLE)
    monkeypatch.setenv("GOOGLE_TAXONOMY_FILE", str(path))
    return path


@pytest.fixture
def with_tree(app_env, app_slice, google_file):
    """The node's proposals at the tree's default level."""
    return fit_tree(app_env, slice_paths(pd.read_parquet(app_slice)))


def open_proposals(url: str, node_id: int) -> list[Proposal]:
    with get_sessionmaker(url)() as s:
        return [p for p in props.list_proposals(s, parent_node_id=node_id) if p.status == "open"]


def others(tree: dict) -> list[int]:
    """The levels the control offers besides the one the proposals show (the default), coarsest first."""
    return [
        k for k in range(HIERARCHY["k_min"], len(tree["leaf_ids"]) + 1) if str(k) in tree["levels"] and k != tree["default_k"]
    ]


def whole_types(groups: list[set[int]], by_type: dict[str, set[int]]) -> bool:
    """Whether every article type's products sit in exactly one of `groups` (each group a union of whole types)."""
    return all(sum(1 for g in groups if members & g) == 1 and any(members <= g for g in groups) for members in by_type.values())


def test_the_control_offers_the_trees_levels_and_starts_at_the_default_chosen_without_labels(app_env, with_tree):
    at = run_page("clusters")
    slider = at.select_slider(key=f"clu_level_{with_tree['slug']}")
    n_types = len(with_tree["by_type"])  # one leaf per article type: the tree holds levels 1 .. min(12, types)
    default = with_tree["tree"]["default_k"]
    expected = list(range(min(HIERARCHY["k_min"], default), min(HIERARCHY["k_max"], n_types) + 1))
    assert [int(o) for o in slider.options] == expected
    assert int(slider.value) == default
    assert any(f"default {default}, chosen without labels" in shown(c.value) for c in at.caption)
    assert at.radio(key=f"clu_colour_{with_tree['slug']}").value == "level"


def test_a_new_level_recolours_the_map_from_the_stored_tree_without_discovery(app_env, with_tree, monkeypatch):
    def no_discovery(*args, **kwargs):
        raise AssertionError("re-colouring must not read features or re-run discovery")

    monkeypatch.setattr(cache, "level_source", no_discovery)
    at = run_page("clusters")
    at.radio(key=f"clu_colour_{with_tree['slug']}").set_value("proposal").run()
    before = len(open_proposals(app_env, with_tree["id"]))
    for k in others(with_tree["tree"])[:1] + others(with_tree["tree"])[-1:]:  # the coarsest and the finest but the default
        at.select_slider(key=f"clu_level_{with_tree['slug']}").set_value(k).run()
        assert not at.exception, at.exception
        assert at.radio(key=f"clu_colour_{with_tree['slug']}").value == "level"  # a new level colours the map
        traces = chart_traces(at)
        groups = [set(t["customdata"]) for t in traces]
        assert sum(len(g) for g in groups) == len(with_tree["ids"])  # every product of the node, once
        assert len(traces) == len(with_tree["tree"]["levels"][str(k)])  # one colour per group of that level
        assert whole_types(groups, with_tree["by_type"])
    assert len(open_proposals(app_env, with_tree["id"])) == before  # looking at a level stores nothing


def show_level(url: str, fitted: dict, k: int):
    """Pick level `k` on the Clusters page and press "Show these N proposals"; checks that the node's open proposals
    are then the groups the map showed at that level, each of whole hidden types; returns (page, proposals)."""
    at = run_page("clusters")
    at.select_slider(key=f"clu_level_{fitted['slug']}").set_value(k).run()
    at.button(key="clu_use_level").click().run()
    assert not at.exception, at.exception
    now = open_proposals(url, fitted["id"])
    assert {p.scores["level"]["k"] for p in now} == {k}
    stored = sorted((g["name"], g["size"]) for g in fitted["tree"]["levels"][str(k)])
    assert sorted((p.name, len(p.members)) for p in now) == stored  # the proposals are the groups the map showed
    assert whole_types([set(p.members) for p in now], fitted["by_type"])
    return at, now


def test_showing_a_level_makes_its_groups_the_open_proposals_and_undo_brings_the_earlier_ones_back(app_env, with_tree):
    earlier = sorted((p.id, p.name) for p in open_proposals(app_env, with_tree["id"]))
    finest = others(with_tree["tree"])[-1]
    at, now = show_level(app_env, with_tree, finest)
    assert sorted(m for p in now for m in p.members) == sorted(with_tree["ids"].tolist())
    assert f"{len(now)} open of {len(now)} proposals" in " ".join(shown(c.value) for c in at.caption)
    with get_sessionmaker(app_env)() as s:
        assert {s.get(Proposal, i).status for i, _ in earlier} == {"superseded"}
        event = s.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
    assert event.action == "choose_level" and event.actor == "merchandiser"
    at.button(key=f"undo_{event.id}").click().run()
    assert sorted((p.id, p.name) for p in open_proposals(app_env, with_tree["id"])) == earlier


def test_showing_a_level_over_curated_proposals_asks_first_and_undo_restores_the_rename(app_env, with_tree):
    first = open_proposals(app_env, with_tree["id"])[0]
    with transaction(get_sessionmaker(app_env)) as s:
        actions.perform(s, "rename_proposal", user=operator("cora"), proposal_id=first.id, name="Kept Name")
    at = run_page("clusters")
    coarse = others(with_tree["tree"])[0]
    at.select_slider(key=f"clu_level_{with_tree['slug']}").set_value(coarse).run()
    at.button(key="clu_use_level").click().run()
    assert any(f"#{first.id} renamed" in shown(w.value) for w in at.warning)  # asked, nothing done yet
    assert first.id in {p.id for p in open_proposals(app_env, with_tree["id"])}
    at.button(key="confirm_action").click().run()
    assert {p.scores["level"]["k"] for p in open_proposals(app_env, with_tree["id"])} == {coarse}
    with transaction(get_sessionmaker(app_env)) as s:
        last = s.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
        actions.undo(s, event_id=last, actor="cora")
    back = {p.id: p.name for p in open_proposals(app_env, with_tree["id"])}
    assert back[first.id] == "Kept Name"


def open_subgroups(at, proposal_id: int, is_open: bool = True) -> None:
    """Open (or close) the proposal's "Sub-groups" expander, as a click on it does (it reruns: drawn only when open)."""
    at.session_state[f"clu_subs_open_{proposal_id}"] = is_open
    at.run()
    assert not at.exception, at.exception


def pick_with_subgroups(url: str, node_id: int) -> Proposal:
    return next(p for p in open_proposals(url, node_id) if len(p.scores.get("subgroups", [])) >= 2)


def test_accept_with_sub_groups_creates_the_children_and_labels_each_member_at_its_sub_group(app_env, app_slice, google_file):
    made = fit_tree(app_env, slice_paths(pd.read_parquet(app_slice)), k=2)  # coarse: its proposals hold sub-groups
    proposal = pick_with_subgroups(app_env, made["id"])
    subs = proposal.scores["subgroups"]
    at = run_page("clusters")
    at.selectbox(key="clu_proposal").set_value(proposal.id).run()
    assert any(f"Sub-groups ({len(subs)})" in e.label for e in at.expander)
    at.text_input(key=f"clu_name_{proposal.id}").input("New Line").run()
    open_subgroups(at, proposal.id)
    at.text_input(key=f"clu_sub_{proposal.id}_0").input("First Part").run()
    open_subgroups(at, proposal.id, False)  # closed: its boxes are not drawn, what was typed is kept
    assert f"clu_sub_{proposal.id}_0" not in [w.key for w in at.text_input]
    at.checkbox(key=f"clu_subs_{proposal.id}").check().run()
    at.button(key="clu_accept").click().run()
    assert any(f"and its {len(subs)} sub-groups as child categories" in shown(w.value) for w in at.warning)
    at.button(key="confirm_action").click().run()
    assert not at.exception, at.exception
    names = ["First Part", *(s["name"] for s in subs[1:])]
    with get_sessionmaker(app_env)() as s:
        node = repo.node_by_path(s, f"{NODE} > New Line")
        children = {c.name: c.id for c in props.child_names(s, node_id=node.id)}
        assert sorted(children) == sorted(names)
        labelled = {nid: set(s.scalars(select(Label.product_id).where(Label.node_id == nid))) for nid in children.values()}
        at_node = set(s.scalars(select(Label.product_id).where(Label.node_id == node.id)))
    in_subs = set()
    for name, sub in zip(names, subs):
        assert labelled[children[name]] == set(sub["members"])
        in_subs |= set(sub["members"])
    assert at_node == set(proposal.members) - in_subs
    whole = {t: m for t, m in made["by_type"].items() if m <= set(proposal.members)}
    assert whole_types(list(labelled.values()) + ([at_node] if at_node else []), whole)  # sub-groups of whole types


def test_two_sub_groups_of_one_name_are_refused_with_one_line_and_nothing_is_written(app_env, app_slice, google_file):
    made = fit_tree(app_env, slice_paths(pd.read_parquet(app_slice)), k=2)
    proposal = pick_with_subgroups(app_env, made["id"])
    at = run_page("clusters")
    at.selectbox(key="clu_proposal").set_value(proposal.id).run()
    open_subgroups(at, proposal.id)
    at.text_input(key=f"clu_sub_{proposal.id}_0").input("Same").run()
    at.text_input(key=f"clu_sub_{proposal.id}_1").input("same").run()
    at.checkbox(key=f"clu_subs_{proposal.id}").check().run()
    at.button(key="clu_accept").click().run()
    at.button(key="confirm_action").click().run()
    assert "Sub-groups 1 and 2 are both named 'same'" in shown(at.error[0].value)
    with get_sessionmaker(app_env)() as s:
        assert s.get(Proposal, proposal.id).status == "open"
        assert s.scalar(select(TaxonomyNode.id).where(TaxonomyNode.name == "Same")) is None


def test_a_proposal_shows_its_explanation_and_offers_the_nearest_names_in_one_click(app_env, with_tree):
    proposal = open_proposals(app_env, with_tree["id"])[0]
    expl = proposal.scores["explanation"]
    at = run_page("clusters")
    at.selectbox(key="clu_proposal").set_value(proposal.id).run()
    assert "Most typical" not in " ".join(shown(m.value) for m in at.markdown)  # drawn when its expander is opened
    at.session_state[f"clu_why_open_{proposal.id}"] = True
    at.run()
    text = " ".join(shown(m.value) for m in at.markdown)
    assert "Most typical" in text and "Most doubtful" in text
    assert f"Why not its nearest sibling, {expl['nearest_sibling']}" in text
    if expl["more_there"]:  # a term more common in the sibling: its share there first, this group's after
        t = expl["more_there"][0]
        said = f"{t['term']} ({t['share_there']:.0%} here, {t['share_here']:.0%} there)"
        assert said in " ".join(shown(c.value) for c in at.caption)
    ideas = [b for b in at.button if b.key and b.key.startswith(f"clu_idea_{proposal.id}_")]
    sources = {a["source"] for a in proposal.scores["alternatives"]}
    assert sources == {"taxonomy", "google"}  # both sources were offered by the run
    google = next(a for a in proposal.scores["alternatives"] if a["source"] == "google")
    button = next(b for b in ideas if shown(b.label).startswith(f"{google['name']} · Google"))
    button.click().run()
    assert at.text_input(key=f"clu_name_{proposal.id}").value == google["name"]


def test_a_viewer_sees_the_level_and_accept_buttons_disabled(app_env, with_tree):
    at = run_page("clusters", role="viewer")
    at.select_slider(key=f"clu_level_{with_tree['slug']}").set_value(others(with_tree["tree"])[0]).run()
    assert at.button(key="clu_use_level").disabled and at.button(key="clu_accept").disabled
