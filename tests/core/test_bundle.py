"""ModelBundle on every catalogue shape: text only, photos only, text with a few photos, full; the too-little-data
refusal; a save/load round trip. Features are synthetic: drawn from each product's hidden class with overlap, titles
built from class words with shared words, so a model can be wrong (and the checks below could fail)."""

from __future__ import annotations

import numpy as np
import pytest

from core.classify.bundle import MIN_LABELLED, ModelBundle, NotEnoughData
from core.data.dataset import Catalogue
from core.data.split import fixed_split
from core.embed.features import Features

LEAVES = [("Apparel", "Tops"), ("Apparel", "Shirts"), ("Footwear", "Shoes", "Heels"), ("Footwear", "Shoes", "Flats")]
WORDS = [["cotton", "crew", "soft"], ["collar", "button", "formal"], ["stiletto", "pointed", "tall"], ["ballet", "slip", "flat"]]
SHARED = ["blue", "classic", "new", "everyday", "black"]
SMALL = {"hidden": 32, "epochs": 10, "patience": 3}


def catalogue(n: int = 240, *, text: bool = True, photos: float = 1.0, seed: int = 0, leaves=LEAVES):
    """(Catalogue, Features, hidden class per row): title/photo vectors = class centroid + noise (overlapping)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(len(leaves), size=n)
    centroids = rng.normal(size=(len(leaves), 16))
    titles = []
    for c in k:
        words = [*rng.choice(WORDS[c % len(WORDS)], size=1), *rng.choice(SHARED, size=3)]
        titles.append(" ".join(words) if text else "")
    has_photo = rng.random(n) < photos
    cat = Catalogue(
        product_ids=np.arange(1, n + 1),
        external_ids=[f"p{i}" for i in range(n)],
        platforms=["shop"] * n,
        titles=titles,
        texts=titles,
        images=[f"/img/{i}.png" if has_photo[i] else None for i in range(n)],
        labels=[leaves[c] for c in k],
        label_sources=["platform"] * n,
        descriptions=[""] * n,
    )
    blocks, masks = {}, {}
    if text:
        blocks["title"] = (centroids[k] + rng.normal(scale=1.2, size=(n, 16))).astype(np.float32)
        masks["title"] = np.ones(n, bool)
    if photos > 0:
        image = (centroids[k] + rng.normal(scale=1.2, size=(n, 16))).astype(np.float32)
        image[~has_photo] = 0
        blocks["image"], masks["image"] = image, has_photo
    if not text:  # the title block still exists (embeddings of empty titles) but carries nothing
        blocks["title"], masks["title"] = np.zeros((n, 16), np.float32), np.ones(n, bool)
    feats = Features(cat.product_ids, blocks, masks, {m: f"fake-{m}" for m in blocks}, {})
    return cat, feats, k


def fit(cat, feats, tmp_path):
    lines = []
    bundle = ModelBundle(seed=0, cache_dir=tmp_path / "cache", train_options=SMALL).fit(
        cat, feats, encoder_choice={"text": "minilm", "image": "efficientnet-lite0"}, log=lines.append
    )
    return bundle, lines


def held_out_accuracy(bundle, cat, feats):
    test = fixed_split(cat, seed=0).test
    result = bundle.predict(cat, feats)
    truth = np.array([cat.labels[i] == tuple(p) for i, p in enumerate(bundle.tree.decode(result.prediction.nodes))])
    return float(truth[test].mean()), result


def majority_share(cat):
    _, counts = np.unique([" > ".join(p) for p in cat.labels], return_counts=True)
    return counts.max() / counts.sum()


@pytest.mark.parametrize(
    "shape, text, photos, members, stages",
    [
        ("text only", True, 0.0, {"projector", "svm", "stage1"}, 1),
        ("photos only", False, 1.0, {"stage1"}, 1),
        ("text, photos for a few", True, 0.1, {"projector", "svm", "stage1", "stage2"}, 2),
        ("text and photos", True, 1.0, {"projector", "aligner", "svm", "stage1", "stage2"}, 2),
    ],
)
def test_every_catalogue_shape_trains_and_predicts_with_what_it_has(tmp_path, shape, text, photos, members, stages):
    cat, feats, _ = catalogue(text=text, photos=photos)
    bundle, lines = fit(cat, feats, tmp_path)
    assert set(bundle.members) == members
    assert bool(bundle.manifest.modalities["skipped"]) == (members != {"projector", "aligner", "svm", "stage1", "stage2"})
    assert any(("two stages" if stages == 2 else "one stage") in line for line in lines)
    accuracy, result = held_out_accuracy(bundle, cat, feats)
    assert accuracy > majority_share(cat) + 0.15  # learnt something from what the catalogue has
    assert (result.stage == 2).any() == (stages == 2 and bundle.manifest.threshold > 0)
    shuffled = catalogue(text=text, photos=photos)[0]
    shuffled.labels = list(np.random.default_rng(1).permutation(np.array(cat.labels, dtype=object)))
    control, _ = held_out_accuracy(fit(shuffled, feats, tmp_path / "shuffled")[0], shuffled, feats)
    assert control < majority_share(shuffled) + 0.15  # the same pipeline on shuffled labels learns nothing


def test_the_reasons_for_what_was_left_out_are_recorded(tmp_path):
    cat, feats, _ = catalogue(text=True, photos=0.1)
    skipped = fit(cat, feats, tmp_path)[0].manifest.modalities["skipped"]
    assert list(skipped) == ["joint"] and "title-photo pairs" in skipped["joint"] and "at least 50" in skipped["joint"]
    cat, feats, _ = catalogue(text=False, photos=1.0)
    assert "no product has a title" in fit(cat, feats, tmp_path / "p")[0].manifest.modalities["skipped"]["text"]


def test_a_saved_bundle_of_each_shape_loads_and_predicts_the_same(tmp_path):
    for text, photos in ((True, 0.0), (False, 1.0), (True, 1.0)):
        cat, feats, _ = catalogue(text=text, photos=photos)
        bundle, _ = fit(cat, feats, tmp_path / f"c{text}{photos}")
        before = bundle.predict(cat, feats).prediction.nodes
        loaded = ModelBundle.load(bundle.save(tmp_path / f"v{text}{photos}"))
        fresh = Features(
            feats.product_ids,
            {m: feats.blocks[m] for m in ("title", "image") if m in feats.blocks},
            {m: feats.masks[m] for m in ("title", "image") if m in feats.masks},
        )
        assert np.array_equal(loaded.predict(cat, fresh).prediction.nodes, before)
        assert loaded.manifest.members == bundle.manifest.members


def test_a_one_level_taxonomy_a_single_child_and_a_lonely_category(tmp_path):
    leaves = [("Tops",), ("Shoes", "Heels"), ("Bags",), ("Hats",)]  # Shoes has one child
    cat, feats, k = catalogue(n=200, leaves=leaves)
    cat.labels[0] = ("Scarves",)  # a category with one product
    bundle, _ = fit(cat, feats, tmp_path)
    accuracy, result = held_out_accuracy(bundle, cat, feats)
    assert accuracy > majority_share(cat) + 0.15
    assert all(tuple(p) in {*leaves, ("Scarves",)} for p in bundle.tree.decode(result.prediction.nodes))


def test_too_little_data_is_refused_with_counts_and_what_is_needed(tmp_path):
    cat, feats, _ = catalogue(n=MIN_LABELLED - 1)
    with pytest.raises(NotEnoughData, match=rf"{MIN_LABELLED - 1} labelled products \(at least {MIN_LABELLED} needed\)"):
        fit(cat, feats, tmp_path)
    cat, feats, _ = catalogue(n=60)
    cat.labels = [("Apparel", "Tops")] * 60
    with pytest.raises(NotEnoughData, match=r"1 category in use \(at least 2 needed"):
        fit(cat, feats, tmp_path)


@pytest.mark.parametrize("text, photos", [(True, 0.5), (False, 1.0)], ids=["stacked", "photo-only-neural"])
def test_products_labelled_at_an_inner_node_are_placed_below_it(tmp_path, text, photos):
    """A product whose label is an inner node (its platform category mapped onto a common ancestor) is predicted at
    a leaf below that node, even where the unconstrained prediction lies elsewhere; leaf labels change nothing."""
    cat, feats, _ = catalogue(text=text, photos=photos)
    bundle, _ = fit(cat, feats, tmp_path)
    free = bundle.tree.decode(bundle.predict(cat, feats).prediction.nodes)
    # every product predicted outside Footwear > Shoes gets that inner node as its label
    outside = [i for i, path in enumerate(free) if path[:2] != ("Footwear", "Shoes")]
    assert len(outside) > 50
    cat.labels = [("Footwear", "Shoes") if i in set(outside) else lab for i, lab in enumerate(cat.labels)]
    placed = bundle.tree.decode(bundle.predict(cat, feats).prediction.nodes)
    assert all(placed[i][:2] == ("Footwear", "Shoes") and len(placed[i]) == 3 for i in outside)
    inside = [i for i in range(len(cat)) if i not in set(outside)]
    assert [placed[i] for i in inside] == [free[i] for i in inside]
