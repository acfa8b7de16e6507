"""Fusion models over precomputed modality vectors, each ending in the per-level heads of `core.classify.heads`.

All three share one call signature: `model(xs, mask) -> (level_logits, aux)` where
`xs` is a list of M tensors `(B, D_m)`, `mask` is `(B, M) bool` (True where a modality is present),
`level_logits` is a list of `(B, n_L)` tensors and `aux` a list of `(level_logits_m, present_m)` pairs
(per-modality outputs that get their own loss; empty for early and attention fusion).

- early: missing modalities zeroed, vectors and the mask bits concatenated -> MLP -> heads.
- late: one MLP + heads per modality; per level, the log-probabilities of the present modalities are
  combined with learned (or equal) weights, renormalised over the present modalities.
- attention: each modality projected to a token (+ a learned modality embedding), one block of
  multi-head self-attention across the tokens with missing modalities masked out, masked mean pool.

A single-modality model is any of them with M = 1. `train_fusion` trains one with AdamW and early stopping.
torch is imported lazily (the module classes are built on first use).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence

import numpy as np

from core.classify.heads import hierarchical_loss, level_heads

FUSIONS = {"early": "EarlyFusion", "late": "LateFusion", "attention": "AttentionFusion"}


@functools.cache
def _seeded_dropout() -> type:
    import torch
    from torch import nn

    class SeededDropout(nn.Module):
        """Dropout drawing from the model's own generator (see `seed_dropout`), not torch's global one, so models
        trained side by side in threads stay repeatable. Without a generator it behaves like nn.Dropout."""

        def __init__(self, p: float):
            super().__init__()
            self.p, self.generator = float(p), None

        def forward(self, x):
            if not self.training or self.p == 0.0:
                return x
            if self.generator is None:
                return nn.functional.dropout(x, self.p, True)
            keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= self.p
            return x * keep.to(x.dtype) / (1.0 - self.p)

    return SeededDropout


def _block(in_dim: int, hidden: int, dropout: float):
    """Linear -> LayerNorm -> GELU -> dropout, the building block of every fusion."""
    from torch import nn

    return nn.Sequential(nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.GELU(), _seeded_dropout()(dropout))


def _zero_missing(xs, mask):
    """The modality tensors with the rows of absent modalities zeroed."""
    return [x * mask[:, i : i + 1].to(x.dtype) for i, x in enumerate(xs)]


@functools.cache
def _early_fusion() -> type:
    import torch
    from torch import nn

    class EarlyFusion(nn.Module):
        def __init__(self, input_dims, level_sizes, hidden, dropout, **_):
            super().__init__()
            self.body = _block(sum(input_dims) + len(input_dims), hidden, dropout)
            self.heads = level_heads(hidden, level_sizes)

        def forward(self, xs, mask):
            joined = torch.cat([*_zero_missing(xs, mask), mask.float()], dim=1)
            return self.heads(self.body(joined)), []

    return EarlyFusion


@functools.cache
def _late_fusion() -> type:
    import torch
    from torch import nn

    class LateFusion(nn.Module):
        def __init__(self, input_dims, level_sizes, hidden, dropout, weights="learned", **_):
            super().__init__()
            self.branches = nn.ModuleList(_block(d, hidden, dropout) for d in input_dims)
            self.heads = nn.ModuleList(level_heads(hidden, level_sizes) for _ in input_dims)
            self.weight_logits = nn.Parameter(torch.zeros(len(input_dims)), requires_grad=weights == "learned")

        def modality_weights(self, mask):
            w = torch.softmax(self.weight_logits, 0)[None, :] * mask.float()
            return w / w.sum(1, keepdim=True).clamp_min(1e-12)

        def forward(self, xs, mask):
            per = [heads(branch(x)) for branch, heads, x in zip(self.branches, self.heads, _zero_missing(xs, mask))]
            w = self.modality_weights(mask)
            combined = [
                sum(w[:, m : m + 1] * torch.log_softmax(per[m][lv], -1) for m in range(len(per))) for lv in range(len(per[0]))
            ]
            aux = [(per[m], mask[:, m]) for m in range(len(per))] if len(per) > 1 else []
            return combined, aux

    return LateFusion


@functools.cache
def _attention_fusion() -> type:
    import torch
    from torch import nn

    class AttentionFusion(nn.Module):
        def __init__(self, input_dims, level_sizes, hidden, dropout, num_heads=4, **_):
            super().__init__()
            self.proj = nn.ModuleList(_block(d, hidden, dropout) for d in input_dims)
            self.modality_emb = nn.Parameter(0.02 * torch.randn(len(input_dims), hidden))
            self.attn = nn.MultiheadAttention(hidden, num_heads, dropout=dropout, batch_first=True)
            self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
            self.ff = nn.Sequential(
                nn.Linear(hidden, 2 * hidden), nn.GELU(), _seeded_dropout()(dropout), nn.Linear(2 * hidden, hidden)
            )
            self.heads = level_heads(hidden, level_sizes)

        def forward(self, xs, mask):
            tokens = torch.stack([p(x) for p, x in zip(self.proj, _zero_missing(xs, mask))], 1) + self.modality_emb
            present = mask | ~mask.any(1, keepdim=True)  # a row with nothing present attends to its zeros
            attended, _ = self.attn(tokens, tokens, tokens, key_padding_mask=~present, need_weights=False)
            tokens = self.norm1(tokens + attended)
            tokens = self.norm2(tokens + self.ff(tokens))
            w = present.unsqueeze(-1).to(tokens.dtype)
            return self.heads((tokens * w).sum(1) / w.sum(1)), []

    return AttentionFusion


_CLASS_BUILDERS = {"EarlyFusion": _early_fusion, "LateFusion": _late_fusion, "AttentionFusion": _attention_fusion}


def seed_dropout(model, seed: int) -> None:
    """Give every SeededDropout of `model` one generator seeded with `seed` (on the model's device)."""
    import torch

    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(int(seed))
    for module in model.modules():
        if isinstance(module, _seeded_dropout()):
            module.generator = generator


BUILD_LOCK = threading.Lock()  # weight initialisation draws from torch's global generator: one model at a time


def build_fusion(
    kind: str, *, input_dims: Sequence[int], level_sizes: Sequence[int], hidden: int = 256, dropout: float = 0.1, **options
):
    """Builds a fusion model (a torch `nn.Module`).

    Args:
        kind: "early", "late" or "attention".
        input_dims: vector width of each modality, in order.
        level_sizes: number of taxonomy nodes per level.
        hidden: hidden width (divisible by `num_heads` for attention).
        dropout: dropout rate.
        **options: `weights="learned"|"equal"` (late), `num_heads=4` (attention).

    Returns:
        module with `forward(xs, mask) -> (level_logits, aux)` (see module docstring).
    """
    if kind not in FUSIONS:
        raise ValueError(f"unknown fusion {kind!r}; choose from {sorted(FUSIONS)}")
    return _CLASS_BUILDERS[FUSIONS[kind]]()(list(input_dims), list(level_sizes), hidden, dropout, **options)


def batch_loss(model, xs, mask, targets, child_masks, *, label_smoothing: float = 0.0):
    """Teacher-forced hierarchical loss of one batch, plus the mean per-modality loss for late fusion."""
    logits, aux = model(xs, mask)
    loss = hierarchical_loss(logits, targets, child_masks, label_smoothing=label_smoothing)
    for level_logits, present in aux:
        if present.any():
            rows = [t[present] for t in level_logits]
            loss = loss + hierarchical_loss(rows, targets[present], child_masks, label_smoothing=label_smoothing) / len(aux)
    return loss


def holdout_rows(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows) of `n`: a seeded permutation, no validation below 20 rows."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction)) if n >= 20 else 0
    return order[n_val:], order[:n_val]


def mean_loss(model, xs, mask, targets, child_masks, rows, batch_size: int) -> float:
    """Mean `batch_loss` of `model` (in eval mode, no gradients) over `rows`."""
    import torch

    model.eval()
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            idx = torch.as_tensor(rows[start : start + batch_size], device=mask.device)
            loss = batch_loss(model, [x[idx] for x in xs], mask[idx], targets[idx], child_masks)
            total += float(loss) * len(idx)
    return total / max(len(rows), 1)


def _train_epoch(model, opt, xs, mask, targets, child_masks, rows, *, batch_size, rng, label_smoothing) -> float:
    import torch

    model.train()
    order = rows[rng.permutation(len(rows))]
    total = 0.0
    for start in range(0, len(order), batch_size):
        idx = torch.as_tensor(order[start : start + batch_size], device=mask.device)
        loss = batch_loss(model, [x[idx] for x in xs], mask[idx], targets[idx], child_masks, label_smoothing=label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(idx)
    return total / max(len(order), 1)


def train_fusion(
    model,
    xs,
    mask,
    targets,
    child_masks,
    *,
    epochs: int = 20,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 512,
    val_fraction: float = 0.1,
    patience: int = 3,
    label_smoothing: float = 0.0,
    seed: int = 0,
) -> list[dict]:
    """AdamW training with optional early stopping on a validation slice (best weights restored).

    Args:
        model: a module from `build_fusion`, already on the device of the tensors.
        xs: M tensors `(N, D_m)`. mask: `(N, M) bool`. targets: `(N, depth) int64`, -1 past the end.
        child_masks: per level `(n_{L-1}, n_L) bool` tensors (entry 0 unused).

    Returns:
        history: one dict per epoch with `epoch`, `train_loss`, `val_loss` (None without validation).
    """
    import torch

    rng = np.random.default_rng(seed)
    train_rows, val_rows = holdout_rows(len(targets), val_fraction, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, foreach=True)
    history, best, best_state, stale = [], float("inf"), None, 0
    for epoch in range(epochs):
        loss = _train_epoch(
            model,
            opt,
            xs,
            mask,
            targets,
            child_masks,
            train_rows,
            batch_size=batch_size,
            rng=rng,
            label_smoothing=label_smoothing,
        )
        val = mean_loss(model, xs, mask, targets, child_masks, val_rows, 4 * batch_size) if len(val_rows) else None
        history.append({"epoch": epoch, "train_loss": loss, "val_loss": val})
        if val is None:
            continue
        stale = 0 if val < best * (1 - 1e-3) else stale + 1  # "improved" means by 0.1 % at least
        if val < best:
            best, best_state = val, {k: v.detach().clone() for k, v in model.state_dict().items()}
        if stale >= patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history
