"""Sign-in in the app (app/auth.py, app/main.py): nothing but the sign-in form before it, wrong passwords refused
with one message, sessions that expire, a viewer's session refused by the server, errors shown by id only."""

from __future__ import annotations

import logging
import re
import time

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from app import auth
from db.models import AuditEvent, ReviewItem
from db.session import get_sessionmaker, transaction
from db.users import change_role, disable_user
from tests.app.helpers import PEOPLE, ROOT, node_id, run_page, signed_in

REFUSED = "Sign-in failed: unknown name or wrong password."  # written here, not read from db.users


def shown(markdown: str) -> str:
    """What a reader sees of escaped Markdown (app.text.md): backslash escapes and word joiners resolved."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def main_app() -> AppTest:
    return AppTest.from_file(ROOT / "app" / "main.py", default_timeout=60)


def sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input[0].set_value(name)
    at.text_input[1].set_value(password)
    at.button[0].click()
    return at.run()


def shows_only_the_sign_in_form(at: AppTest) -> bool:
    labels = [t.label for t in at.text_input]
    return (
        [t.value for t in at.title] == ["Taxonomy Curator"]
        and labels == ["Name", "Password"]
        and at.text_input[1].proto.type == at.text_input[1].proto.PASSWORD
        and not at.metric
        and not at.dataframe
        and not at.sidebar.text
    )


def audit_count(url: str) -> int:
    with get_sessionmaker(url)() as s:
        return s.scalar(select(func.count(AuditEvent.id)))


def test_before_sign_in_no_page_shows_anything_but_the_sign_in_form(app_env):
    at = main_app().run()
    assert not at.exception, at.exception
    assert shows_only_the_sign_in_form(at)
    for page in sorted((ROOT / "pages").glob("*.py")):  # asking for any page directly: still only the form
        at.switch_page(f"../pages/{page.name}").run()
        assert not at.exception, at.exception
        assert shows_only_the_sign_in_form(at), page.name


def test_a_wrong_password_is_refused_like_an_unknown_name_and_the_right_one_signs_in(app_env):
    name, password = PEOPLE["curator"]
    at = sign_in(main_app().run(), name, password + "!")
    assert [e.value for e in at.error] == [REFUSED] and shows_only_the_sign_in_form(at)
    at = sign_in(at, "nobody", password)
    assert [e.value for e in at.error] == [REFUSED] and shows_only_the_sign_in_form(at)
    at = sign_in(at, name, password)
    assert not at.exception, at.exception
    assert at.title[0].value == "Overview" and not at.error
    assert [t.value for t in at.sidebar.text][0] == f"Signed in as {name} (curator)"


def test_sign_out_forgets_the_session(app_env):
    at = signed_in(main_app()).run()
    assert at.title[0].value == "Overview"
    at.sidebar.button(key="sign_out").click().run()
    assert shows_only_the_sign_in_form(at) and auth.SESSION_KEY not in at.session_state


@pytest.mark.parametrize(
    ("field", "age", "env"),
    [
        ("seen_at", 31 * 60, {}),  # idle for more than the default 30 min
        ("signed_in_at", 8 * 3600 + 60, {}),  # signed in more than the default 8 h ago
        ("seen_at", 6 * 60, {"CURATOR_SESSION_IDLE_MINUTES": "5"}),  # the idle time set by the environment
    ],
)
def test_a_session_expires_after_its_time(app_env, monkeypatch, field, age, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    at = signed_in(main_app())
    at.session_state[auth.SESSION_KEY][field] = time.time() - age
    at.run()
    assert shows_only_the_sign_in_form(at) and "expired" in at.info[0].value


def test_a_session_not_yet_expired_stays_signed_in(app_env):
    at = signed_in(main_app())
    at.session_state[auth.SESSION_KEY]["seen_at"] = time.time() - 29 * 60
    at.run()
    assert at.title[0].value == "Overview"


def test_a_user_disabled_meanwhile_is_signed_out_at_the_next_run(app_env):
    at = signed_in(main_app(), "curator").run()
    assert at.title[0].value == "Overview"
    with transaction(get_sessionmaker(app_env)) as s:
        disable_user(s, actor="merchandiser", name=PEOPLE["curator"][0])
    at.run()
    assert shows_only_the_sign_in_form(at) and "disabled" in at.info[0].value


def test_the_server_refuses_a_viewer_sessions_review_decision_and_writes_nothing(app_env, with_review):
    pid = with_review[0][0]
    with get_sessionmaker(app_env)() as s:
        item = s.scalar(select(ReviewItem).where(ReviewItem.product_id == pid))
        item_id, events = item.id, audit_count(app_env)
    at = run_page("review", role="curator")  # the page as a curator saw it ...
    assert not at.button(key=f"review_accept_{item_id}").disabled
    with transaction(get_sessionmaker(app_env)) as s:  # ... who is made a viewer before clicking (a stale page)
        change_role(s, actor="admin", name=PEOPLE["curator"][0], role="viewer")
    events = audit_count(app_env)
    at.button(key=f"review_accept_{item_id}").click().run()
    assert any("needs the curator role; you are a viewer" in shown(e.value) for e in at.error)
    with get_sessionmaker(app_env)() as s:
        assert s.get(ReviewItem, item_id).status == "open"
    assert audit_count(app_env) == events


def test_the_server_refuses_a_curators_rename_which_is_the_admins(app_env, tree):
    leaf = tree.leaves()[0]
    leaf_id, events = node_id(app_env, leaf), audit_count(app_env)
    at = run_page("taxonomy", role="curator")
    at.selectbox(key="tax_node").set_value(leaf_id).run()
    assert at.button(key="rename_btn").disabled  # a curator's page offers no rename ...
    at.session_state[auth.SESSION_KEY]["role"] = "admin"  # ... a forged session that claims the admin role does
    at.text_input(key=f"rename_name_{leaf_id}").input("Renamed Leaf").run()
    at.button(key="rename_btn").click().run()
    at.button(key="confirm_action").click().run()
    assert not at.exception, at.exception
    assert any("needs the admin role; you are a curator" in shown(e.value) for e in at.error)
    assert node_id(app_env, leaf) == leaf_id and audit_count(app_env) == events


def test_a_viewer_sees_no_enabled_curation_button(app_env, with_review):
    at = run_page("review", role="viewer")
    decisions = [b for b in at.button if b.key and b.key.startswith(("review_accept_", "review_keep_", "review_choose_"))]
    assert decisions and all(b.disabled for b in decisions)


def test_an_unexpected_error_shows_an_id_and_the_log_has_its_traceback(app_env, monkeypatch, caplog):
    def broken():
        raise RuntimeError("SELECT secret FROM /srv/internal/path")

    monkeypatch.setattr("app.cache.stats", broken)
    with caplog.at_level(logging.ERROR, logger="app"):
        at = signed_in(main_app()).run()
    assert not at.exception  # nothing reaches the browser as an exception
    (message,) = [e.value for e in at.error]
    error_id = re.search(r"error ([0-9a-f]{8})", message).group(1)
    assert "secret" not in message and "/srv" not in message and "RuntimeError" not in message
    (record,) = [r for r in caplog.records if error_id in r.getMessage()]
    assert "SELECT secret FROM /srv/internal/path" in "".join(logging.Formatter().formatException(record.exc_info))
