"""Backing the taxonomy database up to one file, and restoring it from one.

SQLite: the online backup API (`sqlite3.Connection.backup`), a consistent copy even while the app writes.
PostgreSQL: `pg_dump --format=custom` and `pg_restore` (found through `$CURATOR_PG_BIN`, the server's folders
/usr/lib/postgresql/*/bin, newest first, or PATH); the URL's password reaches them only through the PGPASSWORD
environment variable, never on a command line (where `ps` would show it).

A restore refuses to replace a database that holds tables unless asked (`overwrite=True`, the CLI's `--yes`), and
refuses a backup whose Alembic revision this code does not know (one made by a newer version); a backup older than
the code is restored as it is, and the next `python -m core` command (or `db upgrade`) migrates it.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from db.session import alembic_config, get_engine

PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
TIMEOUT_S = 3600


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why (no password in it)."""


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def suffix(url: str) -> str:
    """The file extension of a backup of `url`'s kind."""
    return ".sqlite" if is_sqlite(url) else ".dump"


def backup(url: str, out: str | Path) -> str:
    """Back the database at `url` up to the file `out` (written whole, then renamed into place); returns the
    backup's Alembic revision."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if is_sqlite(url):
            _sqlite_copy(_sqlite_path(url, must_exist=True), tmp)
        else:
            _run(["pg_dump", "--format=custom", f"--file={tmp}"], url)
        revision = backup_revision(url, tmp)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return revision


def restore(url: str, file: str | Path, *, overwrite: bool = False) -> str:
    """Replace the database at `url` by the backup `file`; returns the revision restored.

    Raises:
        BackupError: the file is missing or not a backup of this kind, its revision is unknown to this code, or
            the database holds tables and `overwrite` is False.
    """
    file = Path(file)
    if not file.is_file():
        raise BackupError(f"{file}: no such backup file.")
    revision = backup_revision(url, file)
    known_revision(url, revision)
    if not overwrite and has_tables(url):
        raise BackupError("the database holds tables already: restoring replaces all of it (add --yes to do so).")
    get_engine(url).dispose()  # no pooled connection keeps reading the old contents
    if is_sqlite(url):
        _sqlite_copy(file, _sqlite_path(url, must_exist=False))
    else:
        _drop_pg_tables(url)
        _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", str(file)], url)
    get_engine(url).dispose()
    return revision


def backup_revision(url: str, file: str | Path) -> str:
    """The Alembic revision recorded in the backup `file` (of `url`'s kind); BackupError when it has none."""
    file = Path(file)
    if is_sqlite(url):
        try:
            with _sqlite_open(file, readonly=True) as conn:
                rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{file.name}: not a SQLite backup of the taxonomy database ({exc}).") from exc
        versions = [r[0] for r in rows]
    else:
        script = _run(["pg_restore", "--data-only", "--table=alembic_version", "--file=-", str(file)], url)
        versions = _copied_values(script)
    if len(versions) != 1:
        raise BackupError(f"{file.name}: records no single schema revision (found {versions}): not a backup of this database.")
    return versions[0]


def known_revision(url: str, revision: str) -> None:
    """BackupError unless this code's migrations know `revision`."""
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionError
    from alembic.util.exc import CommandError

    try:
        found = ScriptDirectory.from_config(alembic_config(url)).get_revision(revision)
    except (CommandError, RevisionError):
        found = None
    if found is None:
        raise BackupError(
            f"the backup is at schema revision {revision!r}, which this version does not know:"
            " restore it with the version that made it."
        )


def head_revision(url: str) -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def has_tables(url: str) -> bool:
    """Whether the database at `url` holds any table (a new database, or a SQLite file not yet made, holds none)."""
    if is_sqlite(url) and not _sqlite_path(url, must_exist=False).exists():
        return False
    with get_engine(url).connect() as conn:
        return bool(inspect(conn).get_table_names())


# ------------------------------------------------------------------ SQLite


def _sqlite_path(url: str, *, must_exist: bool) -> Path:
    name = make_url(url).database
    if not name or name == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up or restored.")
    path = Path(name)
    if must_exist and not path.is_file():
        raise BackupError(f"{path}: no such SQLite database.")
    return path


def _sqlite_open(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    return sqlite3.connect(path)


def _sqlite_copy(source: Path, target: Path) -> None:
    """Page-by-page online copy of `source` into `target` (whatever `target` held is replaced)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src = _sqlite_open(source, readonly=True)
    try:
        dst = sqlite3.connect(target, timeout=30)
        try:
            src.backup(dst)
        finally:
            dst.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{source.name}: the SQLite copy failed ({exc}).") from exc
    finally:
        src.close()


# ------------------------------------------------------------------ PostgreSQL


def pg_tool(name: str) -> str:
    """The path of the PostgreSQL client program `name` (pg_dump, pg_restore): `$CURATOR_PG_BIN`, the newest of the
    server's folders, or PATH."""
    folders = [os.environ["CURATOR_PG_BIN"]] if os.environ.get("CURATOR_PG_BIN") else []
    numbered = sorted(Path("/").glob(PG_BIN_GLOB.lstrip("/")), key=lambda p: _version(p.parent.name), reverse=True)
    for folder in [*folders, *map(str, numbered)]:
        if (Path(folder) / name).is_file():
            return str(Path(folder) / name)
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} not found: install the PostgreSQL client programs (Debian: postgresql-client).")
    return found


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", name)) or (0,)


def libpq_connection(url: str) -> tuple[str, dict[str, str]]:
    """(a libpq connection string for `url` without its password, the environment carrying the password)."""
    u = make_url(url)
    params = {"host": u.host, "port": str(u.port) if u.port else None, "user": u.username, "dbname": u.database}
    query = {k: v if isinstance(v, str) else v[-1] for k, v in u.query.items()}
    password = query.pop("password", None) or u.password
    params.update(query)
    conninfo = " ".join(f"{k}={_quote(str(v))}" for k, v in params.items() if v)
    env = {**os.environ, **({"PGPASSWORD": str(password)} if password else {})}
    return conninfo, env


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _run(args: list[str], url: str) -> str:
    """Run a PostgreSQL client program on `url`'s database; its stdout, or BackupError with its stderr."""
    conninfo, env = libpq_connection(url)
    command = [pg_tool(args[0]), *args[1:]]
    if args[:2] != ["pg_restore", "--data-only"]:  # reading a file's contents needs no server
        command.insert(1, f"--dbname={conninfo}")
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"{args[0]} could not run: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-10:])
        raise BackupError(f"{args[0]} failed (exit status {done.returncode}):\n{tail}")
    return done.stdout


def _copied_values(script: str) -> list[str]:
    """The first column of the rows of the COPY block of `alembic_version` in a pg_restore script."""
    lines = iter(script.splitlines())
    for line in lines:
        if line.startswith("COPY ") and "alembic_version" in line:
            values = []
            for row in lines:
                if row == "\\.":
                    return values
                values.append(row.split("\t")[0])
    return []


_SCHEMA_OBJECTS = """
SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
       format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('e', 'a', 'i'))
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, p.oid::regprocedure::text
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = current_schema() AND p.prokind IN ('f', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
"""


def _drop_pg_tables(url: str) -> None:
    """Drop every table, view, sequence and function of the database's current schema (not an extension's), in one
    transaction, so that the restore recreates exactly what the backup holds."""
    with get_engine(url).begin() as conn:
        for kind, name in conn.execute(text(_SCHEMA_OBJECTS)).all():
            conn.execute(text(f"DROP {kind} IF EXISTS {name} CASCADE"))
