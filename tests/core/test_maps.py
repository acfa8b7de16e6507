"""Maps for the Clusters page: colour groups, traces, and the whole-catalogue map (cached by content)."""

from __future__ import annotations

import json

import numpy as np

from app.scatter import group_names, scatter_groups, unassigned_note
from core.embed.choice import EncoderChoice, record_encoders
from core.runs import RunRecord
from core.steps import maps
from tests.core.conftest import quiet
from tests.core.ml_helpers import STAND_INS


def test_group_names_per_colouring():
    ids = np.array([10, 11, 12])
    assert group_names("cluster", ids, clusters=np.array([0, -1, 3])) == ["cluster 0", "unassigned", "cluster 3"]
    assert group_names("proposal", ids, proposals={11: "#1 sneakers (open)"}) == [
        "unassigned",
        "#1 sneakers (open)",
        "unassigned",
    ]
    labels = {10: "Footwear > Shoes > Heels", 11: "Footwear > Flip Flops > Flip Flops"}
    assert group_names("label", ids, labels=labels, depth=2) == ["Footwear > Shoes", "Footwear > Flip Flops", "no label"]
    assert group_names("prediction", ids, predictions={12: "A > B"}, depth=1) == ["no prediction", "no prediction", "A"]


def test_scatter_groups_keep_the_largest_and_lump_the_rest():
    names = ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"] + ["unassigned"] * 2
    ids = np.arange(len(names))
    xy = np.arange(2 * len(names), dtype=float).reshape(-1, 2) / 7
    groups = scatter_groups(ids, xy, names, max_groups=3)
    assert [g["name"] for g in groups] == ["a (5)", "b (3)", "other (3)", "unassigned (2)"]
    assert sum(len(g["ids"]) for g in groups) == len(names)
    other = groups[2]
    assert other["ids"] == [8, 9, 10] and other["muted"] and not groups[0]["muted"]
    assert other["x"][0] == round(16 / 7, 3)


def test_catalogue_map_is_built_once_per_content(small_db, tmp_path):
    lines: list[str] = []
    meta = maps.build_catalogue_map(small_db, log=lines.append)
    saved = maps.load_map(maps.ALL)
    assert saved is not None and len(saved["product_ids"]) == 240 and saved["xy"].shape == (240, 2)
    assert meta["clusters"] >= 2 and set(meta["timings"]) >= {"head", "reduce", "view", "cluster"}
    assert saved["meta"]["key"] == meta["key"]
    again = maps.build_catalogue_map(small_db, log=lines.append)
    assert again["key"] == meta["key"] and "up to date" in lines[-1]
    assert maps.build_catalogue_map(small_db, force=True, log=quiet)["made"]


def test_a_small_catalogues_map_finds_clusters_whatever_the_seed(small_db):
    """240 products over 4 leaves: with the large catalogue's smallest cluster (40 products) seed 2 found none at all
    (everything unassigned); a small catalogue's clusters are smaller."""
    for seed in (1, 2):
        meta = maps.build_catalogue_map(small_db, seed=seed, force=True, log=quiet)
        assert meta["clusters"] >= 2 and meta["unassigned"] < 0.5, (seed, meta["clusters"], meta["unassigned"])


def test_catalogue_map_records_its_run_and_is_rebuilt_for_another_encoder(small_db, small_catalogue, second_choice):
    meta = maps.build_catalogue_map(small_db, log=quiet)
    run = maps.load_run(maps.ALL)
    assert run is not None and run.step == "map" and run.inputs["key"] == meta["key"] == meta["run"]["inputs"]["key"]
    title_id = small_catalogue.encoder_id("text")
    assert run.inputs["products"] == 240 and run.inputs["encoders"] == {"title": title_id}  # the recorded choice
    assert small_catalogue.embedded["image"] == []  # the map reads titles only
    assert set(run.timings) >= {"load", "features", "head", "reduce", "view", "cluster", "name"}
    assert run.settings["seed"] == 0 and run.settings["head"]["seed"] == 0 and "clusterer" in run.settings
    assert run.outputs["clusters"] == meta["clusters"] and run.outputs["unassigned"] == meta["unassigned"]
    saved = json.loads(maps.map_file(maps.ALL).with_suffix(".json").read_text())
    assert saved["run"]["inputs"]["key"] == meta["key"] and "unassigned" in saved and "timings" in saved
    lines: list[str] = []
    record_encoders(second_choice)  # what `python -m core embed --text test-text-b` records
    other = maps.build_catalogue_map(small_db, log=lines.append)
    assert other["key"] != meta["key"] and "up to date" not in lines[-1]  # the title encoder is part of the key
    assert other["features"].startswith("test-text-b title embeddings")
    assert other["run"]["inputs"]["encoders"]["title"] == title_id + "-b"
    first = EncoderChoice(text=STAND_INS["text"], image=None)
    explicit = maps.build_catalogue_map(small_db, choice=first, log=quiet)  # a choice given wins over the recorded one
    assert explicit["key"] == meta["key"]  # the first encoder again: the first map's key


def test_a_map_saved_with_a_run_record_keeps_it_beside_the_arrays(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    record = RunRecord("discover", settings={"seed": 1}, inputs={"products": 3})
    record.stage("fit")
    ids, xy, clusters = np.array([4, 5, 6]), np.zeros((3, 2)), np.array([0, -1, 0])
    maps.save_map("node-7", product_ids=ids, xy=xy, clusters=clusters, meta={"unassigned": 0.3333}, run=record)
    loaded = maps.load_map("node-7")
    assert loaded["product_ids"].tolist() == [4, 5, 6] and loaded["clusters"].tolist() == [0, -1, 0]
    assert loaded["meta"]["unassigned"] == 0.3333 and loaded["meta"]["run"]["settings"] == {"seed": 1}
    assert maps.run_file("node-7") == tmp_path / "maps" / "node-7.run.json"
    assert maps.load_run("node-7").inputs == {"products": 3} and maps.load_run("node-7").step == "discover"
    assert maps.load_map("node-8") is None and maps.load_run("node-8") is None
    assert maps.slug_for(7) == "node-7" and maps.slug_for(None) == maps.ALL


def test_unassigned_note_says_how_many_products_and_unclear_groups():
    assert unassigned_note({"unassigned": 0.1834, "unclear_groups": 6}) == "18% unassigned (6 unclear groups among them) · "
    assert unassigned_note({"unassigned": 0.05, "unclear_groups": 1}) == "5% unassigned (1 unclear group among them) · "
    assert unassigned_note({"unassigned": 0.288}) == "29% unassigned · "
    assert unassigned_note({"timings": {}}) == ""  # maps saved before the share was recorded
