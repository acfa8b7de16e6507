"""Sign-in for the app: the sign-in form, who is signed in (`current_user`), session expiry, sign-out, the first admin.

A signed-in session is a record in Streamlit's server-side session state (the browser holds no token): the user's
name, role, when they signed in and when they were last seen. It expires `CURATOR_SESSION_HOURS` (default 8) after
sign-in, or `CURATOR_SESSION_IDLE_MINUTES` (default 30) after the last script run; a new browser session (reload,
new tab) signs in again. The role is re-read from the database at every run, so a disabled user is signed out at
their next click, and the action registry re-checks it at every action (db.actions.perform): hiding a page or a
button is convenience, never the protection.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import streamlit as st

from app import cache
from app.text import md
from db import actions, users
from db.repo import CurationError
from db.session import transaction

SESSION_KEY = "signed_in"  # st.session_state[SESSION_KEY]: the record `signed_in_record` makes
NOTE_KEY = "sign_in_note"  # why the sign-in form is shown again (expired, signed out, disabled)
log = logging.getLogger(__name__)
_first_admin_done: set[str] = set()  # database URLs whose first admin this server process has checked
_first_admin_lock = threading.Lock()


def session_seconds() -> float:
    return float(os.environ.get("CURATOR_SESSION_HOURS") or 8) * 3600


def idle_seconds() -> float:
    return float(os.environ.get("CURATOR_SESSION_IDLE_MINUTES") or 30) * 60


def signed_in_record(user: users.Identity, now: float | None = None) -> dict[str, Any]:
    """What the session keeps of a signed-in user."""
    now = time.time() if now is None else now
    return {"name": user.name, "role": user.role, "signed_in_at": now, "seen_at": now}


def sign_out(note: str = "") -> None:
    """Forget everything this browser session holds (the signed-in user, pending actions, choices)."""
    for key in list(st.session_state):
        del st.session_state[key]
    if note:
        st.session_state[NOTE_KEY] = note


def current_user() -> users.Identity | None:
    """The signed-in user, or None (nobody signed in, the session expired, or the user was disabled since)."""
    record = st.session_state.get(SESSION_KEY)
    if not record:
        return None
    now = time.time()
    if now - record["signed_in_at"] > session_seconds() or now - record["seen_at"] > idle_seconds():
        sign_out("Your session has expired: sign in again.")
        return None
    try:
        with cache.factory()() as s:
            role = users.current_role(s, users.Identity(record["name"], record["role"]))
    except CurationError as exc:
        sign_out(str(exc))
        return None
    record["seen_at"], record["role"] = now, role
    return users.Identity(record["name"], role)


def has_role(user: users.Identity | None, role: str) -> bool:
    """Whether `user` holds `role` or a higher one (viewer < curator < admin)."""
    return actions.holds(user.role if user else None, role)


def _role_now() -> str | None:
    """The signed-in user's role as `current_user` re-read it at the start of this script run (no query)."""
    record = st.session_state.get(SESSION_KEY)
    return record["role"] if record else None


def may(action: str) -> bool:
    """Whether the signed-in user may perform the registered action `action` (to disable its button; the registry
    refuses it anyway)."""
    return actions.holds(_role_now(), actions.get(action).role)


def may_start(kind: str) -> bool:
    """Whether the signed-in user may start a background job of `kind` (db.actions.JOB_ROLES)."""
    return actions.holds(_role_now(), actions.JOB_ROLES.get(kind, "admin"))


def _check(name: str, password: str) -> users.SignIn:
    with transaction(cache.factory()) as s:  # committed also when refused: the failure count is what rate-limits
        return users.authenticate(s, name, password)


def sign_in_form() -> None:
    """The sign-in form: the only thing shown until someone signs in."""
    st.title("Taxonomy Curator")
    note = st.session_state.pop(NOTE_KEY, None)
    if note:
        st.info(md(note))
    with st.form("sign_in"):
        name = st.text_input("Name", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    result = _check(name, password)
    if result.user is None:
        log.info("sign-in refused for %r", name[:100])
        st.error(result.message)
        return
    log.info("%s signed in (%s)", result.user.name, result.user.role)
    sign_out()  # nothing of a session from before the sign-in is kept
    st.session_state[SESSION_KEY] = signed_in_record(result.user)
    st.rerun()


def first_admin(env: dict[str, str] | None = None) -> None:
    """Once per server process and database: make the first admin when no enabled admin exists (db.users
    .ensure_first_admin); a generated password is printed on the server's console, once, never sent to a browser."""
    url = cache.db_url()
    with _first_admin_lock:
        if url in _first_admin_done:
            return
        with transaction(cache.factory()) as s:
            made = users.ensure_first_admin(s, env)
        _first_admin_done.add(url)
    if made is None:
        return
    log.warning("No enabled admin existed: made admin %r.", made.name)
    if made.password:
        print(users.first_sign_in(made), flush=True)
