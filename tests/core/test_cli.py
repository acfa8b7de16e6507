"""The command line: `--db` before or after the sub-command, `db upgrade` and `ingest` end to end on a SQLite
file, the encoder choice of `embed`, and the installed `curator` console script (the same as `python -m core`)."""

from __future__ import annotations

import importlib.metadata
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from core import cli
from core.embed.choice import EncoderChoice, record_encoders

CSV = """sku,name,category
a1,Red Oxford Shirt,Apparel > Topwear > Shirts
a2,Blue Crew Tee,Apparel > Topwear > Tshirts
a3,Black Stiletto Heels,Footwear > Shoes > Heels
"""
MAPPING = ["id=sku", "title=name", "path=category", "image=none", "description=none", "brand=none"]


def sqlite_url(tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "cli.db"
    return f"sqlite:///{path}", path


def rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize("command", [["train"], ["db", "upgrade"], ["ingest", "--catalog", "x.csv"], ["job", "run", "3"]])
def test_db_before_and_after_the_sub_command_is_the_same_url(command):
    url = "sqlite:////tmp/somewhere/else.db"
    before = cli.build_parser().parse_args(["--db", url, *command])
    after = cli.build_parser().parse_args([*command, "--db", url])
    assert before.db == after.db == url
    assert before.command == after.command == command[0]


def test_without_db_the_url_is_left_to_the_settings_and_after_wins_over_before():
    assert cli.build_parser().parse_args(["predict"]).db is None
    assert cli.build_parser().parse_args(["--db", "sqlite:///a.db", "predict", "--db", "sqlite:///b.db"]).db == "sqlite:///b.db"


def test_unknown_options_and_commands_are_errors(capsys):
    for argv in (["ingest", "--no-such-option"], ["no-such-command"], ["train", "--seed", "not-a-number"]):
        with pytest.raises(SystemExit) as exc:
            cli.build_parser().parse_args(argv)
        assert exc.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_ingest_catalogue_default_is_catalog_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("CATALOG_DIR", str(tmp_path / "my-catalogue"))
    assert cli.build_parser().parse_args(["ingest"]).catalog == str(tmp_path / "my-catalogue")


def test_db_upgrade_creates_the_schema(tmp_path, capsys):
    url, path = sqlite_url(tmp_path)
    assert cli.main(["--db", url, "db", "upgrade"]) == 0
    (revision,) = rows(path, "SELECT version_num FROM alembic_version")[0]
    assert capsys.readouterr().out.strip() == f"{url}: at revision {revision}"
    tables = {name for (name,) in rows(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"products", "labels", "taxonomy_nodes", "jobs"} <= tables


def test_db_url_defaults_to_database_url(tmp_path, monkeypatch, capsys):
    url, path = sqlite_url(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    assert cli.main(["db", "current"]) == 0  # reads, does not migrate
    assert capsys.readouterr().out.strip() == f"{url}: at revision None"
    assert cli.main(["db", "upgrade"]) == 0
    assert rows(path, "SELECT count(*) FROM alembic_version") == [(1,)]


def test_ingest_with_db_after_the_sub_command_as_the_readme_shows(tmp_path, capsys):
    url, path = sqlite_url(tmp_path)
    (tmp_path / "cat.csv").write_text(CSV)
    mapping = [arg for key in MAPPING for arg in ("--map", key)]
    argv = ["ingest", "--catalog", str(tmp_path / "cat.csv"), "--platform", "shop", *mapping, "--db", url]
    assert cli.main(argv) == 0  # no `db upgrade` first: every step migrates
    products = rows(path, "SELECT external_id, title FROM products ORDER BY external_id")
    assert products == [("a1", "Red Oxford Shirt"), ("a2", "Blue Crew Tee"), ("a3", "Black Stiletto Heels")]
    assert rows(path, "SELECT name FROM platforms") == [("shop",)]
    out = capsys.readouterr().out
    assert "cat.csv: 3 rows -> 3 new" in out
    assert cli.main(argv) == 0  # again: nothing new
    assert "3 rows -> 0 new, 0 updated, 3 unchanged" in capsys.readouterr().out


def test_a_rejected_catalogue_exits_2_and_changes_nothing(tmp_path, capsys):
    url, path = sqlite_url(tmp_path)
    (tmp_path / "cat.csv").write_text("sku,name\na1,Shirt\n")
    assert cli.main(["ingest", "--catalog", str(tmp_path / "cat.csv"), "--db", url, "--map", "id=sku"]) == 2
    assert "ingest failed, the database is unchanged" in capsys.readouterr().err
    assert rows(path, "SELECT count(*) FROM products") == [(0,)]


def test_embed_passes_the_chosen_encoders_and_none_means_no_photos(tmp_path, monkeypatch, capsys):
    url, _ = sqlite_url(tmp_path)
    calls = []

    def fake_embed(db_url, **kwargs):
        calls.append((db_url, kwargs))
        return SimpleNamespace(stats={"title": "3 embedded"}, encoder_ids={"title": "text:minilm@1"})

    monkeypatch.setattr(cli, "embed", fake_embed)
    assert cli.main(["embed", "--text", "minilm", "--image", "none", "--batch-size", "8", "--db", url]) == 0
    (db_url, kwargs), = calls
    assert db_url == url and kwargs["choice"] == EncoderChoice(text="minilm", image=None)
    assert kwargs["batch_size"] == 8 and kwargs["descriptions"] is False
    assert "title (text:minilm@1): 3 embedded" in capsys.readouterr().out
    assert cli.main(["embed", "--text", "no-such-encoder", "--db", url]) == 2
    assert "unknown encoder 'no-such-encoder'" in capsys.readouterr().err
    assert len(calls) == 1


def test_a_plain_embed_keeps_the_recorded_choice(tmp_path, monkeypatch):
    url, _ = sqlite_url(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    calls = []
    monkeypatch.setattr(
        cli, "embed", lambda db_url, **kw: calls.append(kw["choice"]) or SimpleNamespace(stats={}, encoder_ids={})
    )
    assert cli.main(["embed", "--db", url]) == 0  # nothing recorded yet: the bundled encoders
    record_encoders(EncoderChoice(text="roberta", image=None))
    assert cli.main(["embed", "--db", url]) == 0
    assert cli.main(["embed", "--image", "efficientnet-lite0", "--db", url]) == 0
    assert calls == [
        EncoderChoice(text="minilm", image="efficientnet-lite0"),
        EncoderChoice(text="roberta", image=None),
        EncoderChoice(text="roberta", image="efficientnet-lite0"),
    ]


def test_the_curator_console_script_is_python_m_core(tmp_path):
    (entry,) = [ep for ep in importlib.metadata.entry_points(group="console_scripts") if ep.name == "curator"]
    assert entry.value == "core.cli:main" and entry.load() is cli.main
    script = Path(sys.executable).parent / "curator"
    assert script.exists()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed package, from anywhere
    curator = subprocess.run([str(script), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    module = subprocess.run(
        [sys.executable, "-m", "core", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert curator.stdout == module.stdout and "ingest" in curator.stdout
