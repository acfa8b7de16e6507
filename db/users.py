"""The people who may sign in to the app: argon2 password hashes, roles, rate-limited sign-in, the first admin.

A password is never stored, logged or audited: only its argon2 hash (argon2-cffi's `PasswordHasher`, its default
parameters; a hash made with other parameters is re-made at the next successful sign-in). Sign-in is rate-limited
in the database, so it holds across server processes and restarts: after `MAX_FAILURES` wrong passwords in a row a
user is locked for `LOCK_SECONDS`, doubling with each further failure up to `MAX_LOCK_SECONDS`. An unknown name, a
wrong password and a disabled user get the same message (and an unknown name costs the same hash check).

The user-management functions (add, disable, enable, set_password, change_role) are registered actions
(db/actions.py, the admin role): each writes one audit event, never with the password or its hash.
`Identity` is who performs an action: a signed-in user, whose role `current_role` re-reads from the database on
every action (a disabled or demoted user loses their rights at once), or the command line's local operator.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import USER_ROLES, User
from db.repo import CurationError, write_audit

HASHER = PasswordHasher()  # argon2id with the library's current defaults
MAX_FAILURES = 5  # wrong passwords in a row before the first lock
LOCK_SECONDS = 60  # the first lock; each further failure doubles it
MAX_LOCK_SECONDS = 3600
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # hashing a megabyte of "password" is no sign-in
REFUSED = "Sign-in failed: unknown name or wrong password."
NAME_PATTERN = re.compile(r"[\w.@+-]{1,100}")  # letters, digits and . @ + - _ (no spaces or markup)


@dataclass(frozen=True)
class Identity:
    """Who performs an action: `name` goes into the audit log; `operator` is the command line's local operator, who
    has the database URL and so acts with `role` as given; a signed-in user's role is re-read on every action."""

    name: str
    role: str
    operator: bool = False


@dataclass(frozen=True)
class SignIn:
    """The outcome of `authenticate`: who signed in, or (`user` None) why not."""

    user: Identity | None
    message: str = ""


def operator(name: str) -> Identity:
    """The command line's user (`--actor`): whoever holds the database URL can change anything in it, so it acts as an
    admin; the name is only what the audit log records."""
    return Identity(name=(name or "").strip() or "operator", role="admin", operator=True)


def current_role(session: Session, user: Identity) -> str:
    """The role `user` acts with now: a signed-in user's role from the database (refused once disabled or removed)."""
    if user.operator:
        return user.role
    row = _find(session, user.name)
    if row is None or row.disabled:
        raise CurationError(f"{user.name} can no longer act here (the account is disabled): sign in again.")
    return row.role


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were written in UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _find(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == name))


def _get(session: Session, name: str) -> User:
    user = _find(session, name)
    if user is None:
        raise CurationError(f"No user named {name!r}.")
    return user


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_PATTERN.fullmatch(name):
        raise CurationError("A user name is 1-100 letters, digits or . @ + - _ (no spaces).")
    return name


def _check_role(role: str) -> str:
    if role not in USER_ROLES:
        raise CurationError(f"Unknown role {role!r}; use one of {', '.join(USER_ROLES)}.")
    return role


def _hash(password: str) -> str:
    if not isinstance(password, str) or not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise CurationError(f"A password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters.")
    return HASHER.hash(password)


def _enabled_admins(session: Session) -> int:
    return len(session.scalars(select(User.id).where(User.role == "admin", User.disabled.is_(False))).all())


def _keep_an_admin(session: Session, user: User) -> None:
    if user.role == "admin" and not user.disabled and _enabled_admins(session) <= 1:
        raise CurationError(f"{user.name} is the only enabled admin: add or enable another admin first.")


def add_user(session: Session, *, actor: str, name: str, password: str, role: str) -> User:
    """Add a user who signs in with `password` (stored only as its hash)."""
    name, role = _check_name(name), _check_role(role)
    if _find(session, name) is not None:
        raise CurationError(f"A user named {name!r} exists already.")
    user = User(name=name, password_hash=_hash(password), role=role, disabled=False, failed_attempts=0)
    session.add(user)
    session.flush()
    write_audit(
        session, actor=actor, action="add_user", summary=f"Added user {name} ({role})", after={"name": name, "role": role}
    )
    return user


def list_users(session: Session) -> list[dict[str, Any]]:
    """Every user, by name: role, whether disabled or locked, when created and last signed in (never a hash)."""
    now = datetime.now(UTC)
    return [
        {
            "name": u.name,
            "role": u.role,
            "disabled": u.disabled,
            "locked": bool(u.locked_until and _aware(u.locked_until) > now),
            "created_at": _aware(u.created_at),
            "last_login_at": _aware(u.last_login_at),
        }
        for u in session.scalars(select(User).order_by(User.name))
    ]


def disable_user(session: Session, *, actor: str, name: str) -> None:
    """The user can no longer sign in, and a session already signed in can no longer act (see `current_role`)."""
    user = _get(session, name)
    if user.disabled:
        raise CurationError(f"{name} is disabled already.")
    _keep_an_admin(session, user)
    user.disabled = True
    write_audit(session, actor=actor, action="disable_user", summary=f"Disabled user {name}", after={"name": name})


def enable_user(session: Session, *, actor: str, name: str) -> None:
    """Enable a disabled user again (also lifts a sign-in lock)."""
    user = _get(session, name)
    user.disabled, user.failed_attempts, user.locked_until = False, 0, None
    write_audit(session, actor=actor, action="enable_user", summary=f"Enabled user {name}", after={"name": name})


def set_password(session: Session, *, actor: str, name: str, password: str) -> None:
    """Give the user a new password (lifts a sign-in lock)."""
    user = _get(session, name)
    user.password_hash = _hash(password)
    user.password_changed_at, user.failed_attempts, user.locked_until = datetime.now(UTC), 0, None
    write_audit(session, actor=actor, action="set_password", summary=f"Set a new password for {name}", after={"name": name})


def change_role(session: Session, *, actor: str, name: str, role: str) -> None:
    """Give the user another role (refused when it would leave no enabled admin)."""
    user, role = _get(session, name), _check_role(role)
    if user.role == role:
        raise CurationError(f"{name} is a {role} already.")
    if role != "admin":
        _keep_an_admin(session, user)
    before = user.role
    user.role = role
    summary = f"Changed {name}'s role from {before} to {role}"
    write_audit(
        session, actor=actor, action="change_role", summary=summary, before={"role": before}, after={"name": name, "role": role}
    )


@cache
def _dummy_hash() -> str:
    """A hash to check an unknown name's password against, so that it takes as long as a known one's."""
    return HASHER.hash(secrets.token_urlsafe(16))


def _verify(stored: str, password: str) -> bool:
    try:
        return HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def lock_seconds(failures: int) -> int:
    """How long a user is locked after `failures` wrong passwords in a row (0 below `MAX_FAILURES`)."""
    if failures < MAX_FAILURES:
        return 0
    return min(MAX_LOCK_SECONDS, LOCK_SECONDS * 2 ** (failures - MAX_FAILURES))


def authenticate(session: Session, name: str, password: str, *, now: datetime | None = None) -> SignIn:
    """Check a sign-in; records failures and locks in `session` (the caller commits, also when it is refused)."""
    now = _now(now)
    password = password if isinstance(password, str) and len(password) <= MAX_PASSWORD_LENGTH else ""
    user = _find(session, (name or "").strip())
    if user is None:
        _verify(_dummy_hash(), password)
        return SignIn(None, REFUSED)
    locked_until = _aware(user.locked_until)
    if locked_until is not None and locked_until > now:
        minutes = max(1, round((locked_until - now).total_seconds() / 60))
        return SignIn(None, f"Sign-in failed: too many wrong passwords; try again in {minutes} min.")
    if not _verify(user.password_hash, password) or user.disabled:
        if not user.disabled:
            user.failed_attempts += 1
            wait = lock_seconds(user.failed_attempts)
            user.locked_until = now + timedelta(seconds=wait) if wait else None
        return SignIn(None, REFUSED)
    if HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = HASHER.hash(password)
    user.failed_attempts, user.locked_until, user.last_login_at = 0, None, now
    return SignIn(Identity(name=user.name, role=user.role))


@dataclass(frozen=True)
class FirstAdmin:
    """The admin `ensure_first_admin` made: `password` is set only when it was generated (show it once)."""

    name: str
    password: str | None


def first_sign_in(made: FirstAdmin) -> str:
    """What the console shows, once, of a generated first admin (the app's server and `users first-admin` alike)."""
    return (
        f"\n  First sign-in: user {made.name!r}, password {made.password}\n"
        f"  (shown once, stored only as a hash; change it with `python -m core users passwd {made.name}`)\n"
    )


def ensure_first_admin(session: Session, env: Mapping[str, str] | None = None) -> FirstAdmin | None:
    """When no enabled admin exists, make one: `CURATOR_ADMIN_USER` (default "admin") with `CURATOR_ADMIN_PASSWORD`,
    or with a random password returned for the caller to show once (it is stored only as a hash). None when an
    enabled admin exists. A user of that name who exists already is enabled, made admin and given the password."""
    env = os.environ if env is None else env
    if _enabled_admins(session):
        return None
    name = _check_name(env.get("CURATOR_ADMIN_USER") or "admin")
    given = env.get("CURATOR_ADMIN_PASSWORD") or None
    password = given or secrets.token_urlsafe(18)
    user = _find(session, name)
    if user is None:
        add_user(session, actor="system", name=name, password=password, role="admin")
    else:
        if user.role != "admin":
            change_role(session, actor="system", name=name, role="admin")
        if user.disabled:
            enable_user(session, actor="system", name=name)
        set_password(session, actor="system", name=name, password=password)
    return FirstAdmin(name=name, password=None if given else password)
