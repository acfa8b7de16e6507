"""`python -m core users ...`: add (password from a hidden prompt or stdin, never an argument), list, disable,
enable, passwd, role; each change audited under --actor, and what it prints holds no password or hash."""

from __future__ import annotations

import contextlib
import getpass
import io

import pytest
from sqlalchemy import select

from core import cli
from db import users
from db.models import AuditEvent, User
from db.session import get_sessionmaker, transaction, upgrade


@pytest.fixture
def url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    upgrade(url)
    return url


def run(url: str, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        old, cli.sys.stdin = cli.sys.stdin, io.StringIO(stdin)
        try:
            status = cli.main(["--db", url, "users", *argv])
        finally:
            cli.sys.stdin = old
    return status, out.getvalue(), err.getvalue()


def signs_in(url: str, name: str, password: str) -> str | None:
    with transaction(get_sessionmaker(url)) as s:
        user = users.authenticate(s, name, password).user
        return user.role if user else None


def test_add_reads_the_password_from_stdin_and_the_user_signs_in(url):
    status, out, err = run(
        url, "add", "ana", "--role", "curator", "--password-stdin", "--actor", "ops", stdin="ana's passphrase\n"
    )
    assert (status, err) == (0, "") and "ana's passphrase" not in out
    assert signs_in(url, "ana", "ana's passphrase") == "curator"
    with get_sessionmaker(url)() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "add_user"))
    assert event.actor == "ops"


def test_add_asks_twice_at_a_hidden_prompt_and_refuses_when_they_differ(url, monkeypatch):
    typed = iter(["first passphrase", "other passphrase", "same passphrase", "same passphrase"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(typed))
    status, _, err = run(url, "add", "bo", "--role", "viewer")
    assert status == 2 and "differ" in err
    with get_sessionmaker(url)() as s:
        assert s.scalars(select(User)).all() == []
    assert run(url, "add", "bo", "--role", "viewer")[0] == 0
    assert signs_in(url, "bo", "same passphrase") == "viewer"


def test_the_password_is_no_command_line_argument(url):
    with pytest.raises(SystemExit):
        with contextlib.redirect_stderr(io.StringIO()):
            cli.main(["--db", url, "users", "add", "cy", "--role", "viewer", "--password", "on the command line"])


def test_list_disable_enable_passwd_and_role(url):
    run(url, "add", "root", "--role", "admin", "--password-stdin", stdin="root passphrase\n")
    run(url, "add", "dee", "--role", "viewer", "--password-stdin", stdin="dee's passphrase\n")
    assert run(url, "disable", "dee")[0] == 0
    listed = run(url, "list")[1].splitlines()
    assert [line.split()[:3] for line in listed[1:]] == [["dee", "viewer", "disabled"], ["root", "admin", "enabled"]]
    assert signs_in(url, "dee", "dee's passphrase") is None
    assert run(url, "enable", "dee")[0] == 0 and signs_in(url, "dee", "dee's passphrase") == "viewer"
    assert run(url, "passwd", "dee", "--password-stdin", stdin="dee's new passphrase\n")[0] == 0
    assert signs_in(url, "dee", "dee's passphrase") is None and signs_in(url, "dee", "dee's new passphrase") == "viewer"
    assert run(url, "role", "dee", "curator")[0] == 0 and signs_in(url, "dee", "dee's new passphrase") == "curator"
    status, _, err = run(url, "disable", "root")  # the only admin
    assert status == 2 and "only enabled admin" in err
    with get_sessionmaker(url)() as s:
        written = [e.action for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        hashes = s.scalars(select(User.password_hash)).all()
    assert written == ["add_user", "add_user", "disable_user", "enable_user", "set_password", "change_role"]
    assert not any(h in "".join(run(url, "list")[1]) for h in hashes)


def test_first_admin_prints_a_generated_password_once_and_it_signs_in(url, monkeypatch):
    monkeypatch.delenv("CURATOR_ADMIN_USER", raising=False)
    monkeypatch.delenv("CURATOR_ADMIN_PASSWORD", raising=False)
    status, out, _ = run(url, "first-admin")
    assert status == 0 and "First sign-in: user 'admin', password " in out
    password = out.split("password ", 1)[1].split()[0]
    assert signs_in(url, "admin", password) == "admin"
    with get_sessionmaker(url)() as s:
        assert password not in s.scalar(select(User.password_hash).where(User.name == "admin"))
    status, again, _ = run(url, "first-admin")  # the second start: an admin exists, nothing printed of a password
    assert status == 0 and "an enabled admin exists" in again and password not in again
    assert signs_in(url, "admin", password) == "admin"


def test_first_admin_from_the_environment_prints_no_password(url, monkeypatch):
    monkeypatch.setenv("CURATOR_ADMIN_USER", "ops")
    monkeypatch.setenv("CURATOR_ADMIN_PASSWORD", "a long enough passphrase")
    status, out, _ = run(url, "first-admin")
    assert status == 0 and "made admin 'ops'" in out and "a long enough passphrase" not in out
    assert signs_in(url, "ops", "a long enough passphrase") == "admin"
