"""The CLI's `db`, `backup` and `restore`: no password printed, a restore that refuses without --yes, a round trip."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from core.cli import main as cli_main
from tests.conftest import pg_url
from tests.db_rows import table_rows

PASSWORD = "s3cret-Pa55"  # the test server trusts every local connection, so any password connects


@pytest.fixture
def pg_with_password(pg_migrated) -> str:
    return make_url(pg_migrated).set(password=PASSWORD).render_as_string(hide_password=False)


@pytest.mark.parametrize("action", ["upgrade", "current"])
def test_db_command_prints_the_url_without_its_password(pg_with_password, capsys, action):
    assert PASSWORD in pg_with_password
    assert cli_main(["--db", pg_with_password, "db", action]) == 0
    out = capsys.readouterr()
    host = make_url(pg_url()).host
    assert "at revision" in out.out and host in out.out and "***" in out.out  # the URL is shown, masked
    assert PASSWORD not in out.out + out.err


def test_backup_and_restore_print_no_password(pg_with_password, tmp_path, capsys):
    file = tmp_path / "b.dump"
    assert cli_main(["--db", pg_with_password, "backup", "--out", str(file)]) == 0
    assert cli_main(["--db", pg_with_password, "restore", str(file), "--yes"]) == 0
    out = capsys.readouterr()
    assert file.stat().st_size > 0 and "backed up to" in out.out and "restored from" in out.out
    assert PASSWORD not in out.out + out.err


def test_cli_restore_refuses_without_yes_and_round_trips_with_it(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'live.db'}"
    (tmp_path / "cat.csv").write_text("id,title,path\n1,Red shirt,Apparel > Shirts\n2,Blue jeans,Apparel > Jeans\n")
    ingest = ["ingest", "--catalog", str(tmp_path / "cat.csv"), "--map", "path=path", "--map", "image=none"]
    assert cli_main(["--db", url, *ingest, "--map", "description=none", "--map", "brand=none", "--platform", "shop"]) == 0
    before = table_rows(url)
    assert len(before["products"]) == 2
    file = tmp_path / "b.sqlite"
    assert cli_main(["--db", url, "backup", "--out", str(file)]) == 0
    assert cli_main(["--db", url, "restore", str(file)]) == 2
    assert "--yes" in capsys.readouterr().err
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert cli_main(["--db", fresh, "restore", str(file)]) == 0  # a database not made yet needs no --yes
    assert table_rows(fresh) == before
