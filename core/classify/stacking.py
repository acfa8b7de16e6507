"""Late fusion at the path level: a neural hierarchical model (dense modalities) with the sparse-text model
(linear SVM on TF-IDF of title and description).

For every root-to-leaf path of the taxonomy:

    log p(path) = alpha * log_softmax(T * svm_score(path)) + (1 - alpha) * log p_neural(path)  (renormalised)

`T` (the SVM's temperature) and `alpha` are chosen on calibration rows the SVM and the neural model never
saw, by hierarchical F1 (ties: lower log-loss). The argmax over whole paths is always a valid path, and the
per-level confidences are the combined path distribution's conditionals along it.

The object is a cascade stage (`modalities`, `tree_`, `predict(X, masks=...)`); its modalities are the
neural model's plus "svm" (the SVM's per-path decision scores, columns in `classes`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.classify.estimator import HierarchicalClassifier
from core.classify.metrics import hierarchical_f1
from core.classify.taxonomy import HierarchicalPrediction

TEMPERATURES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
ALPHAS = tuple(round(a, 2) for a in np.linspace(0.0, 1.0, 11))


class StackedFusion:
    """A neural hierarchical model and the SVM's path scores, combined per whole path.

    Args:
        neural: a fitted `HierarchicalClassifier`.
        classes: the SVM's class names (full paths joined by " > "), the column order of X["svm"].
        temperature, alpha: the combination's settings (chosen by `fit`).
        svm_key: the input name of the SVM scores.
    """

    def __init__(self, neural, classes: list[str], *, temperature: float = 8.0, alpha: float = 0.5, svm_key: str = "svm"):
        self.neural, self.classes, self.svm_key = neural, list(classes), svm_key
        self.temperature, self.alpha = float(temperature), float(alpha)
        self.tree_ = neural.tree_
        self.leaves_ = self.tree_.leaf_paths()
        column = {c: i for i, c in enumerate(self.classes)}
        names = [" > ".join(p) for p in self.tree_.decode(self.leaves_)]
        self.columns_ = np.array([column.get(n, -1) for n in names])
        self.search_: list[dict] = []

    @property
    def modalities(self) -> list[str]:
        return [*self.neural.modalities, self.svm_key]

    def _parts(self, X: dict, masks: dict | None) -> tuple[np.ndarray, np.ndarray]:
        """(neural path log-probs (N, P), SVM path scores (N, P))."""
        xs = {m: X[m] for m in self.neural.modalities}
        ms = None if masks is None else {m: masks[m] for m in self.neural.modalities if m in masks}
        cond = self.neural.predict_log_conditionals(xs, masks=ms)
        neural = np.zeros((len(cond[0]), len(self.leaves_)))
        for level in range(self.tree_.depth):
            idx = self.leaves_[:, level]
            neural += np.where(idx >= 0, cond[level][:, np.maximum(idx, 0)], 0.0)
        scores = np.asarray(X[self.svm_key], dtype=np.float64)
        svm = np.where(self.columns_ >= 0, scores[:, np.maximum(self.columns_, 0)], -1e4)
        return neural, svm

    @staticmethod
    def _combine(neural: np.ndarray, svm: np.ndarray, temperature: float, alpha: float) -> np.ndarray:
        """Normalised combined path log-probabilities (N, P)."""
        z = svm * temperature
        z = z - z.max(1, keepdims=True)
        svm_lp = z - np.log(np.exp(z).sum(1, keepdims=True))
        out = alpha * svm_lp + (1.0 - alpha) * neural
        out = out - out.max(1, keepdims=True)
        return out - np.log(np.exp(out).sum(1, keepdims=True))

    def fit(self, X: dict, y_paths, *, masks: dict | None = None) -> StackedFusion:
        """Choose temperature and alpha on calibration rows (X, y_paths)."""
        neural, svm = self._parts(X, masks)
        truth = self.tree_.encode(y_paths)
        leaf_of = {tuple(row): j for j, row in enumerate(self.leaves_.tolist())}
        target = np.array([leaf_of.get(tuple(row), -1) for row in truth.tolist()])
        known = target >= 0
        best = None
        self.search_ = []
        for temperature in TEMPERATURES:
            for alpha in ALPHAS:
                lp = self._combine(neural, svm, temperature, alpha)
                hf1 = hierarchical_f1(truth, self.leaves_[lp.argmax(1)])
                loss = float(-lp[known, target[known]].mean()) if known.any() else 0.0
                self.search_.append(
                    {"temperature": temperature, "alpha": alpha, "hf1": round(hf1, 5), "log_loss": round(loss, 5)}
                )
                key = (hf1, -loss)
                if best is None or key > best[0]:
                    best = (key, temperature, alpha)
        _, self.temperature, self.alpha = best
        return self

    def predict(
        self, X: dict, *, masks: dict | None = None, beam_width: int | None = None, within: np.ndarray | None = None
    ) -> HierarchicalPrediction:
        """The most probable whole path under the combined distribution (below `within`'s prefix where given, see
        `TaxonomyTree.within`), with per-level conditional confidences."""
        lp = self._combine(*self._parts(X, masks), self.temperature, self.alpha)
        rows = np.flatnonzero((within >= 0).any(1)) if within is not None else []
        if len(rows):  # only the constrained rows: (rows, leaves, depth) temporaries, not (N, leaves, depth)
            w = within[rows]
            off = ((w[:, None, :] >= 0) & (self.leaves_[None, :, :] != w[:, None, :])).any(2)
            sub = np.where(off, -np.inf, lp[rows])
            lp[rows] = sub - np.logaddexp.reduce(sub, axis=1, keepdims=True)  # renormalised below the prefix
        probs = np.exp(lp)
        best = lp.argmax(1)
        nodes = self.leaves_[best]
        level_conf = np.ones(nodes.shape, np.float64)
        above = np.ones(len(nodes))
        for level in range(self.tree_.depth):
            present = nodes[:, level] >= 0
            same = self.leaves_[None, :, level] == nodes[:, level][:, None]
            mass = (probs * same).sum(1)
            level_conf[:, level] = np.where(present, mass / np.maximum(above, 1e-12), 1.0)
            above = np.where(present, mass, above)
        return HierarchicalPrediction(nodes, level_conf.astype(np.float32), probs[np.arange(len(best)), best].astype(np.float32))

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        self.neural.save(folder)
        (folder / "stack.json").write_text(
            json.dumps({"temperature": self.temperature, "alpha": self.alpha, "svm_key": self.svm_key, "classes": self.classes})
        )
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, device=None):
        """A saved stage: a `StackedFusion`, or a plain `HierarchicalClassifier` when it was saved without stacking."""
        folder = Path(folder)
        neural = HierarchicalClassifier.load(folder, device=device)
        if not (folder / "stack.json").exists():
            return neural
        meta = json.loads((folder / "stack.json").read_text())
        return cls(neural, meta["classes"], temperature=meta["temperature"], alpha=meta["alpha"], svm_key=meta["svm_key"])
