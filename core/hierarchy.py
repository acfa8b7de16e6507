"""Taxonomy as arrays, per-level heads with dynamic masking, and the hierarchical classifier.

A taxonomy is a set of label paths (tuples of names, variable depth). `TaxonomyTree` turns it into
arrays: per level a sorted list of nodes (a node is its path prefix, so equal names under different
parents stay distinct), the parent index of every node and a child mask per level. Because nodes are
sorted by prefix, the children of one parent are contiguous.

Node-index arrays, used throughout `core/`: `(N, depth) int64`, column `L` holds the node index at
level `L`, `-1` past the end of a path.

Training is teacher-forced: level-L logits are masked to the children of the true parent; levels past
the end of a label contribute no loss. Decoding (`decode`) walks the tree greedily or by beam search
over path log-probabilities, so every prediction is a valid root-to-leaf path.

Heavy libraries (torch) are imported inside the functions that need them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Path_ = tuple[str, ...]
_NEG = -1e9  # finite "minus infinity" for masked logits


class TaxonomyTree:
    """A taxonomy as per-level arrays.

    Attributes:
        levels: per level, the node prefixes (tuples of names), sorted.
        parent: per level, `(n_L,) int64` index of each node's parent at level L-1 (-1 at level 0).
        has_children: per level, `(n_L,) bool`.
        depth: number of levels (length of the longest path).
    """

    def __init__(self, levels: Sequence[Sequence[Path_]]):
        self.levels = [sorted({tuple(p) for p in level}) for level in levels]
        self._index = [{p: i for i, p in enumerate(level)} for level in self.levels]
        self.parent = [self._parents(i) for i in range(len(self.levels))]
        self.has_children = [
            np.isin(np.arange(len(lv)), self.parent[i + 1]) if i + 1 < self.depth else np.zeros(len(lv), bool)
            for i, lv in enumerate(self.levels)
        ]

    def _parents(self, level: int) -> np.ndarray:
        if level == 0:
            return np.full(len(self.levels[0]), -1, dtype=np.int64)
        return np.array([self._index[level - 1][p[:-1]] for p in self.levels[level]], dtype=np.int64)

    @classmethod
    def from_paths(cls, paths: Sequence[Sequence[str]]) -> TaxonomyTree:
        """Builds the tree holding every prefix of every path.

        Args:
            paths: label paths, e.g. `("Footwear", "Shoes", "Heels")`; depths may differ.
        """
        paths = [tuple(p) for p in paths if len(p)]
        depth = max((len(p) for p in paths), default=0)
        return cls([[p[: d + 1] for p in paths if len(p) > d] for d in range(depth)])

    @property
    def depth(self) -> int:
        """Number of levels."""
        return len(self.levels)

    @property
    def sizes(self) -> list[int]:
        """Number of nodes per level."""
        return [len(level) for level in self.levels]

    def names(self, level: int) -> list[str]:
        """Display names (last path element) of the nodes at `level`."""
        return [p[-1] for p in self.levels[level]]

    def child_mask(self, level: int) -> np.ndarray:
        """`(n_{L-1}, n_L) bool`: `[p, c]` is True when node c at `level` is a child of p (level >= 1)."""
        mask = np.zeros((self.sizes[level - 1], self.sizes[level]), dtype=bool)
        mask[self.parent[level], np.arange(self.sizes[level])] = True
        return mask

    def encode(self, paths: Sequence[Sequence[str]]) -> np.ndarray:
        """Label paths to node indices.

        Args:
            paths: N label paths; each must be a path of this tree (KeyError otherwise).

        Returns:
            `(N, depth) int64`, -1 past the end of a path.
        """
        out = np.full((len(paths), self.depth), -1, dtype=np.int64)
        for row, path in enumerate(paths):
            path = tuple(path)
            if len(path) > self.depth:
                raise KeyError(f"path deeper than the taxonomy: {path}")
            for level in range(len(path)):
                out[row, level] = self._index[level][path[: level + 1]]
        return out

    def decode(self, nodes: np.ndarray) -> list[Path_]:
        """Node indices `(N, depth) int` to label paths (the deepest node's prefix per row)."""
        paths = []
        for row in np.asarray(nodes):
            valid = np.flatnonzero(row >= 0)
            paths.append(self.levels[valid[-1]][row[valid[-1]]] if len(valid) else ())
        return paths

    def leaf_paths(self) -> np.ndarray:
        """All root-to-leaf paths as node indices, `(P, depth) int64`, -1 past the end."""
        leaves = [p for level in self.levels for p in level]
        leaves = [p for p in leaves if not self.has_children[len(p) - 1][self._index[len(p) - 1][p]]]
        return self.encode(leaves)

    def is_valid(self, nodes: np.ndarray) -> np.ndarray:
        """`(N,) bool`: each row of `(N, depth)` node indices is a full root-to-leaf path of the tree."""
        nodes = np.asarray(nodes, dtype=np.int64).reshape(-1, self.depth)
        present = nodes >= 0
        in_range = (nodes >= -1).all(1) & (nodes < np.array(self.sizes)).all(1)
        ok = present[:, 0] & in_range & _no_gaps(nodes)
        safe = np.where(ok[:, None] & present, nodes, 0)
        for level in range(1, self.depth):
            ok &= ~present[:, level] | (self.parent[level][safe[:, level]] == safe[:, level - 1])
        deepest = present.sum(1) - 1
        for level in range(self.depth):
            rows = deepest == level
            ok[rows] &= ~self.has_children[level][safe[rows, level]]
        return ok

    def to_json(self) -> dict:
        """JSON-ready form (lists of paths per level)."""
        return {"levels": [[list(p) for p in level] for level in self.levels]}

    @classmethod
    def from_json(cls, data: dict) -> TaxonomyTree:
        """Inverse of `to_json`."""
        return cls([[tuple(p) for p in level] for level in data["levels"]])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaxonomyTree) and self.levels == other.levels

    __hash__ = None  # mutable-looking container; compare by value only


def _no_gaps(nodes: np.ndarray) -> np.ndarray:
    """Rows whose valid entries form a prefix (no node after a -1)."""
    valid = nodes >= 0
    return (np.cumsum(~valid, axis=1) * valid).sum(1) == 0


@dataclass
class HierarchicalPrediction:
    """Predicted paths.

    Attributes:
        nodes: `(N, depth) int64` node index per level, -1 past the end of the path.
        level_conf: `(N, depth) float32` P(node | predicted parent); 1.0 past the end of the path.
        path_conf: `(N,) float32` product of the level confidences.
    """

    nodes: np.ndarray
    level_conf: np.ndarray
    path_conf: np.ndarray

    def take(self, rows: np.ndarray) -> HierarchicalPrediction:
        """The predictions of the given rows (indices or boolean mask)."""
        return HierarchicalPrediction(self.nodes[rows], self.level_conf[rows], self.path_conf[rows])

    def __len__(self) -> int:
        return len(self.nodes)


def conditional_log_probs(level_logits: Sequence[np.ndarray], tree: TaxonomyTree) -> list[np.ndarray]:
    """Per-level logits to log P(node | parent), a softmax within each group of siblings.

    Args:
        level_logits: per level `(N, n_L)` float logits.
        tree: the taxonomy.

    Returns:
        per level `(N, n_L) float64`; within the children of any parent, exp sums to 1.
    """
    out = []
    for level, logits in enumerate(level_logits):
        logits = np.asarray(logits, dtype=np.float64)
        starts = np.flatnonzero(np.r_[True, np.diff(tree.parent[level]) != 0])
        sizes = np.diff(np.r_[starts, logits.shape[1]])
        group_max = np.repeat(np.maximum.reduceat(logits, starts, axis=1), sizes, axis=1)
        shifted = logits - group_max
        group_sum = np.repeat(np.add.reduceat(np.exp(shifted), starts, axis=1), sizes, axis=1)
        out.append(shifted - np.log(group_sum))
    return out


def decode(cond_log_probs: Sequence[np.ndarray], tree: TaxonomyTree, *, beam_width: int = 1) -> HierarchicalPrediction:
    """Best valid path per row, greedy (`beam_width=1`) or by beam search over path log-probability.

    A path ends at a node without children. With `beam_width` at least the number of leaves the search
    is exact: it returns the root-to-leaf path of largest summed log-probability.

    Args:
        cond_log_probs: per level `(N, n_L)` log P(node | parent), from `conditional_log_probs`.
        tree: the taxonomy.
        beam_width: number of partial paths kept per row.

    Returns:
        `HierarchicalPrediction`, every row a valid path of `tree`.
    """
    n = len(cond_log_probs[0])
    first = cond_log_probs[0]
    k = min(beam_width, first.shape[1])
    top = np.argsort(-first, axis=1, kind="stable")[:, :k]
    beams = np.full((n, k, tree.depth), -1, dtype=np.int64)
    beams[:, :, 0] = top
    scores = np.take_along_axis(first, top, axis=1)
    for level in range(1, tree.depth):
        beams, scores = _beam_step(beams, scores, cond_log_probs[level], tree, level, beam_width)
    best = np.argmax(scores, axis=1)
    nodes = beams[np.arange(n), best]
    return _with_confidence(nodes, cond_log_probs)


def _beam_step(beams, scores, logp, tree, level, width):
    """Extends every beam by one level (or carries it over if it has ended); keeps the top `width`."""
    n, k, _ = beams.shape
    size = logp.shape[1]
    prev = beams[:, :, level - 1]
    alive = np.isfinite(scores)
    expand = alive & (prev >= 0) & tree.has_children[level - 1][np.maximum(prev, 0)]
    is_child = tree.parent[level][None, None, :] == prev[:, :, None]
    cand = np.where(expand[:, :, None] & is_child, scores[:, :, None] + logp[:, None, :], -np.inf)
    carried = np.where(alive & ~expand, scores, -np.inf)
    flat = np.concatenate([cand.reshape(n, k * size), carried], axis=1)
    width = min(width, flat.shape[1])
    top = np.argsort(-flat, axis=1, kind="stable")[:, :width]
    new_scores = np.take_along_axis(flat, top, axis=1)
    source = np.where(top < k * size, top // size, top - k * size)
    new_beams = np.take_along_axis(beams, source[:, :, None], axis=1).copy()
    new_beams[:, :, level] = np.where(top < k * size, top % size, -1)
    return new_beams, new_scores


def _with_confidence(nodes: np.ndarray, cond_log_probs: Sequence[np.ndarray]) -> HierarchicalPrediction:
    conf = np.ones(nodes.shape, dtype=np.float64)
    for level, logp in enumerate(cond_log_probs):
        picked = nodes[:, level]
        vals = np.take_along_axis(logp, np.maximum(picked, 0)[:, None], axis=1)[:, 0]
        conf[:, level] = np.where(picked >= 0, np.exp(vals), 1.0)
    return HierarchicalPrediction(nodes, conf.astype(np.float32), conf.prod(axis=1).astype(np.float32))


def marginal_probs(cond_log_probs: Sequence[np.ndarray], tree: TaxonomyTree) -> list[np.ndarray]:
    """Per level `(N, n_L) float32` P(node) = P(node | parent) * P(parent)."""
    out = [np.exp(cond_log_probs[0])]
    for level in range(1, tree.depth):
        out.append(np.exp(cond_log_probs[level]) * out[-1][:, tree.parent[level]])
    return [p.astype(np.float32) for p in out]


# ----------------------------------------------------------------------------------------------
# torch parts: level heads and the teacher-forced loss


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
        out.append(level_logits[level].masked_fill(~allowed, _NEG))
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


# ----------------------------------------------------------------------------------------------
# the classifier


def _resolve_device(device):
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class HierarchicalClassifier:
    """Fusion model + per-level heads, trained teacher-forced, decoded to valid paths.

    Args:
        fusion: "late" (one MLP per modality, log-probabilities combined), "early" (concat -> MLP) or
            "attention" (cross-modal attention over one token per modality); see `core.fusion`.
        modalities: names of the inputs, keys of `X` (one name = a single-modality model).
        hidden: width of the hidden layers.
        dropout: dropout rate in the MLPs.
        epochs: maximum number of passes over the training set.
        lr: AdamW learning rate. weight_decay: AdamW weight decay.
        batch_size: minibatch size.
        val_fraction: share of the training rows held out for early stopping (0 disables it).
        patience: epochs without validation-loss improvement before stopping.
        beam_width: default beam width of `predict` (1 = greedy).
        seed: seeds weight initialisation, the validation split and minibatch order.
        device: "cuda", "cpu" or None (CUDA when available).
        tree: a fixed `TaxonomyTree`; by default it is built from the training labels.
        num_threads: CPU threads torch may use in `fit`/`predict` (None: torch's current setting).
        fusion_options: extra options of the fusion model, e.g. `{"weights": "equal"}` (late) or
            `{"num_heads": 8}` (attention); see `core.fusion.build_fusion`.
    """

    def __init__(
        self,
        *,
        fusion: str = "late",
        modalities: Sequence[str] = ("text", "image"),
        hidden: int = 256,
        dropout: float = 0.1,
        epochs: int = 20,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 512,
        val_fraction: float = 0.1,
        patience: int = 3,
        beam_width: int = 1,
        label_smoothing: float = 0.0,
        seed: int = 0,
        device=None,
        tree: TaxonomyTree | None = None,
        num_threads: int | None = 1,
        fusion_options: dict | None = None,
    ):
        self.params = dict(
            fusion=fusion,
            modalities=list(modalities),
            hidden=hidden,
            dropout=dropout,
            epochs=epochs,
            lr=lr,
            weight_decay=weight_decay,
            batch_size=batch_size,
            val_fraction=val_fraction,
            patience=patience,
            beam_width=beam_width,
            label_smoothing=label_smoothing,
            seed=seed,
            fusion_options=dict(fusion_options or {}),
        )
        self.device, self.num_threads = device, num_threads
        self.tree = tree
        self.tree_: TaxonomyTree | None = tree
        self.model_ = None
        self.input_dims_: list[int] = []
        self.history_: list[dict] = []

    @property
    def modalities(self) -> list[str]:
        """Input names, in model order."""
        return self.params["modalities"]

    def _build(self):
        from core.fusion import build_fusion

        p = self.params
        return build_fusion(
            p["fusion"],
            input_dims=self.input_dims_,
            level_sizes=self.tree_.sizes,
            hidden=p["hidden"],
            dropout=p["dropout"],
            **p["fusion_options"],
        )

    def _tensors(self, X: dict, masks: dict | None, device):
        import torch

        xs = [torch.as_tensor(np.asarray(X[m], dtype=np.float32), device=device) for m in self.modalities]
        n = len(xs[0])
        cols = [np.ones(n, bool) if masks is None or m not in masks else np.asarray(masks[m], bool) for m in self.modalities]
        return xs, torch.as_tensor(np.stack(cols, axis=1), device=device)

    def fit(
        self, X: dict[str, np.ndarray], y_paths: Sequence[Sequence[str]], *, masks: dict[str, np.ndarray] | None = None
    ) -> HierarchicalClassifier:
        """Trains the model.

        Args:
            X: modality name -> `(N, D_m) float32` vectors (rows of a missing modality may hold anything).
            y_paths: N label paths (tuples of names).
            masks: modality name -> `(N,) bool`, True where the modality is present (default: all).

        Returns:
            self.
        """
        from core.fusion import torch_threads

        with torch_threads(self.num_threads):
            return self._fit(X, y_paths, masks)

    def _fit(self, X: dict, y_paths: Sequence[Sequence[str]], masks: dict | None) -> HierarchicalClassifier:
        import torch

        from core.fusion import BUILD_LOCK, seed_dropout, train_fusion

        device = _resolve_device(self.device)
        self.tree_ = self.tree if self.tree is not None else TaxonomyTree.from_paths(y_paths)
        self.input_dims_ = [int(np.asarray(X[m]).shape[1]) for m in self.modalities]
        with BUILD_LOCK:  # repeatable initial weights even when models are built in parallel threads
            torch.manual_seed(self.params["seed"])
            self.model_ = self._build().to(device)
        seed_dropout(self.model_, self.params["seed"])
        xs, mask = self._tensors(X, masks, device)
        targets = torch.as_tensor(self.tree_.encode(y_paths), device=device)
        child_masks = [None] + [torch.as_tensor(self.tree_.child_mask(lv), device=device) for lv in range(1, self.tree_.depth)]
        self.history_ = train_fusion(self.model_, xs, mask, targets, child_masks, **self._train_options())
        return self

    def _train_options(self) -> dict:
        keys = ("epochs", "lr", "weight_decay", "batch_size", "val_fraction", "patience", "label_smoothing", "seed")
        return {k: self.params[k] for k in keys}

    def level_logits(self, X: dict[str, np.ndarray], *, masks: dict | None = None, batch_size: int = 8192) -> list[np.ndarray]:
        """Raw per-level outputs of the fusion model: list of `(N, n_L) float32`."""
        from core.fusion import torch_threads

        with torch_threads(self.num_threads):
            return self._level_logits(X, masks, batch_size)

    def _level_logits(self, X: dict, masks: dict | None, batch_size: int) -> list[np.ndarray]:
        import torch

        device = next(self.model_.parameters()).device
        xs, mask = self._tensors(X, masks, device)
        self.model_.eval()
        chunks = [[np.zeros((0, size), np.float32) for size in self.tree_.sizes]]
        with torch.inference_mode():
            for start in range(0, len(mask), batch_size):
                logits, _ = self.model_([x[start : start + batch_size] for x in xs], mask[start : start + batch_size])
                chunks.append([t.float().cpu().numpy() for t in logits])
        return [np.concatenate([c[lv] for c in chunks]) for lv in range(self.tree_.depth)]

    def predict_log_conditionals(self, X: dict[str, np.ndarray], *, masks: dict | None = None) -> list[np.ndarray]:
        """Per level `(N, n_L) float64` log P(node | parent)."""
        return conditional_log_probs(self.level_logits(X, masks=masks), self.tree_)

    def predict_proba(self, X: dict[str, np.ndarray], *, masks: dict | None = None) -> list[np.ndarray]:
        """Per level `(N, n_L) float32` marginal probabilities P(node) (see `marginal_probs`)."""
        return marginal_probs(self.predict_log_conditionals(X, masks=masks), self.tree_)

    def predict(
        self, X: dict[str, np.ndarray], *, masks: dict | None = None, beam_width: int | None = None
    ) -> HierarchicalPrediction:
        """Best valid path per product.

        Args:
            X: modality name -> `(N, D_m)`. masks: modality name -> `(N,) bool`.
            beam_width: overrides the constructor's default.

        Returns:
            `HierarchicalPrediction` with `nodes (N, depth)`, `level_conf (N, depth)`, `path_conf (N,)`.
        """
        width = beam_width or self.params["beam_width"]
        return decode(self.predict_log_conditionals(X, masks=masks), self.tree_, beam_width=width)

    def predict_paths(self, X: dict[str, np.ndarray], *, masks: dict | None = None) -> list[Path_]:
        """Best valid path per product as tuples of names."""
        return self.tree_.decode(self.predict(X, masks=masks).nodes)

    def save(self, folder: str | Path) -> Path:
        """Writes `weights.pt` (state_dict only) and `meta.json` to `folder`."""
        import torch

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": 1,
            "params": self.params,
            "input_dims": self.input_dims_,
            "tree": self.tree_.to_json(),
            "history": self.history_,
        }
        torch.save({k: v.cpu() for k, v in self.model_.state_dict().items()}, folder / "weights.pt")
        (folder / "meta.json").write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, device=None, num_threads: int | None = 1) -> HierarchicalClassifier:
        """Reads a model written by `save` (weights loaded with `weights_only=True`)."""
        import torch

        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text())
        clf = cls(**meta["params"], device=device, num_threads=num_threads, tree=TaxonomyTree.from_json(meta["tree"]))
        clf.input_dims_ = meta["input_dims"]
        clf.history_ = meta["history"]
        dev = _resolve_device(device)
        clf.model_ = clf._build().to(dev)
        clf.model_.load_state_dict(torch.load(folder / "weights.pt", map_location=dev, weights_only=True))
        clf.model_.eval()
        return clf
