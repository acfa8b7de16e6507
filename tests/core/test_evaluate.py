"""The model comparison of `core evaluate` (`core.bench.evaluate`) on a small synthetic catalogue.

Every product has a hidden class (a path of `PATHS`); its title vector, photo vector and title words are drawn
from that class with overlap (noise, shared words), and no title holds a label word, so a model can be wrong.
The same catalogue with its labels shuffled is the control: there nothing can be learnt, so every model must
score near chance (a leak of the labels into the features or a test product into training would show there).
Expected values are computed here from the test's own data.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from core.bench import evaluate as ev
from core.classify.models import MODELS, STACKED
from core.classify.taxonomy import HierarchicalPrediction, TaxonomyTree
from core.data.dataset import Catalogue
from core.data.split import fixed_split
from core.embed.features import Features
from core.keys import content_key
from tests.core.ml_helpers import PATHS, FakeEncoder

TEXT_ID, IMAGE_ID = "text:fake:v1", "image:fake:v1"
TITLE_DIM, IMAGE_DIM = 16, 12
FAST = {"hidden": 32, "epochs": 8, "batch_size": 128, "patience": 2}
POOL = [f"common{i}" for i in range(40)]  # words every class uses
CLASS_WORDS = [[f"zq{k}x{j}" for j in range(4)] for k in range(len(PATHS))]  # made-up words, none a label word


def synthetic(tmp_path, n: int = 600, *, seed: int = 0, shuffle_labels: bool = False) -> tuple[Catalogue, Features]:
    """Products whose features come from a hidden class with overlap; labels are that class (or shuffled)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    hidden = rng.integers(0, len(PATHS), n)
    title = rng.normal(size=(len(PATHS), TITLE_DIM))[hidden] + 1.3 * rng.normal(size=(n, TITLE_DIM))
    image = rng.normal(size=(len(PATHS), IMAGE_DIM))[hidden] + 1.3 * rng.normal(size=(n, IMAGE_DIM))
    has_image = rng.random(n) < 0.7
    image[~has_image] = 0.0
    titles = [" ".join(rng.choice(CLASS_WORDS[k]) if rng.random() < 0.3 else rng.choice(POOL) for _ in range(4)) for k in hidden]
    labels = [PATHS[k] for k in (rng.permutation(hidden) if shuffle_labels else hidden)]
    images = []
    for i in range(n):
        if has_image[i]:
            (tmp_path / f"{i}.jpg").write_bytes(rng.bytes(32))
        images.append(str(tmp_path / f"{i}.jpg") if has_image[i] else None)
    cat = Catalogue(
        np.arange(100, 100 + n, dtype=np.int64),
        external_ids=[f"sku-{i}" for i in range(n)],
        platforms=["shop" if i % 2 else "market" for i in range(n)],
        titles=titles,
        texts=titles,
        images=images,
        labels=labels,
        label_sources=["import"] * n,
        descriptions=[" ".join(rng.choice(POOL, 5)) for _ in range(n)],
    )
    feats = Features(
        cat.product_ids,
        blocks={"title": title.astype(np.float32), "image": image.astype(np.float32)},
        masks={"title": np.ones(n, bool), "image": has_image},
        encoder_ids={"title": TEXT_ID, "image": IMAGE_ID},
    )
    return cat, feats


def held_out(cat: Catalogue, *, seed: int = 0, test_size: float = 0.2) -> np.ndarray:
    """The held-out rows by the documented rule: sha256 of "seed|platform|external id" below `test_size`."""
    u = [
        int.from_bytes(hashlib.sha256(f"{seed}|{p}|{e}".encode()).digest()[:8], "big") / 2**64
        for p, e in zip(cat.platforms, cat.external_ids)
    ]
    return np.flatnonzero(np.array(u) < test_size)


def prefixes(path) -> set:
    return {tuple(path[: i + 1]) for i in range(len(path))}


def hf1(truth, pred) -> float:
    """Micro hierarchical F1 over ancestor-augmented paths."""
    inter = sum(len(prefixes(t) & prefixes(p)) for t, p in zip(truth, pred))
    hp, hr = inter / sum(len(p) for p in pred), inter / sum(len(t) for t in truth)
    return 2 * hp * hr / (hp + hr) if hp + hr else 0.0


def chance(truth) -> float:
    """hF1 of the best constant path: what a model that learnt nothing can reach."""
    return max(hf1(truth, [p] * len(truth)) for p in PATHS)


@pytest.fixture
def fake_encoders(monkeypatch):
    fakes = {
        "fake-text": FakeEncoder(id=TEXT_ID, dim=TITLE_DIM),
        "fake-image": FakeEncoder(id=IMAGE_ID, dim=IMAGE_DIM, modality="image"),
        "other-text": FakeEncoder(id="text:other:v1", dim=TITLE_DIM),
    }
    monkeypatch.setattr(ev, "get_encoder", lambda name: fakes[name])
    return fakes


def run(cat, feats):
    return ev.evaluate(cat, feats, text_encoder="fake-text", image_encoder="fake-image", train_options=FAST)


def test_evaluate_learns_the_hidden_class_and_nothing_from_shuffled_labels(tmp_path, fake_encoders):
    cat, feats = synthetic(tmp_path / "real")
    real = run(cat, feats)
    test = held_out(cat)
    truth = [cat.labels[i] for i in test]
    rows = {(r["model"], r["population"]): r for r in real["rows"]}
    floor = chance(truth)
    assert rows[("late-fusion", "all")]["hf1"] > floor + 0.25
    assert rows[(ev.BASELINE, "all")]["hf1"] > floor + 0.1  # the class words carry signal
    assert all(r["hf1"] < 0.99 for r in real["rows"])  # overlap: every model makes mistakes
    assert all(r["path_validity"] == 1.0 for r in real["rows"] if r["model"] != ev.BASELINE)

    cat_s, feats_s = synthetic(tmp_path / "shuffled", shuffle_labels=True)
    shuffled = run(cat_s, feats_s)
    floor_s = chance([cat_s.labels[i] for i in test])
    for r in shuffled["rows"]:
        assert r["hf1"] < floor_s + 0.12, r["model"]
    assert np.mean([r["hf1"] for r in shuffled["rows"]]) < floor_s + 0.05
    assert fake_encoders["fake-image"].n_embedded > 0  # the end-to-end timing used the named encoders
    assert real["cascade"]["end_to_end"]["encoders"] == {"text": TEXT_ID, "image": IMAGE_ID}


def test_evaluate_scores_the_hash_split_of_model_versions(tmp_path, fake_encoders):
    cat, feats = synthetic(tmp_path, n=300)
    result = run(cat, feats)
    test = held_out(cat)
    np.testing.assert_array_equal(fixed_split(cat).test, test)
    assert result["split"]["rule"] == "hash of (platform, external id)"
    assert result["split"]["test"] == len(test)
    assert result["split"]["test_key"] == content_key(sorted(int(pid) for pid in cat.product_ids[test]))
    with_photo = int(feats.masks["image"][test].sum())
    for r in result["rows"]:
        assert r["n_test"] == (len(test) if r["population"] == "all" else with_photo)

    names = [ev.BASELINE, *(m.name for m in MODELS), *STACKED.values(), ev.CASCADE]
    expected = {(n, p) for n in names for p in ("with_images", "all")} - {("image-only", "all")}
    assert {(r["model"], r["population"]) for r in result["rows"]} == expected
    table = ev.markdown_table(result["rows"]).splitlines()
    assert len(table) == 2 + len(expected)
    body = {tuple(cell.strip() for cell in line.split("|")[1:3]) for line in table[2:]}
    assert body == expected


def test_score_model_scores_each_population_on_the_held_out_rows(tmp_path):
    cat, feats = synthetic(tmp_path, n=200)
    feats.blocks["row"] = np.arange(len(cat), dtype=np.float32)[:, None]
    tree = TaxonomyTree.from_paths(PATHS)
    wrong = ("Accessories", "Bags")

    class HalfRight:
        """Right on even rows, always `wrong` on odd rows."""

        modalities = ["row"]

        def predict(self, X, *, masks=None):
            rows = X["row"][:, 0].astype(int)
            paths = [cat.labels[i] if i % 2 == 0 else wrong for i in rows]
            nodes = tree.encode(paths)
            return HierarchicalPrediction(nodes, np.ones(nodes.shape, np.float32), np.ones(len(rows), np.float32))

    split = fixed_split(cat)
    out = ev.score_model("half", HalfRight(), feats, cat.labels, split, tree, train_s=1.0)
    test = held_out(cat)
    for population, rows in (("with_images", test[feats.masks["image"][test]]), ("all", test)):
        row = next(r for r in out if r["population"] == population)
        truth = [cat.labels[i] for i in rows]
        pred = [t if i % 2 == 0 else wrong for i, t in zip(rows, truth)]
        assert row["hf1"] == pytest.approx(hf1(truth, pred))
        assert row["n_test"] == len(rows) and row["model"] == "half" and row["train_s"] == 1.0


def test_evaluate_baseline_learns_from_titles_only_on_the_fit_rows(tmp_path):
    scores = {}
    for shuffled in (False, True):
        cat, feats = synthetic(tmp_path / ("b" if shuffled else "a"), shuffle_labels=shuffled)
        test = held_out(cat)
        rows = ev.evaluate_baseline(cat, feats, cat.labels, fixed_split(cat), TaxonomyTree.from_paths(cat.labels))
        assert [r["population"] for r in rows] == ["with_images", "all"]
        scores[shuffled] = next(r["hf1"] for r in rows if r["population"] == "all"), chance([cat.labels[i] for i in test])
    assert scores[False][0] > scores[False][1] + 0.1
    assert scores[True][0] < scores[True][1] + 0.12


def test_evaluate_refuses_an_encoder_the_features_were_not_embedded_with(tmp_path, fake_encoders):
    cat, feats = synthetic(tmp_path, n=60)
    with pytest.raises(ValueError, match="embedded with text:fake:v1"):
        ev.evaluate(cat, feats, text_encoder="other-text", image_encoder="fake-image", train_options=FAST)
    assert "joint" not in feats.blocks  # refused before fitting anything
