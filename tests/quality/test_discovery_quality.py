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

SEEDS = (0, 1, 2)  # the claim is about the method, not one seed: scored over three, the means compared
MAX_UNASSIGNED = 0.2  # the pipeline's stage-4 budget (the `discover` default)
# thresholds on the means over SEEDS; the test's docstring gives the measured values and the margins
MIN_PURITY = 0.84
MIN_LEAD_OVER_PLAIN = 0.01
MAX_NMI_DEFICIT = 0.03


def hand_purity(labels: np.ndarray, truth: np.ndarray) -> float:
    """Share of the assigned products whose hidden type is their cluster's commonest one."""
    kept = labels != -1
    majority = sum(Counter(truth[kept & (labels == c)].tolist()).most_common(1)[0][1] for c in np.unique(labels[kept]))
    return majority / kept.sum()


def clusters_of_both(node, cache_dir, seed: int) -> dict[str, np.ndarray]:
    size = min_cluster_size_for(len(node.X))
    pipelines = {
        "discovery": make_pipeline(
            brands=node.brands,
            taxonomy_names=[],
            cache_dir=cache_dir,
            n=len(node.X),
            blocks=(node.X.shape[1] // 2, node.X.shape[1] // 2),
            seed=seed,
            max_unassigned=MAX_UNASSIGNED,
        ),
        "plain": plain_pipeline(cache_dir=cache_dir, seed=seed, min_cluster_size=size),
    }
    return {name: pipe.fit(node.X, docs=node.docs).labels_ for name, pipe in pipelines.items()}


def test_discovery_beats_plain_pipeline_on_hidden_shoe_types(node_slice, tmp_path):
    """Purity of the shipped pipeline's clusters against the hidden article types must beat the plain pipeline's,
    with at most the stage-4 budget (20%) left unassigned at every seed and NMI not clearly below the plain
    pipeline's; purity and NMI are compared as means over seeds 0, 1, 2.

    Measured on 1,500 Shoes products (Casual 542, Sports 419, Heels 285, Formal 150, Flats 104; minimum cluster size
    40), CPU, seed 0 / 1 / 2, on two machines whose float results differ (AMD EPYC VMs; the same code and packages):
    - 2026-12-01: discovery purity 0.868 / 0.885 / 0.868 (mean 0.874), NMI 0.602 / 0.600 / 0.591 (0.598), 14.0 /
      15.9 / 16.1% unassigned; plain purity 0.671 / 0.837 / 0.843 (0.784), NMI 0.543 / 0.576 / 0.591 (0.570);
    - 2026-12-02: discovery purity 0.818 / 0.910 / 0.866 (mean 0.864), NMI 0.588 / 0.623 / 0.587 (0.599), 15.5 /
      19.6 / 15.7% unassigned; plain purity 0.829 / 0.831 / 0.842 (0.834), NMI 0.569 / 0.572 / 0.589 (0.577).
    One seed is not enough: on the second machine seed 0 alone has discovery below plain on purity (-0.011), which
    failed the earlier single-seed form of this test there; the means lead on both machines (+0.090, +0.030).

    Thresholds on the means: purity >= 0.84 (0.024 below the lower machine's 0.864); lead over plain >= 0.01 (the
    smallest lead seen +0.030); NMI at most 0.03 below plain's (seen +0.028, +0.022). Random cluster labels (purity
    near 0.36, the commonest type's share) fail.
    """
    from sklearn.metrics import adjusted_rand_score

    found, plain = [], []
    for seed in SEEDS:
        labels = clusters_of_both(node_slice, tmp_path / f"umap-cache-{seed}", seed)
        scores = {name: score_clusters(lab, node_slice.truth) for name, lab in labels.items()}
        ari = {name: adjusted_rand_score(node_slice.truth[lab != -1], lab[lab != -1]) for name, lab in labels.items()}
        print(seed, {name: {**s._asdict(), "ari": round(ari[name], 4)} for name, s in scores.items()})
        for name, lab in labels.items():
            assert scores[name].purity == pytest.approx(hand_purity(lab, node_slice.truth)), name
        left_out = scores["discovery"].share_unassigned
        assert left_out <= MAX_UNASSIGNED + 1e-9, f"seed {seed}: purity bought by leaving {left_out:.0%} out"
        found.append(scores["discovery"])
        plain.append(scores["plain"])
    purity, plain_purity = np.mean([s.purity for s in found]), np.mean([s.purity for s in plain])
    nmi, plain_nmi = np.mean([s.nmi for s in found]), np.mean([s.nmi for s in plain])
    assert purity >= MIN_PURITY, f"discovery mean purity {purity:.3f} < {MIN_PURITY}: {found}"
    assert purity - plain_purity >= MIN_LEAD_OVER_PLAIN, f"discovery {purity:.3f} vs plain {plain_purity:.3f}"
    assert nmi >= plain_nmi - MAX_NMI_DEFICIT, f"discovery NMI {nmi:.3f} vs plain {plain_nmi:.3f}"
