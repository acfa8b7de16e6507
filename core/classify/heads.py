"""The torch end of the hierarchical models: one linear head per taxonomy level and the teacher-forced loss.

Training is teacher-forced: level-L logits are masked to the children of the true level-(L-1) node, and
levels past the end of a label contribute no loss. The fusion models (`core.classify.fusion`) end in these
heads; decoding their logits into paths is numpy code in `core.classify.taxonomy`.

torch is imported inside the functions that need it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

NEG_LOGIT = -1e9  # finite "minus infinity" for masked logits


@functools.cache
def _torch_modules() -> dict:
    import torch
    from torch import nn

    class LevelHeads(nn.Module):
        """One linear head per level: `(B, in_dim)` -> list of `(B, n_L)` logits."""

        def __init__(self, in_dim: int, level_sizes: Sequence[int]):
            super().__init__()
            self.heads = nn.ModuleList(nn.Linear(in_dim, size) for size in level_sizes)

        def forward(self, h: torch.Tensor) -> list[torch.Tensor]:
            return [head(h) for head in self.heads]

    return {"LevelHeads": LevelHeads}


def level_heads(in_dim: int, level_sizes: Sequence[int]):
    """A torch module with one linear head per level: `(B, in_dim)` -> list of `(B, n_L)` logits."""
    return _torch_modules()["LevelHeads"](in_dim, level_sizes)


def masked_level_logits(level_logits, targets, child_masks):
    """Teacher forcing: masks level-L logits to the children of the true level-(L-1) node.

    Args:
        level_logits: per level `(B, n_L)` torch logits.
        targets: `(B, depth)` torch int64 true node indices, -1 past the end.
        child_masks: per level `(n_{L-1}, n_L)` torch bool (entry 0 unused).

    Returns:
        per level `(B, n_L)` logits, non-children filled with a large negative number. Rows whose
        label ends before the level are left unmasked (they are ignored by the loss).
    """
    out = [level_logits[0]]
    for level in range(1, len(level_logits)):
        parent = targets[:, level - 1].clamp(min=0)
        allowed = child_masks[level][parent] | (targets[:, level] < 0)[:, None]
        out.append(level_logits[level].masked_fill(~allowed, NEG_LOGIT))
    return out


def hierarchical_loss(level_logits, targets, child_masks, *, label_smoothing: float = 0.0):
    """Sum over levels of the mean teacher-forced cross-entropy (levels past a label's end ignored)."""
    import torch.nn.functional as F

    masked = masked_level_logits(level_logits, targets, child_masks)
    total = 0.0
    for level, logits in enumerate(masked):
        target = targets[:, level]
        if (target >= 0).any():
            total = total + F.cross_entropy(logits, target, ignore_index=-1, label_smoothing=label_smoothing)
    return total
