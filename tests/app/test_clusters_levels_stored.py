"""The Clusters page's "Show these proposals" reads the level the discovery run stored (`core.steps.discover.
save_levels`) instead of re-reading the run's features and re-naming its groups; a run from before (no stored
levels, or levels left by another run) still gets its level built from the map's tree.

The tree of `test_clusters_levels.fit_tree`: one leaf cluster per hidden article type of the 80-product slice's
"Apparel" products, so every level's groups are unions of whole article types (the test's own data).
"""

from __future__ import annotations

import pandas as pd
import pytest

from app import cache, clusters_view
from core.steps import discover as disc
from tests.app.helpers import slice_paths
from tests.app.test_clusters_levels import NODE, fit_tree, google_file, open_proposals, others, shared_embeddings, show_level

__all__ = ["google_file", "shared_embeddings"]  # the fixtures fit_tree's database needs


@pytest.fixture
def stored_tree(app_env, app_slice, google_file):
    """The node's tree, and its finest level but the default stored as a discovery run stores its levels (under the
    map's run key "t"; one level only: building each costs seconds)."""
    made = fit_tree(app_env, slice_paths(pd.read_parquet(app_slice)))
    src = disc.level_source(app_env, made["id"])
    finest = others(made["tree"])[-1]
    level = disc.level_clusters(src.leaves, src.hier, src.node, k=finest, alternatives=src.alternatives, text_dim=src.text_dim)
    disc.save_levels(made["slug"], "t", {str(finest): level})
    return made


def no_rebuild(*args, **kwargs):
    raise AssertionError("a stored level must not be built again from the run's features")


def test_showing_a_level_reads_the_level_the_run_stored_without_its_features(app_env, stored_tree, monkeypatch):
    monkeypatch.setattr(cache, "level_source", no_rebuild)
    finest = others(stored_tree["tree"])[-1]
    level = cache.level_proposals(stored_tree["id"], finest)
    assert level == {"run_key": f"t:k{finest}", "k": finest, "clusters": disc.stored_level(stored_tree["slug"], "t", finest)}
    show_level(app_env, stored_tree, finest)  # the page shows the stored level's groups as the open proposals


def test_a_run_without_stored_levels_or_with_another_runs_gets_the_level_built_from_its_tree(app_env, app_slice, google_file):
    made = fit_tree(app_env, slice_paths(pd.read_parquet(app_slice)))  # a run from before levels were stored
    coarse = others(made["tree"])[0]
    built = clusters_view.build_level(disc.level_source(app_env, made["id"]), coarse)
    level = cache.level_proposals(made["id"], coarse)
    assert level == built and level["run_key"] == f"t:k{coarse}"
    assert [(c["name"], c["scores"]["level"]["leaves"]) for c in level["clusters"]] == [
        (g["name"], g["leaves"]) for g in made["tree"]["levels"][str(coarse)]
    ]
    disc.save_levels(made["slug"], "an-earlier-run", {str(coarse): []})  # not this map's run: not read
    again = cache.level_proposals(made["id"], coarse)
    assert again["clusters"] == built["clusters"] and len(again["clusters"]) >= 2


def test_storing_a_level_from_the_command_line_reads_the_level_the_run_stored(app_env, stored_tree, monkeypatch):
    monkeypatch.setattr(disc, "level_source", no_rebuild)  # `python -m core discover --level K`
    finest = others(stored_tree["tree"])[-1]
    stored = disc.stored_level(stored_tree["slug"], "t", finest)
    assert disc.store_level(app_env, NODE, finest) == len(stored)
    now = open_proposals(app_env, stored_tree["id"])
    assert sorted((p.name, sorted(p.members)) for p in now) == sorted((c["name"], sorted(c["members"])) for c in stored)
    assert {p.run_key for p in now} == {f"t:k{finest}"}
