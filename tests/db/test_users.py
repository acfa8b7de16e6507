"""Users and sign-in (db/users.py): argon2 hashes only, one message for every refusal, a lock after repeated wrong
passwords that ends after its time (a controlled clock), disabled users refused, the first admin, rehashing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from db import users
from db.models import AuditEvent, User
from db.repo import CurationError
from db.session import transaction

PASSWORD = "correct horse battery"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def ana(factory):
    with transaction(factory) as s:
        users.add_user(s, actor="boss", name="ana", password=PASSWORD, role="curator")
    return "ana"


def sign_in(factory, name: str, password: str, now: datetime = T0) -> users.SignIn:
    with transaction(factory) as s:  # committed also when refused: the failure count is kept
        return users.authenticate(s, name, password, now=now)


def row(factory, name: str) -> User:
    with factory() as s:
        return s.scalar(select(User).where(User.name == name))


def test_a_password_is_stored_only_as_an_argon2id_hash_and_never_audited(factory, ana):
    stored = row(factory, ana).password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    with factory() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "add_user"))
        written = json.dumps([event.summary, event.before, event.after])
    assert event.actor == "boss" and PASSWORD not in written and stored not in written and "ana" in written


def test_the_right_password_signs_in_with_the_users_role(factory, ana):
    result = sign_in(factory, "ana", PASSWORD)
    assert result.user == users.Identity("ana", "curator") and result.message == ""
    assert row(factory, "ana").last_login_at is not None


def test_unknown_name_wrong_password_and_disabled_user_get_the_same_message(factory, ana):
    unknown, wrong = sign_in(factory, "nobody", PASSWORD), sign_in(factory, "ana", PASSWORD + "x")
    with transaction(factory) as s:
        users.add_user(s, actor="boss", name="bo", password=PASSWORD, role="admin")  # ana's disabling needs no last admin
        users.disable_user(s, actor="boss", name="ana")
    disabled = sign_in(factory, "ana", PASSWORD)  # the right password
    assert unknown.user is wrong.user is disabled.user is None
    assert unknown.message == wrong.message == disabled.message == "Sign-in failed: unknown name or wrong password."


def test_five_wrong_passwords_lock_the_user_until_the_lock_time_has_passed(factory, ana):
    for i in range(4):
        assert sign_in(factory, "ana", f"wrong password {i}", T0).message.startswith("Sign-in failed: unknown name")
    assert row(factory, "ana").locked_until is None  # four are not enough
    sign_in(factory, "ana", "wrong password 5", T0)
    locked = sign_in(factory, "ana", PASSWORD, T0 + timedelta(seconds=59))  # the right password, inside the 60 s lock
    assert locked.user is None and "too many wrong passwords" in locked.message
    assert sign_in(factory, "ana", PASSWORD, T0 + timedelta(seconds=61)).user is not None  # the lock has ended
    assert row(factory, "ana").failed_attempts == 0  # and a success starts the count again


def test_each_wrong_password_after_a_lock_doubles_it(factory, ana):
    for i in range(5):
        sign_in(factory, "ana", f"wrong {i}", T0)
    after_first = T0 + timedelta(seconds=61)
    sign_in(factory, "ana", "wrong again", after_first)  # the sixth failure: 2 x 60 s
    assert sign_in(factory, "ana", PASSWORD, after_first + timedelta(seconds=119)).user is None
    assert sign_in(factory, "ana", PASSWORD, after_first + timedelta(seconds=121)).user is not None
    assert [users.lock_seconds(n) for n in (4, 5, 6, 7, 20)] == [0, 60, 120, 240, 3600]


def test_a_disabled_user_is_refused_and_a_signed_in_one_can_no_longer_act(factory, ana):
    with transaction(factory) as s:
        users.add_user(s, actor="boss", name="bo", password=PASSWORD, role="admin")
    identity = sign_in(factory, "ana", PASSWORD).user
    with transaction(factory) as s:
        users.disable_user(s, actor="bo", name="ana")
    with factory() as s, pytest.raises(CurationError, match="disabled"):
        users.current_role(s, identity)
    assert sign_in(factory, "ana", PASSWORD).user is None
    with transaction(factory) as s:
        users.enable_user(s, actor="bo", name="ana")
    assert sign_in(factory, "ana", PASSWORD).user == users.Identity("ana", "curator")


def test_the_only_enabled_admin_cannot_be_disabled_or_demoted(factory):
    with transaction(factory) as s:
        users.add_user(s, actor="boss", name="root", password=PASSWORD, role="admin")
    for change in (
        lambda s: users.disable_user(s, actor="x", name="root"),
        lambda s: users.change_role(s, actor="x", name="root", role="curator"),
    ):
        with pytest.raises(CurationError, match="only enabled admin"):
            with transaction(factory) as s:
                change(s)
    assert (row(factory, "root").role, row(factory, "root").disabled) == ("admin", False)


def test_names_roles_and_passwords_are_checked(factory):
    bad = [
        ({"name": "two words", "password": PASSWORD, "role": "viewer"}, "user name"),
        ({"name": "<b>x</b>", "password": PASSWORD, "role": "viewer"}, "user name"),
        ({"name": "ana", "password": "short", "role": "viewer"}, "10 to 1024 characters"),
        ({"name": "ana", "password": PASSWORD, "role": "owner"}, "Unknown role 'owner'"),
    ]
    for kwargs, message in bad:
        with pytest.raises(CurationError, match=message):
            with transaction(factory) as s:
                users.add_user(s, actor="x", **kwargs)
    with factory() as s:
        assert s.scalars(select(User)).all() == []


def test_a_new_password_replaces_the_old_one_and_lifts_the_lock(factory, ana):
    for i in range(5):
        sign_in(factory, "ana", f"wrong {i}", T0)
    with transaction(factory) as s:
        users.set_password(s, actor="boss", name="ana", password="a brand new passphrase")
    assert sign_in(factory, "ana", PASSWORD, T0).user is None
    assert sign_in(factory, "ana", "a brand new passphrase", T0).user is not None


def test_a_hash_made_with_other_argon2_parameters_is_remade_at_the_next_sign_in(factory, ana):
    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with transaction(factory) as s:
        s.scalar(select(User).where(User.name == "ana")).password_hash = old
    assert users.HASHER.check_needs_rehash(old)  # the premise: these are not the current parameters
    assert sign_in(factory, "ana", PASSWORD).user is not None
    new = row(factory, "ana").password_hash
    assert new != old and not users.HASHER.check_needs_rehash(new) and users.HASHER.verify(new, PASSWORD)


def test_the_first_admin_comes_from_the_environment(factory):
    env = {"CURATOR_ADMIN_USER": "chief", "CURATOR_ADMIN_PASSWORD": "chief's own passphrase"}
    with transaction(factory) as s:
        made = users.ensure_first_admin(s, env)
    assert made == users.FirstAdmin(name="chief", password=None)  # nothing to show: the operator chose it
    assert sign_in(factory, "chief", "chief's own passphrase").user == users.Identity("chief", "admin")
    with transaction(factory) as s:
        assert users.ensure_first_admin(s, {}) is None  # an enabled admin exists: nothing is made


def test_without_settings_the_first_admin_gets_a_random_password_returned_once(factory):
    with transaction(factory) as s:
        first = users.ensure_first_admin(s, {})
    with transaction(factory) as s:
        again = users.ensure_first_admin(s, {})  # an enabled admin now exists: no second one, no password shown
    assert first.name == "admin" and len(first.password) >= 20 and again is None
    assert first.password not in row(factory, "admin").password_hash
    assert sign_in(factory, "admin", first.password).user == users.Identity("admin", "admin")
    with transaction(factory) as s:  # the admin disabled behind the app's back (no enabled admin left): a new password
        s.scalar(select(User).where(User.name == "admin")).disabled = True
    with transaction(factory) as s:
        second = users.ensure_first_admin(s, {})
    assert second.name == "admin" and second.password != first.password
    assert sign_in(factory, "admin", first.password).user is None and sign_in(factory, "admin", second.password).user


def test_a_disabled_first_admin_name_is_enabled_and_made_admin_again(factory):
    with transaction(factory) as s:
        users.add_user(s, actor="x", name="chief", password=PASSWORD, role="viewer")
        users.disable_user(s, actor="x", name="chief")
        made = users.ensure_first_admin(s, {"CURATOR_ADMIN_USER": "chief"})
    assert made.name == "chief" and made.password
    assert sign_in(factory, "chief", made.password).user == users.Identity("chief", "admin")
    assert sign_in(factory, "chief", PASSWORD).user is None  # the old password is gone
