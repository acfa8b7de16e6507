"""Review decisions (accept the suggestion / keep the label / choose a path) and their undo, on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from db import actions, curation, repo, review
from db.models import AuditEvent, Label, Product, ReviewItem
from db.repo import CurationError
from db.session import transaction


@pytest.fixture
def queue(factory):
    """Three products labelled Heels by the platform; the model suggests Flats for them."""
    with transaction(factory) as s:
        plat = repo.get_or_create_platform(s, name="shop")
        heels = repo.ensure_path(s, ("Footwear", "Shoes", "Heels"))[0]
        flats = repo.ensure_path(s, ("Footwear", "Shoes", "Flats"))[0]
        sandals = repo.ensure_path(s, ("Footwear", "Sandals"))[0]
        ids = []
        for i in range(3):
            p = Product(
                platform_id=plat.id, external_id=str(i), title=f"ballet flat {i}", description="soft sole", content_hash="h"
            )
            s.add(p)
            s.flush()
            s.add(Label(product_id=p.id, node_id=heels.id, source="platform"))
            ids.append(p.id)
        rows = [
            {
                "product_id": pid,
                "score": 0.9 - 0.1 * k,
                "self_confidence": 0.1 + 0.1 * k,
                "margin": -0.5,
                "flagged": True,
                "label_node_id": heels.id,
                "suggested_node_id": flats.id,
                "suggested_confidence": 0.8,
                "levels": [],
            }
            for k, pid in enumerate(ids)
        ]
        assert review.replace_open_items(s, run_key="r1", rows=rows) == 3
        items = [i["id"] for i in review.queue(s)]
    return {"products": ids, "items": items, "heels": heels.id, "flats": flats.id, "sandals": sandals.id}


def decide(factory, **kw):
    with transaction(factory) as s:
        review.decide(s, actor="ann", **kw)


def label_of(factory, pid):
    with factory() as s:
        node, source = repo.product_label(s, pid)
        return node.path, source


def undo_last(factory):
    with factory() as s:
        last = s.scalar(select(func.max(AuditEvent.id)))
    with transaction(factory) as s:
        actions.undo(s, event_id=last, actor="ann")


def test_queue_is_ranked_and_filtered(factory, queue):
    with factory() as s:
        items = review.queue(s)
        assert [i["product_id"] for i in items] == queue["products"]  # highest score first
        assert items[0]["suggested"] == "Footwear > Shoes > Flats" and items[0]["label"] == "Footwear > Shoes > Heels"
        assert items[0]["description"] == "soft sole" and items[0]["platform"] == "shop"
        assert len(review.queue(s, min_score=0.75)) == 2
        assert len(review.queue(s, node_id=queue["heels"])) == 3 and review.queue(s, node_id=queue["sandals"]) == []
        assert review.queue(s, platform="other") == []
        assert review.counts(s) == {"open": 3}


def test_accept_keep_choose_write_human_labels_and_undo(factory, queue):
    first, second, third = queue["items"]
    decide(factory, item_id=first, decision="accept")
    decide(factory, item_id=second, decision="keep")
    decide(factory, item_id=third, decision="choose", node_id=queue["sandals"])
    assert label_of(factory, queue["products"][0]) == ("Footwear > Shoes > Flats", "human")
    assert label_of(factory, queue["products"][1]) == ("Footwear > Shoes > Heels", "human")
    assert label_of(factory, queue["products"][2]) == ("Footwear > Sandals", "human")
    with factory() as s:
        assert review.counts(s) == {"accepted": 1, "kept": 1, "relabelled": 1}
        assert review.queue(s) == [] and len(review.queue(s, status="accepted")) == 1
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "review_decision")).all()
        assert len(events) == 3 and all(e.actor == "ann" for e in events)
    undo_last(factory)  # the choice of Sandals
    assert label_of(factory, queue["products"][2]) == ("Footwear > Shoes > Heels", "platform")
    with factory() as s:
        assert s.get(ReviewItem, third).status == "open"
        assert s.scalar(select(Label).where(Label.product_id == queue["products"][2], Label.source == "human")) is None


def test_decisions_refuse_bad_requests_and_change_nothing(factory, queue):
    first = queue["items"][0]
    with pytest.raises(CurationError, match="Unknown review decision"):
        decide(factory, item_id=first, decision="maybe")
    with pytest.raises(CurationError, match="Choose a category"):
        decide(factory, item_id=first, decision="choose")
    with transaction(factory) as s:
        curation.retire_node(s, node_id=queue["sandals"], target_id=None, actor="t")
    with pytest.raises(CurationError, match="retired"):
        decide(factory, item_id=first, decision="choose", node_id=queue["sandals"])
    decide(factory, item_id=first, decision="accept")
    with pytest.raises(CurationError, match="already decided"):
        decide(factory, item_id=first, decision="keep")
    with pytest.raises(CurationError, match="Unknown review item"):
        decide(factory, item_id=99999, decision="keep")
    assert label_of(factory, queue["products"][0]) == ("Footwear > Shoes > Flats", "human")


def test_undo_is_refused_after_a_later_relabel(factory, queue):
    decide(factory, item_id=queue["items"][0], decision="accept")
    with factory() as s:
        decision = s.scalar(select(func.max(AuditEvent.id)))
    with transaction(factory) as s:
        curation.relabel_product(s, product_id=queue["products"][0], node_id=queue["sandals"], actor="bob")
    with pytest.raises(CurationError, match="relabelled again later"):
        with transaction(factory) as s:
            actions.undo(s, event_id=decision, actor="ann")


def test_a_new_scoring_run_replaces_open_items_and_keeps_decisions(factory, queue):
    decide(factory, item_id=queue["items"][0], decision="keep")
    rows = [
        {
            "product_id": pid,
            "score": 0.5,
            "self_confidence": 0.5,
            "margin": -0.1,
            "flagged": False,
            "label_node_id": queue["heels"],
            "suggested_node_id": queue["flats"],
            "suggested_confidence": 0.6,
            "levels": [],
        }
        for pid in queue["products"]
    ]
    with transaction(factory) as s:
        assert review.replace_open_items(s, run_key="r2", rows=rows) == 2  # the decided product is not queued again
    with factory() as s:
        assert review.counts(s) == {"open": 2, "kept": 1}
        assert {i["product_id"] for i in review.queue(s)} == set(queue["products"][1:])


def test_undo_of_an_added_category_is_refused_while_review_items_point_at_it(factory, queue):
    with transaction(factory) as s:
        node = curation.add_node(s, parent_id=queue["sandals"], name="Slides", actor="t")
        event = s.scalar(select(func.max(AuditEvent.id)))
        item = s.get(ReviewItem, queue["items"][0])
        item.suggested_node_id = node.id
    with pytest.raises(CurationError, match="review items"):
        with transaction(factory) as s:
            actions.undo(s, event_id=event, actor="t")


def test_two_people_deciding_the_same_item_one_wins(factory, queue):
    first = queue["items"][0]
    late = factory()
    late.get(ReviewItem, first)  # Bob's page loaded the item while it was open
    decide(factory, item_id=first, decision="accept")  # Ann decides first
    with pytest.raises(CurationError, match="already decided|just decided"):
        review.decide(late, item_id=first, decision="keep", actor="bob")
    late.rollback()
    late.close()
    assert label_of(factory, queue["products"][0]) == ("Footwear > Shoes > Flats", "human")
    with factory() as s:
        assert s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "review_decision")) == 1


def test_undo_refuses_to_restore_a_retired_category(factory, queue):
    with transaction(factory) as s:
        curation.relabel_product(s, product_id=queue["products"][0], node_id=queue["sandals"], actor="t")
    decide(factory, item_id=queue["items"][0], decision="accept")  # human label Sandals -> Flats
    with factory() as s:
        decision = s.scalar(select(func.max(AuditEvent.id)))
    with transaction(factory) as s:
        curation.retire_node(s, node_id=queue["sandals"], target_id=queue["flats"], actor="t")
    with pytest.raises(CurationError, match="retired since"):
        with transaction(factory) as s:
            actions.undo(s, event_id=decision, actor="ann")
    assert label_of(factory, queue["products"][0]) == ("Footwear > Shoes > Flats", "human")
