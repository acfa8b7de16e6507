"""The Review page: scoring in the background, decisions one product at a time, skip, filters, and Undo."""

from __future__ import annotations

from sqlalchemy import select

from db.models import Job
from db.session import get_sessionmaker
from tests.app.helpers import item_id, label_path, node_id, repo_title, run_page


def test_review_page_without_a_queue_starts_scoring_in_the_background(app_env, no_spawn):
    at = run_page("review")
    assert "No review queue yet" in at.info[0].value
    at.button(key="review_rescore").click().run()
    assert not at.exception, at.exception
    with get_sessionmaker(app_env)() as s:
        job = s.scalars(select(Job)).one()
    assert job.kind == "review" and job.status == "queued" and no_spawn == [job.id]
    at.button(key="review_rescore").click().run()  # a second start is refused, with the reason
    assert any("already running" in e.value for e in at.error)


def test_review_page_accept_keep_choose_skip_and_undo(app_env, tree, with_review):
    (p1, l1, s1), (p2, l2, _), (p3, l3, _) = with_review
    key = lambda action, pid: f"review_{action}_{item_id(app_env, pid)}"  # noqa: E731
    at = run_page("review")
    assert {m.label: m.value for m in at.metric}["To review"] == "3"
    assert at.subheader[0].value == repo_title(app_env, p1)  # the highest score first
    at.button(key=key("accept", p1)).click().run()
    assert label_path(app_env, p1) == (s1, "human")
    assert at.subheader[0].value == repo_title(app_env, p2) and "labelled" in at.success[0].value
    at.button(key=key("skip", p2)).click().run()
    assert at.subheader[0].value == repo_title(app_env, p3)
    target = tree.leaves()[0]
    at.selectbox(key=f"review_choice_{item_id(app_env, p3)}").set_value(node_id(app_env, target)).run()
    at.button(key=key("choose", p3)).click().run()
    assert label_path(app_env, p3) == (target, "human")
    assert at.subheader[0].value == repo_title(app_env, p2)  # only the skipped one is left
    at.button(key=key("skip", p2)).click().run()  # skipping the last one starts the round again
    assert at.subheader[0].value == repo_title(app_env, p2)
    at.button(key=key("keep", p2)).click().run()
    assert label_path(app_env, p2) == (l2, "human")
    assert "Nothing left to review" in at.success[-1].value
    undo = next(b for b in at.button if b.key and b.key.startswith("undo_"))
    undo.click().run()
    assert label_path(app_env, p2) == (l2, "platform")  # back to the platform's label, and open again
    assert {m.label: m.value for m in at.metric}["To review"] == "1"


def test_review_page_filters_by_score(app_env, with_review):
    at = run_page("review")
    at.slider(key="review_min").set_value(0.75).run()
    assert "2 shown" in at.subheader[-2].value
