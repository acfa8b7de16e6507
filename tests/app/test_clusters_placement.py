"""Where a proposal's products sit today among the node's existing children (`db.repo.child_shares`), and the warning
the Clusters page shows when a proposal's name repeats an existing child that already holds most of its products
(the default run on Footwear > Shoes proposes "Sports Shoes"-like groups under a node that has a Sports Shoes child)."""

from __future__ import annotations

import pytest

from db import proposals as props
from db import repo
from db.session import get_sessionmaker, transaction
from tests.app.helpers import node_id, run_page
from tests.app.shown import shown


@pytest.fixture
def two_children(app_env, tree):
    """A category of depth 2 with two leaves holding >= 3 and >= 1 products: (parent id, [(leaf name, product ids)])."""
    for parent in tree.paths(2):
        kids = [p for p in tree.leaves() if p.startswith(parent + " > ") and tree.products(p) >= 1]
        kids.sort(key=tree.products, reverse=True)
        if len(kids) >= 2 and tree.products(kids[0]) >= 3:
            break
    else:
        raise AssertionError("the app slice has no category with two filled leaves: the fixture needs another slice")
    with get_sessionmaker(app_env)() as s:
        held = []
        for kid in kids[:2]:
            products, _ = repo.products_in_node(s, node_id=node_id(app_env, kid), limit=3)
            held.append((kid.rsplit(" > ", 1)[-1], [p.id for p in products]))
    return node_id(app_env, parent), held


def test_child_shares_counts_products_by_the_child_their_label_is_under(app_env, two_children, monkeypatch):
    parent, [(a, a_ids), (b, b_ids)] = two_children
    members = a_ids[:3] + b_ids[:1]
    with get_sessionmaker(app_env)() as s:
        assert repo.child_shares(s, members, parent) == [(a, 3), (b, 1)]
        assert repo.child_shares(s, [], parent) == []
    with transaction(get_sessionmaker(app_env)) as s:  # one product moved up to the parent itself: not under a child
        repo.set_label(s, product_id=a_ids[0], node_id=parent, source="human", actor="tester")
    with get_sessionmaker(app_env)() as s:
        assert repo.child_shares(s, members, parent) == [(a, 2), (b, 1)]
    monkeypatch.setattr(repo, "SHARES_CHUNK", 3)  # a proposal larger than one statement's ids: the chunks add up
    with get_sessionmaker(app_env)() as s:
        assert repo.child_shares(s, members, parent) == [(a, 2), (b, 1)]
        assert repo.child_shares(s, members * 2, parent) == [(a, 2), (b, 1)]  # a product once, however often given


def propose(url, parent, members, *, name, existing=None):
    with transaction(get_sessionmaker(url)) as s:
        props.replace_open_proposals(
            s,
            parent_node_id=parent,
            run_key="t",
            clusters=[
                {
                    "name": name,
                    "members": members,
                    "coords": [[i, 0] for i in range(len(members))],
                    "suggested_names": [name],
                    "scores": {"size": len(members), "coherence": 0.8, "top_terms": ["x"], "existing_child": existing},
                }
            ],
        )


def test_the_page_says_where_a_proposals_products_are_and_warns_on_a_repeated_child(app_env, two_children):
    parent, [(a, a_ids), (b, b_ids)] = two_children
    members = a_ids[:3] + b_ids[:1]
    propose(app_env, parent, members, name=f"Men {a}", existing=a)
    at = run_page("clusters")
    assert not at.exception, at.exception
    captions = [shown(c.value) for c in at.caption]
    assert f"Its 4 products today: {a} 3 (75%), {b} 1 (25%)" in captions
    assert [shown(w.value) for w in at.warning] == [
        f"Named like the existing category '{a}', which already holds 75% of its products: accepting makes a second "
        "category beside it. Rename it to what sets it apart, or reject it if it is that category."
    ]


def test_no_warning_when_the_named_child_holds_half_or_less(app_env, two_children):
    parent, [(a, a_ids), (b, b_ids)] = two_children
    propose(app_env, parent, a_ids[:1] + b_ids[:1], name=f"New {b}", existing=b)
    at = run_page("clusters")
    assert not at.exception, at.exception
    assert f"Its 2 products today: {a} 1 (50%), {b} 1 (50%)" in [shown(c.value) for c in at.caption]
    assert not at.warning
