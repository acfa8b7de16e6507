"""Contrastive text-image alignment: learning, temperature clamp, joint vectors, persistence, recall@k."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.embed.joint import JointAligner, retrieval_recall
from core.torch_runtime import torch_threads


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small models run fastest on one thread, and the test machine's cores are shared."""
    with torch_threads(1):
        yield


def paired(n: int = 900, seed: int = 0):
    """Synthetic pairs: text and image vectors are different (one non-linear) views of one latent."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 8))
    text = z @ rng.normal(size=(8, 48)) + 0.5 * rng.normal(size=(n, 48))
    image = np.tanh(z @ rng.normal(size=(8, 64))) + 0.3 * rng.normal(size=(n, 64))
    return text.astype(np.float32), image.astype(np.float32)


@pytest.fixture(scope="module")
def trained():
    text, image = paired()
    aligner = JointAligner(dim=32, epochs=20, batch_size=128, lr=3e-3, seed=0).fit(text[:700], image[:700])
    return aligner, text[700:], image[700:]


def test_training_beats_random_projection(trained):
    aligner, text, image = trained
    untrained = JointAligner(dim=32, epochs=0, seed=0).fit(*paired()[:2])
    before = retrieval_recall(untrained.transform_text(text), untrained.transform_image(image), ks=(1, 10))
    after = retrieval_recall(aligner.transform_text(text), aligner.transform_image(image), ks=(1, 10))
    assert after[10] > 0.8 and after[10] > before[10] + 0.5
    assert after[1] > before[1] + 0.3
    assert aligner.history_[-1] < aligner.history_[0]


def test_temperature_is_learned_and_clamped():
    text, image = paired(300)
    free = JointAligner(dim=16, epochs=5, batch_size=100, lr=1e-2).fit(text, image)
    assert free.logit_scale_ != pytest.approx(1 / 0.07)
    capped = JointAligner(dim=16, epochs=5, batch_size=100, lr=1e-1, max_logit_scale=5.0).fit(text, image)
    assert capped.logit_scale_ <= 5.0 + 1e-4


def test_joint_vectors_cover_text_only_products(trained):
    aligner, text, image = trained
    mask = np.arange(len(text)) % 2 == 0
    joint = aligner.joint(text, image, mask)
    assert joint.shape == (len(text), 32) and joint.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(joint, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(joint[~mask], aligner.transform_text(text[~mask]), atol=1e-6)
    assert not np.allclose(joint[mask], aligner.transform_text(text[mask]), atol=1e-3)
    # a product's joint vector finds its own image better than the text alone does
    own = retrieval_recall(joint[mask], aligner.transform_image(image[mask]), ks=(1,))[1]
    text_only = retrieval_recall(aligner.transform_text(text[mask]), aligner.transform_image(image[mask]), ks=(1,))[1]
    assert own >= text_only


@pytest.mark.parametrize("name", ["joint.npz", "joint.pt"])
def test_save_load_roundtrip(trained, tmp_path, name):
    aligner, text, image = trained
    path = aligner.save(tmp_path / name)
    if name.endswith(".npz"):
        with np.load(path, allow_pickle=False) as data:
            assert "meta" in data.files
    else:
        assert set(torch.load(path, weights_only=True)) == {"state_dict", "meta"}
    again = JointAligner.load(path, device="cpu")
    mask = np.arange(len(text)) % 3 == 0
    np.testing.assert_allclose(again.joint(text, image, mask), aligner.joint(text, image, mask), atol=1e-6)
    assert again.logit_scale_ == pytest.approx(aligner.logit_scale_)
    assert again.history_ == aligner.history_


def test_retrieval_recall_by_hand():
    keys = np.eye(4, dtype=np.float32)
    assert retrieval_recall(keys, keys, ks=(1, 2)) == {1: 1.0, 2: 1.0}
    queries = keys[[1, 0, 2, 3]]  # queries 0 and 1 point at each other's key
    assert retrieval_recall(queries, keys, ks=(1, 2, 4)) == {1: 0.5, 2: 0.5, 4: 1.0}
    queries = np.array([[1, 0.9, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0.5, 0.6, 0.7, 0.1]], np.float32)
    # ranks of the matches: 0, 0, 0, 3 -> recall@1 = 3/4, recall@3 = 3/4, recall@4 = 1
    assert retrieval_recall(queries, keys, ks=(1, 3, 4), batch_size=3) == {1: 0.75, 3: 0.75, 4: 1.0}


def test_fit_rejects_unpaired_inputs():
    with pytest.raises(ValueError):
        JointAligner(epochs=1).fit(np.zeros((3, 4)), np.zeros((2, 4)))
