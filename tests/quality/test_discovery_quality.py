"""Discovery on a real node with its next level hidden: the shipped pipeline (`core.discover.features.make_pipeline`:
SimCLR head, UMAP, cascade clustering) against the plain pipeline (UMAP + HDBSCAN on the same raw embeddings, same
minimum cluster size), both scored against the hidden article types of 1,500 Footwear > Shoes products."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from core.discover.features import make_pipeline, min_cluster_size_for
from core.discover.pipeline import plain_pipeline, score_clusters

pytestmark = [pytest.mark.quality, pytest.mark.timeout(600)]  # setup may build and embed a session slice

SEED = 0
MAX_UNASSIGNED = 0.2  # the pipeline's stage-4 budget (the `discover` default)
# thresholds; the test's docstring gives the measured values and the margins
MIN_PURITY = 0.83
MIN_LEAD_OVER_PLAIN = 0.01
MAX_NMI_DEFICIT = 0.03


def hand_purity(labels: np.ndarray, truth: np.ndarray) -> float:
    """Share of the assigned products whose hidden type is their cluster's commonest one."""
    kept = labels != -1
    majority = sum(Counter(truth[kept & (labels == c)].tolist()).most_common(1)[0][1] for c in np.unique(labels[kept]))
    return majority / kept.sum()


def clusters_of_both(node, cache_dir) -> dict[str, np.ndarray]:
    size = min_cluster_size_for(len(node.X))
    pipelines = {
        "discovery": make_pipeline(
            brands=node.brands,
            taxonomy_names=[],
            cache_dir=cache_dir,
            n=len(node.X),
            blocks=(node.X.shape[1] // 2, node.X.shape[1] // 2),
            seed=SEED,
            max_unassigned=MAX_UNASSIGNED,
        ),
        "plain": plain_pipeline(cache_dir=cache_dir, seed=SEED, min_cluster_size=size),
    }
    return {name: pipe.fit(node.X, docs=node.docs).labels_ for name, pipe in pipelines.items()}


def test_discovery_beats_plain_pipeline_on_hidden_shoe_types(node_slice, tmp_path):
    """Purity of the shipped pipeline's clusters against the hidden article types must beat the plain pipeline's,
    with at most the stage-4 budget (20%) left unassigned and NMI not clearly below the plain pipeline's.

    Measured (2026-12-01, CPU, 1,500 Shoes products: Casual 542, Sports 419, Heels 285, Formal 150, Flats 104;
    minimum cluster size 40), seed 0 / 1 / 2:
    discovery purity 0.868 / 0.885 / 0.868, NMI 0.602 / 0.600 / 0.591, ARI 0.392 / 0.385 / 0.390, 11 / 13 / 11
    clusters, 14.0 / 15.9 / 16.1% unassigned; plain purity 0.671 / 0.837 / 0.843, NMI 0.543 / 0.576 / 0.591,
    ARI 0.390 / 0.400 / 0.414, 7 / 12 / 10 clusters, 8.5 / 23.4 / 21.7% unassigned. Discovery leads on purity at
    every seed (+0.197 / +0.048 / +0.026), is level or ahead on NMI (+0.058 / +0.024 / -0.001), and is level on ARI
    (-0.023 to +0.003: it splits the large types into more clusters, which ARI counts against it).

    Thresholds (the test runs seed 0): purity >= 0.83, a margin of 0.038 below today's 0.868 (twice the seed-to-seed
    range 0.017); lead over plain >= 0.01, far below today's +0.197 because the plain pipeline's purity swings by 0.17
    between seeds and the smallest lead seen was +0.026; NMI at most 0.03 below plain's (today +0.058, worst seen
    -0.001). Random cluster labels (purity near 0.36, the commonest type's share) fail.
    """
    from sklearn.metrics import adjusted_rand_score

    labels = clusters_of_both(node_slice, tmp_path / "umap-cache")
    scores = {name: score_clusters(lab, node_slice.truth) for name, lab in labels.items()}
    ari = {name: adjusted_rand_score(node_slice.truth[lab != -1], lab[lab != -1]) for name, lab in labels.items()}
    print({name: {**s._asdict(), "ari": round(ari[name], 4)} for name, s in scores.items()})
    for name, lab in labels.items():
        assert scores[name].purity == pytest.approx(hand_purity(lab, node_slice.truth)), name
    found, plain = scores["discovery"], scores["plain"]
    assert found.share_unassigned <= MAX_UNASSIGNED + 1e-9, f"purity bought by leaving products out: {found}"
    assert found.purity >= MIN_PURITY, f"discovery purity {found.purity:.3f} < {MIN_PURITY}: {found}"
    assert found.purity - plain.purity >= MIN_LEAD_OVER_PLAIN, f"discovery {found} vs plain {plain}"
    assert found.nmi >= plain.nmi - MAX_NMI_DEFICIT, f"discovery {found} vs plain {plain}"
