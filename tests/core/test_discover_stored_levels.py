"""A discovery run stores the proposals of every level of its tree beside its map (`core.steps.discover.all_levels`,
`save_levels`), so that showing another level reads them instead of re-reading the run's features and re-naming its
groups; they must read back as what the level built later from the stored tree (`Hierarchy.restore`, as
`level_source` does for a run from before) gives. A file left by another run, or none, reads as no stored levels.

Synthetic fixture of `test_discover_proposals`: eight leaf clusters in three families with hand-written titles.
"""

from __future__ import annotations

import numpy as np

from core.discover.levels import Hierarchy
from core.steps import discover as disc
from core.steps.maps import slug_for
from tests.core.test_discover_proposals import fitted

SLUG = slug_for(7)


def comparable(clusters: list[dict]) -> list[dict]:
    """A level's proposals as a page shows and stores them (the JSON round trip turns tuples into lists)."""
    import json

    return json.loads(json.dumps(clusters))


def rebuilt(pipe, hier, node, k: int) -> list[dict]:
    """Level `k` built afterwards from the run's stored tree (what an older run's "Show level" does)."""
    restored = Hierarchy.restore(hier.as_dict(), pipe.labels_, node.titles, brands=node.brands)
    return disc.level_clusters(pipe, restored, node, k=k)


def test_every_level_of_the_tree_is_stored_and_reads_back_as_the_level_built_from_the_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    pipe, hier, node, family = fitted()
    disc.save_levels(SLUG, "run-1", disc.all_levels(pipe, hier, node))
    stored = disc.stored_levels(SLUG, "run-1")
    assert set(stored) == {str(k) for k in range(1, 8)}  # k_max 7 of the fixture's 8 leaves: the tree's levels 1..7
    assert set(stored) == set(hier.as_dict()["levels"])
    for k, clusters in stored.items():
        assert clusters == comparable(rebuilt(pipe, hier, node, int(k))), k
    # the default level is the three families, each proposal holding the products of one family
    default = stored[str(hier.default_k_)]
    assert hier.default_k_ == 3 and len(default) == 3
    for c in default:
        fams = {int(family[pipe.labels_[int(np.flatnonzero(node.product_ids == m)[0])]]) for m in c["members"]}
        assert len(fams) == 1
    assert sorted(m for c in default for m in c["members"]) == node.product_ids.tolist()


def test_levels_of_another_run_or_none_read_as_not_stored(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    pipe, hier, node, _ = fitted()
    assert disc.stored_levels(SLUG, "run-1") == {} and disc.stored_level(SLUG, "run-1", 3) is None  # an older run
    disc.save_levels(SLUG, "run-1", disc.all_levels(pipe, hier, node))
    assert disc.stored_level(SLUG, "run-1", 3) is not None
    assert disc.stored_levels(SLUG, "run-2") == {}  # the map is of a newer run: these levels are not its
    assert disc.stored_level(SLUG, "run-2", 3) is None
    disc.level_file(SLUG, 3).write_bytes(b"not gzip")  # a damaged file: that level is built again
    assert disc.stored_level(SLUG, "run-1", 3) is None and "3" not in disc.stored_levels(SLUG, "run-1")
    disc.save_levels(SLUG, "run-3", {"2": []})  # a new run's levels replace the earlier run's
    assert disc.stored_levels(SLUG, "run-1") == {} and disc.stored_levels(SLUG, "run-3") == {"2": []}
