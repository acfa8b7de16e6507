"""Maps for the Clusters page: colour groups, traces, and the whole-catalogue map (cached by content)."""

from __future__ import annotations

import numpy as np

from core import maps
from tests.core.conftest import quiet


def test_group_names_per_colouring():
    ids = np.array([10, 11, 12])
    assert maps.group_names("cluster", ids, clusters=np.array([0, -1, 3])) == ["cluster 0", "unassigned", "cluster 3"]
    assert maps.group_names("proposal", ids, proposals={11: "#1 sneakers (open)"}) == [
        "unassigned",
        "#1 sneakers (open)",
        "unassigned",
    ]
    labels = {10: "Footwear > Shoes > Heels", 11: "Footwear > Flip Flops > Flip Flops"}
    assert maps.group_names("label", ids, labels=labels, depth=2) == ["Footwear > Shoes", "Footwear > Flip Flops", "no label"]
    assert maps.group_names("prediction", ids, predictions={12: "A > B"}, depth=1) == ["no prediction", "no prediction", "A"]


def test_scatter_groups_keep_the_largest_and_lump_the_rest():
    names = ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"] + ["unassigned"] * 2
    ids = np.arange(len(names))
    xy = np.arange(2 * len(names), dtype=float).reshape(-1, 2) / 7
    groups = maps.scatter_groups(ids, xy, names, max_groups=3)
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


def test_unassigned_note_says_how_many_products_and_unclear_groups():
    from core.maps import unassigned_note

    assert unassigned_note({"unassigned": 0.1834, "unclear_groups": 6}) == "18% unassigned (6 unclear groups among them) · "
    assert unassigned_note({"unassigned": 0.05, "unclear_groups": 1}) == "5% unassigned (1 unclear group among them) · "
    assert unassigned_note({"unassigned": 0.288}) == "29% unassigned · "
    assert unassigned_note({"timings": {}}) == ""  # maps saved before the share was recorded
