"""Backups: a round trip through `db.backup` gives back every row of every table, on SQLite and PostgreSQL; a
restore refuses to overwrite without being asked and refuses a backup of an unknown schema revision; the
PostgreSQL password never reaches a command line."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text, func, insert, select

from core.data.ingest import ColumnMap
from core.steps.ingest import ingest
from db import backup as bk
from db.models import AuditEvent, Base
from db.repo import write_audit
from db.session import current_revision, get_engine, get_sessionmaker, transaction, upgrade
from tests.db.conftest import scratch_pg_database
from tests.db_rows import table_names, table_rows

# titles that a dump must carry unchanged: quotes, tabs, newlines, backslashes, COPY's own end marker, non-ASCII
TRICKY = ['He said "hi", it\'s\ta tab', "line one\nline two\r\n\\. end marker", "back\\slash \\N null-like", "Café ☕ 日本"]
MAPPING = ColumnMap.parse(["id=sku", "title=name", "path=category", "image=none", "description=none", "brand=none"])


def fill(db_url: str, tmp_path) -> None:
    """Real ingested rows, then one row in each table that is still empty (so every table is compared)."""
    lines = ["sku,name,category"] + [f'T{i},"{t.replace(chr(34), chr(34) * 2)}",Apparel > Topwear' for i, t in enumerate(TRICKY)]
    (tmp_path / "cat.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ingest(tmp_path / "cat.csv", platform="shop", db_url=db_url, mapping=MAPPING)
    with get_engine(db_url).begin() as conn:
        for table in Base.metadata.sorted_tables:
            if conn.scalar(select(func.count()).select_from(table)) == 0:
                conn.execute(insert(table).values(_row_for(conn, table)))


def _row_for(conn, table) -> dict:
    """A row of `table` with a value in every column: an existing row's id for a foreign key, a typed value else."""
    row = {}
    for column in table.columns:
        if column.primary_key and isinstance(column.type, Integer):
            continue
        fks = list(column.foreign_keys)
        if fks:
            target = fks[0].column
            row[column.name] = None if target.table is table else conn.scalar(select(func.min(target)))
        elif isinstance(column.type, Boolean):
            row[column.name] = True
        elif isinstance(column.type, Integer):
            row[column.name] = 7
        elif isinstance(column.type, Float):
            row[column.name] = 0.125
        elif isinstance(column.type, DateTime):
            row[column.name] = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        elif isinstance(column.type, JSON):
            row[column.name] = {"k": [1, "é", None, 2.5]}
        elif isinstance(column.type, Text):
            row[column.name] = TRICKY[1]
        elif isinstance(column.type, String):
            row[column.name] = f"{table.name}.{column.name}"[: column.type.length or 100]
    return row


@contextmanager
def fresh_database(db_url: str, tmp_path):
    """A new, empty database of `db_url`'s kind (nothing created in it, not even the schema)."""
    if db_url.startswith("sqlite"):
        tmp_path.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{tmp_path / 'restored.db'}"
    else:
        with scratch_pg_database() as url:
            yield url


def test_a_backup_restored_into_a_fresh_database_has_every_row_of_every_table(db_url, tmp_path):
    fill(db_url, tmp_path)
    before = table_rows(db_url)
    assert all(before[name] for name in table_names()), {n: len(r) for n, r in before.items()}
    file = tmp_path / f"backup{bk.suffix(db_url)}"
    revision = bk.backup(db_url, file)
    assert revision == current_revision(db_url)
    with fresh_database(db_url, tmp_path) as target:
        assert bk.restore(target, file) == revision
        assert table_rows(target) == before
        with transaction(get_sessionmaker(target)) as s:  # the id sequences came back too: new rows get new ids
            write_audit(s, actor="t", action="after-restore", summary="")
        with get_sessionmaker(target)() as s:
            assert s.scalar(select(func.count()).select_from(AuditEvent)) == len(before["audit_events"]) + 1
    assert table_rows(db_url) == before  # the backup changed nothing


def test_restore_refuses_to_overwrite_unless_asked_and_then_replaces_everything(db_url, tmp_path):
    fill(db_url, tmp_path)
    file = tmp_path / f"backup{bk.suffix(db_url)}"
    bk.backup(db_url, file)
    before = table_rows(db_url)
    with transaction(get_sessionmaker(db_url)) as s:
        write_audit(s, actor="t", action="after-backup", summary="a change the restore must undo")
    changed = table_rows(db_url)
    with pytest.raises(bk.BackupError, match="--yes"):
        bk.restore(db_url, file)
    assert table_rows(db_url) == changed
    bk.restore(db_url, file, overwrite=True)
    assert table_rows(db_url) == before


def test_restore_refuses_a_backup_of_an_unknown_schema_revision(db_url, tmp_path):
    with fresh_database(db_url, tmp_path / "source") as source:
        upgrade(source)
        with get_engine(source).begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_from_the_future'")
        file = tmp_path / f"future{bk.suffix(db_url)}"
        assert bk.backup(source, file) == "9999_from_the_future"
    with fresh_database(db_url, tmp_path / "target") as target:  # not the shared test database: a broken restore
        upgrade(target)  # would leave it at a revision no later test could migrate from
        before = table_rows(target)
        with pytest.raises(bk.BackupError, match="9999_from_the_future"):
            bk.restore(target, file, overwrite=True)
        assert table_rows(target) == before


def test_a_file_that_is_not_a_backup_is_refused_and_the_database_kept(db_url, tmp_path):
    junk = tmp_path / f"junk{bk.suffix(db_url)}"
    junk.write_bytes(b"not a backup at all")
    no_revision = tmp_path / "no_revision.sqlite"  # a SQLite file, but without alembic_version
    sqlite3.connect(no_revision).execute("CREATE TABLE t (x)").connection.commit()
    with fresh_database(db_url, tmp_path / "target") as target:
        upgrade(target)
        before = table_rows(target)
        with pytest.raises(bk.BackupError):
            bk.restore(target, junk, overwrite=True)
        if db_url.startswith("sqlite"):
            with pytest.raises(bk.BackupError, match="not a SQLite backup"):
                bk.restore(target, no_revision, overwrite=True)
        assert table_rows(target) == before


def test_the_postgresql_password_travels_in_the_environment_never_on_the_command_line(monkeypatch, tmp_path):
    calls = []

    def fake_run(command, *, env, **_):
        calls.append((command, env))
        for arg in command:
            if arg.startswith("--file=") and arg != "--file=-":
                open(arg.removeprefix("--file="), "wb").close()
        return type("Done", (), {"returncode": 0, "stdout": "COPY public.alembic_version (version_num) FROM stdin;\nabc\n\\.\n"})

    monkeypatch.setattr(bk.subprocess, "run", fake_run)
    monkeypatch.setattr(bk, "pg_tool", lambda name: f"/bin/{name}")
    url = "postgresql+psycopg://curator:s3cr%27et%20pw@db.example:6543/taxonomy?sslmode=require"
    assert bk.backup(url, tmp_path / "b.dump") == "abc"
    assert [c[0][0] for c in calls] == ["/bin/pg_dump", "/bin/pg_restore"]
    dump_command, env = calls[0]
    assert not any("s3cr" in arg for arg in dump_command)
    assert env["PGPASSWORD"] == "s3cr'et pw"
    conninfo = next(a for a in dump_command if a.startswith("--dbname="))
    assert conninfo == "--dbname=host='db.example' port='6543' user='curator' dbname='taxonomy' sslmode='require'"
