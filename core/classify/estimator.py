"""`HierarchicalClassifier`: a fusion model with per-level heads, trained teacher-forced and decoded to valid paths.

The one estimator behind the production models, the review scores and the comparison: `fit` on modality
vectors and label paths, `predict` a valid root-to-leaf path per product (greedy or beam search), `save` /
`load` a folder (`weights.pt` state_dict + `meta.json`). The network is built by `core.classify.fusion`; the
taxonomy arrays and decoding are `core.classify.taxonomy`. torch is imported inside the methods that need it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.classify.fusion import BUILD_LOCK, build_fusion, seed_dropout, train_fusion
from core.classify.taxonomy import HierarchicalPrediction, Path_, TaxonomyTree, conditional_log_probs, decode, marginal_probs
from core.torch_runtime import torch_threads


def _resolve_device(device):
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class HierarchicalClassifier:
    """Fusion model + per-level heads, trained teacher-forced, decoded to valid paths.

    Args:
        fusion: "late" (one MLP per modality, log-probabilities combined), "early" (concat -> MLP) or
            "attention" (cross-modal attention over one token per modality); see `core.classify.fusion`.
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
            `{"num_heads": 8}` (attention); see `core.classify.fusion.build_fusion`.
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
        with torch_threads(self.num_threads):
            return self._fit(X, y_paths, masks)

    def _fit(self, X: dict, y_paths: Sequence[Sequence[str]], masks: dict | None) -> HierarchicalClassifier:
        import torch

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
        self,
        X: dict[str, np.ndarray],
        *,
        masks: dict | None = None,
        beam_width: int | None = None,
        within: np.ndarray | None = None,
    ) -> HierarchicalPrediction:
        """Best valid path per product.

        Args:
            X: modality name -> `(N, D_m)`. masks: modality name -> `(N,) bool`.
            beam_width: overrides the constructor's default.
            within: `(N, depth)` node prefix each path must start with (-1: free), see `TaxonomyTree.within`.

        Returns:
            `HierarchicalPrediction` with `nodes (N, depth)`, `level_conf (N, depth)`, `path_conf (N,)`.
        """
        width = beam_width or self.params["beam_width"]
        return decode(self.predict_log_conditionals(X, masks=masks), self.tree_, beam_width=width, within=within)

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
