"""One engine and one sessionmaker per database URL; migrations as the only schema path."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from db.repo import ConflictError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SECRET_PARAMS = ("password", "passwd", "pwd", "secret", "token", "key")
LOCK_TIMEOUT_S = 20  # how long a PostgreSQL action waits for another's lock before it is refused (SQLite: busy_timeout)
RETRY = "someone else is changing this: reload and try again."
_BUSY = ("database is locked", "database is busy", "database table is locked")
_PG_BUSY = {"55P03", "40001", "40P01", "57014"}  # lock timeout, serialisation failure, deadlock, statement timeout
log = logging.getLogger(__name__)


def masked_url(url: str) -> str:
    """`url` as it may be printed, logged or shown: its password, and any password-like query parameter
    (`?password=`, `?sslkey=`...), as ***."""
    parsed = make_url(url)
    query = {k: ("***" if any(s in k.lower() for s in SECRET_PARAMS) else v) for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    """A new engine; SQLite gets foreign keys, WAL and a busy timeout, and its folder is created."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True)


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """The process-wide engine for `url`."""
    return make_engine(url)


def get_sessionmaker(url: str) -> sessionmaker[Session]:
    """A sessionmaker bound to the process-wide engine for `url` (objects stay usable after commit)."""
    return sessionmaker(get_engine(url), expire_on_commit=False)


def _sqlite_begin(conn) -> None:
    """BEGIN IMMEDIATE for a write transaction (`transaction`): it takes the write lock before its first read, so two
    writers take turns instead of both reading and the second writing what it read before the first committed. The
    rest (reads, migrations) keep the driver's own transactions."""
    if conn.get_execution_options().get("curator_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def conflict(exc: Exception) -> ConflictError | None:
    """The one-line refusal for a database error caused by someone else acting at once; None for any other error.

    A lock time-out ("database is locked", PostgreSQL's lock_timeout), a serialisation failure or deadlock, a row
    changed since it was read (StaleDataError), or an invariant the database enforces (IntegrityError).
    """
    if isinstance(exc, StaleDataError):
        return ConflictError(f"Refused, {RETRY}")
    if isinstance(exc, IntegrityError):
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else ""
        invariant = detail.split("invariant: ", 1)[1].split(" (")[0] if "invariant: " in detail else ""
        return ConflictError(f"Refused ({invariant}): {RETRY}" if invariant else f"Refused, {RETRY}")
    if isinstance(exc, OperationalError):
        code = getattr(exc.orig, "sqlstate", None)
        if code in _PG_BUSY or any(busy in str(exc.orig).lower() for busy in _BUSY):
            return ConflictError(f"The database is busy: {RETRY}")
    return None


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One user action = one transaction: commits on success, rolls everything back on error.

    A write transaction: on SQLite it begins IMMEDIATE (writers take turns), on PostgreSQL its lock waits are
    limited to LOCK_TIMEOUT_S. A conflict with someone acting at once becomes one ConflictError line (`conflict`);
    the original error goes to the log.
    """
    try:
        with factory.begin() as session:
            if session.get_bind().dialect.name == "sqlite":
                session.connection(execution_options={"curator_write": True})
            else:
                session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_S}s'"))
            yield session
    except (IntegrityError, OperationalError, StaleDataError) as exc:
        refusal = conflict(exc)
        if refusal is None:
            raise
        log.warning("refused as a conflict: %s", exc)
        raise refusal from exc


def alembic_config(url: str):
    """An Alembic Config pointing at db/migrations and `url` (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (creates it when new)."""
    from alembic import command

    if url.startswith("sqlite"):
        make_engine(url).dispose()  # creates the folder
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The migration revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
