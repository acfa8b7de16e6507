"""Label-issue scores: out-of-fold probabilities, self-confidence, margin, confident-learning flags,
the label-flip benchmark helper, and the queue written to the database."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from core import config
from core.classify.bundle import ModelBundle
from core.classify.estimator import HierarchicalClassifier
from core.classify.taxonomy import TaxonomyTree
from core.data.dataset import Catalogue
from core.embed.choice import EncoderChoice
from core.review.scores import flip_labels, fold_ids, in_queue, issue_scores, out_of_fold_marginals, review_features
from core.steps import review as review_step
from core.steps.train import train
from db import review as db_review
from db.models import ModelVersion, Product, ReviewItem
from tests.core.conftest import quiet, relabel
from tests.core.ml_helpers import LEAVES, STAND_INS

PATHS = [("A", "a1"), ("A", "a2"), ("B", "b1"), ("B", "b2")]


def marginals_for(leaf_probs: np.ndarray, tree: TaxonomyTree) -> list[np.ndarray]:
    """Per-level marginals of rows of leaf probabilities over PATHS (a 2-level tree)."""
    top = np.zeros((len(leaf_probs), tree.sizes[0]))
    second = np.zeros((len(leaf_probs), tree.sizes[1]))
    for j, path in enumerate(PATHS):
        top[:, tree.encode([path])[0, 0]] += leaf_probs[:, j]
        second[:, tree.encode([path])[0, 1]] += leaf_probs[:, j]
    return [top.astype(np.float32), second.astype(np.float32)]


def test_issue_scores_flag_the_label_the_model_contradicts():
    tree = TaxonomyTree.from_paths(PATHS)
    probs = np.array(
        [
            [0.90, 0.05, 0.03, 0.02],  # labelled a1, agrees
            [0.85, 0.10, 0.03, 0.02],  # labelled a1, agrees
            [0.05, 0.90, 0.03, 0.02],  # labelled a2, agrees
            [0.02, 0.03, 0.90, 0.05],  # labelled b1, agrees
            [0.02, 0.03, 0.05, 0.90],  # labelled b2, agrees
            [0.96, 0.02, 0.01, 0.01],  # labelled b2 but looks like a1: the mislabelled one
        ]
    )
    labels = [PATHS[0], PATHS[0], PATHS[1], PATHS[2], PATHS[3], PATHS[3]]
    scores = issue_scores(tree, marginals_for(probs, tree), labels)
    assert scores.self_confidence[5] == pytest.approx(0.01)
    assert scores.margin[5] == pytest.approx(0.01 - 0.96)
    assert scores.margin[0] == pytest.approx(0.90 - 0.05)  # the best path outside the label
    assert scores.flagged.tolist() == [False, False, False, False, False, True]
    assert scores.level_flag[5].tolist() == [True, True]  # wrong top level, so wrong leaf too
    # per-class thresholds: P(A) = 0.94 would stay under A's threshold (0.95, the mean over A's products)
    probs[5] = [0.88, 0.06, 0.03, 0.03]
    assert issue_scores(tree, marginals_for(probs, tree), labels).level_flag[5].tolist() == [False, True]
    assert scores.suggested[5] == ("A", "a1") and scores.suggested_confidence[5] == pytest.approx(0.96)
    assert scores.suggested[0] == ("A", "a2")  # the best path that is not the label
    assert scores.ranking("self_confidence")[0] == 5 and scores.ranking("margin")[0] == 5
    assert scores.ranking("disagreement_by_confidence (baseline)")[0] == 5
    assert scores.ranking("raw_confidence (baseline)")[0] == 1  # the least confident prediction (0.85)
    assert in_queue(scores).tolist() == [False] * 5 + [True]
    assert scores.max_confidence[5] == pytest.approx(0.96)
    assert [r["level"] for r in scores.level_records(5)] == [1, 2] and scores.level_records(5)[0]["flag"] is True


def test_issue_scores_handle_labels_at_an_inner_node():
    tree = TaxonomyTree.from_paths(PATHS)
    probs = np.array([[0.10, 0.10, 0.40, 0.40], [0.45, 0.45, 0.05, 0.05]])
    scores = issue_scores(tree, marginals_for(probs, tree), [("A",), ("A",)])
    assert scores.self_confidence.tolist() == pytest.approx([0.2, 0.9])
    assert scores.suggested[0][0] == "B" and scores.suggested[1][0] == "B"  # never a leaf under the label
    assert np.isnan(scores.level_self_confidence[0, 1])


def test_out_of_fold_scores_never_come_from_a_model_that_saw_the_label():
    """Random labels on random features: a model fitted on them memorises them (high self-confidence
    in sample); out of fold, the labels are unpredictable (self-confidence near chance)."""
    rng = np.random.default_rng(0)
    X = {"x": rng.normal(size=(240, 32)).astype(np.float32)}
    masks = {"x": np.ones(240, bool)}
    labels = [PATHS[i] for i in rng.integers(0, 4, size=240)]
    options = {"epochs": 150, "patience": 200, "val_fraction": 0.0, "dropout": 0.0, "hidden": 256}
    tree, marginals = out_of_fold_marginals(X, masks, labels, folds=3, seed=0, **options)
    oof = issue_scores(tree, marginals, labels).self_confidence.mean()
    clf = HierarchicalClassifier(fusion="early", modalities=["x"], tree=tree, seed=0, lr=2e-3, batch_size=64, **options)
    in_sample = issue_scores(tree, clf.fit(X, labels, masks=masks).predict_proba(X, masks=masks), labels)
    assert in_sample.self_confidence.mean() > 0.8 and oof < 0.45


def test_flip_labels_moves_a_share_to_a_sibling_or_cousin():
    labels = [tuple(leaf.split(" > ")) for leaf in LEAVES] * 50
    noisy, flipped = flip_labels(labels, share=0.1, seed=3)
    assert len(flipped) == 20 and len(set(flipped.tolist())) == 20
    changed = [i for i in range(len(labels)) if noisy[i] != labels[i]]
    assert changed == flipped.tolist()
    assert all(noisy[i][0] == labels[i][0] and noisy[i] in labels for i in flipped)  # same top level, a real path
    again, flipped_again = flip_labels(labels, share=0.1, seed=3)
    assert again == noisy and flipped_again.tolist() == flipped.tolist()


FLIPS_PER_LEAF = 3  # 12 of the 240 products get a wrong label: 5%, the chance share of any top 12


def flip(cat, labels: dict[str, str], *, seed: int) -> dict[str, str]:
    """{sku: wrong leaf} for FLIPS_PER_LEAF products of each hidden leaf (seeded): another leaf than `labels[sku]`."""
    rng = np.random.default_rng(seed)
    out = {}
    for leaf in LEAVES:
        for sku in rng.choice(cat.skus_of(leaf), FLIPS_PER_LEAF, replace=False):
            out[str(sku)] = str(rng.choice([other for other in LEAVES if other != labels[sku]]))
    return out


def flipped_in_top(db_url, factory, flips: dict[str, str], k: int) -> tuple[int, list[dict]]:
    """(how many of the queue's first k are flipped products, the queue items of the flipped products)."""
    review_step.run_review(db_url, folds=3, log=quiet)
    with factory() as s:
        items = db_review.queue(s, limit=len(flips) * 20)
        sku = dict(s.execute(select(Product.id, Product.external_id)).all())
    top = [sku[item["product_id"]] for item in items[:k]]
    return sum(t in flips for t in top), [item for item in items if sku[item["product_id"]] in flips]


def test_review_ranks_wrong_labels_first_and_not_when_every_label_is_shuffled(small_db, small_catalogue, factory):
    """12 products get a wrong label. A random ranking puts 4 or more of them in the queue's first 12 with chance
    0.0015 (hypergeometric: 12 drawn from 240 holding 12). On the hidden labels the review must rank at least 4 in its
    first 12 (measured: 6 to 8); on labels shuffled over the products (the same 12 then wrong like any other) at most
    3 (measured: 0 to 2)."""
    hidden = dict(zip(small_catalogue.skus, small_catalogue.labels()))
    flips = flip(small_catalogue, hidden, seed=0)
    relabel(factory, flips)
    k = len(flips)
    found, flagged = flipped_in_top(small_db, factory, flips, k)
    assert found >= 4
    with factory() as s:
        sku_of = dict(s.execute(select(Product.id, Product.external_id)).all())
    assert all(item["label"] == flips[sku_of[item["product_id"]]] and not item["label_changed"] for item in flagged)
    right = [item["suggested"] == hidden[sku_of[item["product_id"]]] for item in flagged]
    assert len(right) >= found and np.mean(right) > 1 / 3 + 0.25  # 3 other leaves: a guess is right a third of the time
    with factory() as s:
        assert s.scalar(select(ReviewItem.run_key)) is not None

    shuffled = dict(zip(small_catalogue.skus, small_catalogue.labels(shuffle_seed=5)))
    control = flip(small_catalogue, shuffled, seed=0)  # the same 12 products (the same seed), wrong against the shuffle
    relabel(factory, {**shuffled, **control})
    found_control, _ = flipped_in_top(small_db, factory, control, k)
    assert found_control <= 3


def test_a_level_with_one_node_has_finite_margins_and_lonely_paths_are_not_queued():
    paths = [("X", "x1"), ("X", "x2"), ("X", "x2")]
    tree = TaxonomyTree.from_paths(paths)
    marginals = [np.ones((3, 1), np.float32), np.array([[0.1, 0.9], [0.2, 0.8], [0.9, 0.1]], np.float32)]
    scores = issue_scores(tree, marginals, paths)
    assert np.isfinite(scores.level_margin).all() and scores.level_margin[:, 0].tolist() == [1.0, 1.0, 1.0]
    assert scores.alone.tolist() == [True, False, False]
    assert in_queue(scores).tolist() == [False, False, True]  # row 0 looks wrong but its path has one product


def test_folds_are_stratified_by_path():
    labels = [("A", "a")] * 7 + [("B", "b")] * 2 + [("C", "c")] * 3
    folds = fold_ids(labels, 3, seed=0)
    for path in set(labels):
        rows = [i for i, p in enumerate(labels) if p == path]
        counts = np.bincount(folds[rows], minlength=3)
        assert counts.max() - counts.min() <= 1  # spread over the folds
        assert len(set(folds[rows].tolist())) == min(3, len(rows))


def test_run_review_records_its_run_with_the_chosen_encoders(small_db, small_catalogue, second_choice, factory):
    relabel(factory, flip(small_catalogue, dict(zip(small_catalogue.skus, small_catalogue.labels())), seed=1))
    stored = review_step.run_review(small_db, folds=3, choice=second_choice, log=quiet)
    run = review_step.last_review_run()
    assert run is not None and run.step == "review" and run.outputs["stored"] == stored >= 1
    ids = {"title": small_catalogue.encoder_id("text") + "-b", "image": small_catalogue.encoder_id("image") + "-b"}
    assert run.inputs["products"] == run.inputs["labelled"] == 240 and run.inputs["encoders"] == ids  # the choice given
    assert run.settings["folds"] == 3 and set(run.timings) == {"load", "features", "scores", "store"}
    assert review_step.review_run_file().parent == config.data_dir()
    with factory() as s:
        assert s.scalar(select(ReviewItem.run_key)) == run.inputs["key"]


def test_review_features_leave_the_photo_block_out_without_an_image_encoder(small_catalogue):
    rows = [i for i, photo in enumerate(small_catalogue.photos) if photo][:8]
    titles = [small_catalogue.titles[i] for i in rows]
    cat = Catalogue(np.arange(8, dtype=np.int64), titles=titles, texts=titles, images=[small_catalogue.photos[i] for i in rows])
    X, masks, ids = review_features(cat, choice=EncoderChoice(text=STAND_INS["text"], image=None))
    assert list(X) == ["title", "tfidf"] and list(masks) == ["title", "tfidf"] and X["tfidf"].shape[0] == 8
    assert list(ids) == ["title"] and small_catalogue.embedded["image"] == []
    X, masks, _ = review_features(cat, choice=EncoderChoice(**STAND_INS))
    assert list(X) == ["title", "tfidf", "image"] and masks["image"].all()  # the order of the early-fusion blocks
    assert sorted(small_catalogue.embedded["image"]) == sorted(cat.images)


def test_review_reads_the_active_model_versions_features(small_db, small_catalogue, factory):
    """Without a model the review fits its own TF-IDF projection; with one it uses the version's projection and
    encoders, so the queue is scored in the model's feature space."""
    choice, projector, source = review_step.review_inputs(factory)
    assert projector is None and "no active model version" in source
    version_id = train(small_db, log=quiet)
    choice, projector, source = review_step.review_inputs(factory)
    with factory() as s:
        artifact = s.get(ModelVersion, version_id).artifact
    own = ModelBundle.load(artifact).members["projector"]
    titles = [small_catalogue.titles[1], "a title the model never saw"]
    assert np.array_equal(projector.transform(titles), own.transform(titles))
    assert f"model version #{version_id}" in source and choice == EncoderChoice(**STAND_INS)
    other = EncoderChoice(text="minilm", image=None)  # another encoder choice: the version's projection is not reused
    assert review_step.review_inputs(factory, choice=other)[:2] == (other, None)
