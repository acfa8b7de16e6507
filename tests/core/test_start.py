"""core/steps/start.py: a second start with nothing changed skips ingest, embed, train and predict; a changed
catalogue file, a changed image file or an audited change to the data makes them run again. Embed, train and predict
are replaced by recorders (they are tested in their own files); ingest is the real one on a 20-product slice."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from sqlalchemy import select

from core import cli
from core.steps import fill, start
from db import actions, users
from db.models import Product, TaxonomyNode
from db.session import get_sessionmaker, transaction, upgrade
from db.users import operator


class Feats:
    stats: dict = {}
    encoder_ids: dict = {}


@pytest.fixture
def setup(tmp_path, monkeypatch, slice_file):
    """A database, a data folder, a catalogue folder holding a 20-product slice and one image file; the model steps
    recorded instead of run. Returns (url, catalogue file, image file, calls)."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "cat" / "images").mkdir(parents=True)
    catalog = slice_file(20, name="cat/products.parquet")
    image = tmp_path / "cat" / "images" / "extra.jpg"
    image.write_bytes(b"not really a photo")
    url = f"sqlite:///{tmp_path / 'start.db'}"
    upgrade(url)
    calls: list[str] = []
    real_ingest = start.ingest
    monkeypatch.setattr(start, "ingest", lambda *a, **kw: calls.append("ingest") or real_ingest(*a, **kw))
    monkeypatch.setattr(start, "embed", lambda *a, **kw: calls.append("embed") or Feats())
    monkeypatch.setattr(start, "train", lambda *a, **kw: calls.append("train"))
    monkeypatch.setattr(start, "predict", lambda *a, **kw: calls.append("predict"))
    return url, catalog, image, calls


def run(url, catalog, calls) -> list[str]:
    calls.clear()
    start.prepare(url, catalog, platform="myntra", log=lambda _: None)
    return list(calls)


def test_a_second_start_with_nothing_changed_runs_no_step(setup):
    url, catalog, _, calls = setup
    assert run(url, catalog, calls) == ["ingest", "embed", "train", "predict"]
    assert run(url, catalog, calls) == []
    assert run(url, catalog, calls) == []


def test_a_changed_catalogue_file_is_ingested_again_and_the_models_follow(setup):
    url, catalog, _, calls = setup
    run(url, catalog, calls)
    frame = pd.read_parquet(catalog)
    frame.loc[frame.index[0], "title"] = "A Title Nobody Had Before"
    frame.to_parquet(catalog)
    assert run(url, catalog, calls) == ["ingest", "embed", "train", "predict"]  # the ingest changed a product
    assert run(url, catalog, calls) == []


def test_a_changed_image_file_is_ingested_again(setup):
    url, catalog, image, calls = setup
    run(url, catalog, calls)
    image.write_bytes(b"another photo, longer than the first")
    os.utime(image, ns=(1, 1))
    assert run(url, catalog, calls)[0] == "ingest"


def relabel_first_product(url: str) -> None:
    """An audited curation action: the first product moved to the last category."""
    with transaction(get_sessionmaker(url)) as s:
        product = s.scalars(select(Product.id).order_by(Product.id)).first()
        node = s.scalars(select(TaxonomyNode.id).order_by(TaxonomyNode.id.desc())).first()
        actions.perform(s, "relabel_product", user=operator("tester"), product_id=product, node_id=node)


def test_an_audited_change_to_the_data_runs_the_model_steps_again(setup):
    url, catalog, _, calls = setup
    run(url, catalog, calls)
    relabel_first_product(url)
    assert run(url, catalog, calls)[-3:] == ["embed", "train", "predict"]
    assert run(url, catalog, calls) == []


def test_adding_a_user_is_not_a_change_to_the_data(setup):
    url, catalog, _, calls = setup
    run(url, catalog, calls)
    with transaction(get_sessionmaker(url)) as s:
        users.add_user(s, actor="tester", name="someone", password="a long enough passphrase", role="viewer")
    assert run(url, catalog, calls) == []


def test_the_fill_in_is_up_to_date_only_after_it_finished_on_the_same_data(setup, monkeypatch):
    url, catalog, _, calls = setup
    run(url, catalog, calls)
    monkeypatch.setattr(fill, "missing", lambda db_url, node_path=fill.DEFAULT_NODE: ["map"])
    monkeypatch.setattr(fill, "build_catalogue_map", lambda *a, **kw: {"key": "k"})
    assert not fill.up_to_date(url)  # never filled in
    fill.fill_in(url, log=lambda _: None)
    assert fill.up_to_date(url)
    relabel_first_product(url)
    assert not fill.up_to_date(url)


def test_the_start_command_runs_the_steps_once_then_skips_them(setup, monkeypatch, capsys):
    url, catalog, _, calls = setup
    launched = []
    monkeypatch.setattr("core.jobs.launch", lambda db_url, job_id: launched.append(job_id))
    argv = ["start", "--db", url, "--catalog", str(catalog), "--platform", "myntra"]
    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    assert "start: ingest ran, models ran" in first and len(launched) == 1  # nothing filled in yet: the job starts
    assert calls == ["ingest", "embed", "train", "predict"]
    calls.clear()
    assert cli.main(argv) == 0
    assert "start: ingest skipped, models skipped" in capsys.readouterr().out and calls == []


class Exporter:
    """Stands where `export_ahead`'s process was: records how the start ended it (its partial graph file is real)."""

    def __init__(self, folder, pid):
        self.pid = pid
        self.ended: list[str] = []
        self.partial = folder / f"0123456789abcdef.{self.pid}.tmp"
        self.partial.write_bytes(b"half a graph")

    def join(self, timeout=None):
        self.ended.append("join")

    def terminate(self):
        self.ended.append("terminate")


def test_a_start_waits_for_the_onnx_export_only_when_it_will_embed(setup, monkeypatch, tmp_path):
    """A first start waits for the graphs it embeds with; a start with nothing changed stops the export (it took ~10 s
    of a 17.5 s second start on a machine whose cache home had no graph) and removes its partial file."""
    url, catalog, _, calls = setup
    monkeypatch.setenv("CURATOR_ONNX_DIR", str(tmp_path / "onnx"))
    (tmp_path / "onnx").mkdir()
    exporters = []

    def export_ahead(names):
        exporters.append(Exporter(tmp_path / "onnx", 424242 + len(exporters)))
        return exporters[-1]

    monkeypatch.setattr(start, "export_ahead", export_ahead)
    assert run(url, catalog, calls) == ["ingest", "embed", "train", "predict"]
    assert exporters[0].ended == ["join"] and exporters[0].partial.exists()  # the export goes on to its end
    assert run(url, catalog, calls) == []
    assert exporters[1].ended == ["terminate", "join"] and not exporters[1].partial.exists()
    assert exporters[0].partial.exists()  # another process's file is left alone
    relabel_first_product(url)  # a change to the data: the models run again, so the start waits for the graphs
    assert run(url, catalog, calls)[-3:] == ["embed", "train", "predict"]
    assert exporters[2].ended == ["join"]
