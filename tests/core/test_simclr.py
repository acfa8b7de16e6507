from __future__ import annotations

import numpy as np
import pytest
import torch

from core.discover.simclr import Augment, SimCLRHead, augment_pair, block_bounds, nt_xent
from tests.core.discovery_helpers import blobs, single_thread


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with single_thread():
        yield


def small_head(**kwargs) -> SimCLRHead:
    defaults = dict(out_dim=16, hidden=64, epochs=15, batch_size=64, device="cpu", seed=0)
    return SimCLRHead(**{**defaults, **kwargs})


def test_block_bounds_splits_columns_and_checks_widths():
    assert block_bounds((3, 5), 8) == [(0, 3), (3, 8)]
    assert block_bounds(None, 4) == [(0, 4)]
    with pytest.raises(ValueError, match="sum to 7"):
        block_bounds((3, 4), 8)


def test_cross_view_pairs_keep_different_modality_blocks():
    x = torch.ones(32, 6)
    aug = Augment(feature_drop=0.0, noise_std=0.0, cross_view=1.0)
    v1, v2 = augment_pair(x, [(0, 2), (2, 6)], aug, torch.Generator().manual_seed(0))
    kept1 = v1[:, :2].abs().sum(1) > 0
    kept2 = v2[:, :2].abs().sum(1) > 0
    assert torch.all(kept1 != kept2)  # one view holds the text block, the other the image block
    assert torch.all((v1.abs().sum(1) > 0) & (v2.abs().sum(1) > 0))


def test_modality_dropout_zeroes_whole_blocks():
    x = torch.ones(400, 6)
    aug = Augment(feature_drop=0.0, noise_std=0.0, modality_drop=1.0, cross_view=0.0)
    v1, _ = augment_pair(x, [(0, 2), (2, 6)], aug, torch.Generator().manual_seed(0))
    zero_a = (v1[:, :2] == 0).all(1)
    zero_b = (v1[:, 2:] == 0).all(1)
    assert torch.all(zero_a ^ zero_b)
    assert 0.3 < zero_a.float().mean() < 0.7


def test_feature_dropout_and_noise_change_the_view():
    x = torch.ones(100, 50)
    v1, v2 = augment_pair(x, [(0, 50)], Augment(feature_drop=0.5, noise_std=0.0), torch.Generator().manual_seed(0))
    assert 0.4 < (v1 == 0).float().mean() < 0.6
    assert not torch.equal(v1, v2)


def test_nt_xent_prefers_matching_pairs():
    z = torch.eye(8)
    matched = nt_xent(z, z.clone(), 0.1)
    shuffled = nt_xent(z, z[torch.randperm(8, generator=torch.Generator().manual_seed(1))], 0.1)
    assert matched < 0.01
    assert shuffled > 1.0


def test_fit_transform_gives_unit_rows_and_falling_loss():
    X, _ = blobs(n_per=64, k=4, dim=24)
    head = small_head().fit(X)
    Z = head.transform(X)
    assert Z.shape == (256, 16) and Z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, atol=1e-5)
    assert head.loss_history_[-1] < head.loss_history_[0]


def test_head_keeps_blob_structure():
    X, y = blobs(n_per=64, k=4, dim=24)
    Z = small_head().fit(X).transform(X)
    sims = Z @ Z.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(axis=1)
    assert (y[nearest] == y).mean() > 0.95


def test_same_seed_same_result_other_seed_differs():
    X, _ = blobs(n_per=32, k=4, dim=16)
    a = small_head(epochs=3, seed=7).fit(X).transform(X)
    b = small_head(epochs=3, seed=7).fit(X).transform(X)
    c = small_head(epochs=3, seed=8).fit(X).transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_views_become_modality_blocks():
    X, _ = blobs(n_per=32, k=4, dim=20)
    views = {"text": X[:, :12], "image": X[:, 12:]}
    head = small_head(epochs=2).fit(None, views=views)
    assert head.blocks == (12, 8)
    assert head.transform(X).shape == (128, 16)


def test_transform_before_fit_and_fit_on_one_row_raise():
    with pytest.raises(RuntimeError, match="not fitted"):
        small_head().transform(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="at least 2 rows"):
        small_head().fit(np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="give X or views"):
        small_head().fit(None)


def test_save_load_round_trip_without_pickle(tmp_path):
    X, _ = blobs(n_per=32, k=4, dim=16)
    head = small_head(epochs=2, blocks=(10, 6)).fit(X)
    path = head.save(tmp_path / "head.npz")
    with np.load(path, allow_pickle=False) as data:
        assert "meta" in data.files
    loaded = SimCLRHead.load(path, device="cpu")
    assert loaded.blocks == (10, 6) and loaded.out_dim == 16
    np.testing.assert_allclose(loaded.transform(X), head.transform(X), atol=1e-6)


def test_threads_option_is_restored_after_fit():
    X, _ = blobs(n_per=16, k=4, dim=8)
    before = torch.get_num_threads()
    seen = []
    head = small_head(epochs=1, threads=before + 1)
    original = head._epoch
    head._epoch = lambda *a: seen.append(torch.get_num_threads()) or original(*a)
    head.fit(X)
    assert seen == [before + 1] and torch.get_num_threads() == before


def test_small_inputs_get_enough_steps():
    head = small_head(epochs=2, min_steps=12, batch_size=64)
    assert head.epochs_for(640) == 2  # 10 batches an epoch: 2 epochs already make 20 steps
    assert head.epochs_for(128) == 6  # 2 batches an epoch
    assert head.epochs_for(40) == 12  # one (smaller) batch an epoch
    X, _ = blobs(n_per=32, k=4, dim=8)
    assert len(head.fit(X).loss_history_) == 6
    assert small_head(epochs=2).epochs_for(40) == 2  # min_steps=0: epochs as given
