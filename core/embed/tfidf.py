"""A sparse-text modality: TF-IDF of word 1-2-grams and character 2-5-grams, projected to a dense space.

Fitted on the training titles only (so held-out products never shape it), it gives the classifier the
exact-token evidence that a sentence embedding smooths away. Saved as JSON + .npy (never pickles).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SPECS = {
    "word": {"analyzer": "word", "ngram_range": (1, 2), "min_df": 1},
    "char": {"analyzer": "char_wb", "ngram_range": (2, 5), "min_df": 2},
}
# descriptions are long: word 1-2-grams only (character n-grams of them cost 4x the fit time for nothing)
DESCRIPTION_SPECS = {"word": {"analyzer": "word", "ngram_range": (1, 2), "min_df": 2}}


class TfidfProjector:
    """`fit(texts)` then `transform(texts) -> (N, dim) float32` unit rows.

    Args:
        dim: width of the projection (truncated SVD of the stacked TF-IDF matrices).
        seed: seeds the randomized SVD.
    """

    def __init__(self, *, dim: int = 256, seed: int = 0, specs: dict | None = None):
        self.dim, self.seed = dim, seed
        self.specs = specs or SPECS
        self.vectorizers_: dict = {}
        self.components_: np.ndarray | None = None

    def _matrix(self, texts: Sequence[str]):
        from scipy.sparse import hstack

        return hstack([self.vectorizers_[name].transform(texts) for name in self.specs]).tocsr()

    def fit_vectorizers(self, texts: Sequence[str]) -> TfidfProjector:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizers_ = {name: TfidfVectorizer(sublinear_tf=True, **spec).fit(texts) for name, spec in self.specs.items()}
        return self

    def fit(self, texts: Sequence[str]) -> TfidfProjector:
        from sklearn.decomposition import TruncatedSVD

        self.fit_vectorizers(texts)
        matrix = self._matrix(texts)
        dim = min(self.dim, matrix.shape[1] - 1, len(texts) - 1)
        svd = TruncatedSVD(n_components=dim, algorithm="randomized", n_iter=4, random_state=self.seed).fit(matrix)
        self.components_ = svd.components_.astype(np.float32)
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """`(N, dim) float32`, L2-normalised rows (zeros for texts with no known n-gram)."""
        dense = np.asarray(self._matrix(texts) @ self.components_.T, dtype=np.float32)
        norms = np.linalg.norm(dense, axis=1, keepdims=True)
        return dense / np.where(norms > 0, norms, 1.0)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, vec in self.vectorizers_.items():
            vocab = {term: int(i) for term, i in vec.vocabulary_.items()}
            (folder / f"{name}_vocabulary.json").write_text(json.dumps(vocab))
            np.save(folder / f"{name}_idf.npy", vec.idf_)
        np.save(folder / "components.npy", self.components_)
        (folder / "meta.json").write_text(json.dumps({"dim": self.dim, "seed": self.seed, "specs": self.specs}))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> TfidfProjector:
        from sklearn.feature_extraction.text import TfidfVectorizer

        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text())
        specs = {n: {**sp, "ngram_range": tuple(sp["ngram_range"])} for n, sp in meta.pop("specs", SPECS).items()}
        proj = cls(**meta, specs=specs)
        for name, spec in specs.items():
            vocab = json.loads((folder / f"{name}_vocabulary.json").read_text())
            vec = TfidfVectorizer(sublinear_tf=True, vocabulary=vocab, **spec)
            vec.idf_ = np.load(folder / f"{name}_idf.npy", allow_pickle=False)
            proj.vectorizers_[name] = vec
        proj.components_ = np.load(folder / "components.npy", allow_pickle=False)
        return proj


class TfidfSvmScores:
    """Per-path decision scores of a linear SVM on TF-IDF features of the title (word + character n-grams)
    and, when given, of the description (word n-grams), as a modality for fusion.

    With `folds` >= 2, `fit` also computes out-of-fold scores for its own training rows (`oof_`, k-fold), for
    a model that learns from the scores without seeing ones from an SVM that saw the same product.
    Saved as JSON + .npy (never pickles).

    Args:
        folds: folds for the out-of-fold scores (0: none). C: SVM regularisation. seed: fold assignment.
    """

    def __init__(self, *, folds: int = 3, C: float = 0.5, seed: int = 0):
        self.folds, self.C, self.seed = folds, C, seed
        self.features_ = TfidfProjector(dim=0, seed=seed)
        self.description_: TfidfProjector | None = None
        self.classes_: list[str] = []
        self.coef_: np.ndarray | None = None
        self.intercept_: np.ndarray | None = None
        self.oof_: np.ndarray | None = None

    def _svm(self, X, y):
        from sklearn.svm import LinearSVC

        return LinearSVC(C=self.C).fit(X, y)

    def _matrix(self, titles: Sequence[str], descriptions: Sequence[str] | None):
        from scipy.sparse import hstack

        if self.description_ is None:
            return self.features_._matrix(titles)
        if descriptions is None:
            raise ValueError("this model reads descriptions too: pass them to transform()")
        descriptions = [d or "" for d in descriptions]
        return hstack([self.features_._matrix(titles), self.description_._matrix(descriptions)]).tocsr()

    def fit(self, texts: Sequence[str], labels: Sequence[str], descriptions: Sequence[str] | None = None) -> TfidfSvmScores:
        """Fit on titles (`texts`) and, optionally, descriptions; the k fold models run on two threads."""
        from concurrent.futures import ThreadPoolExecutor

        from sklearn.model_selection import KFold

        self.features_.fit_vectorizers(texts)
        self.description_ = None
        if descriptions is not None and sum(bool(d.strip()) for d in descriptions) >= 2:
            try:
                self.description_ = TfidfProjector(dim=0, seed=self.seed, specs=DESCRIPTION_SPECS).fit_vectorizers(descriptions)
            except ValueError:  # no word occurs twice: nothing to learn from the descriptions
                self.description_ = None
        if self.description_ is None:
            descriptions = None
        X, y = self._matrix(texts, descriptions), np.asarray(labels)
        folds = list(KFold(self.folds, shuffle=True, random_state=self.seed).split(X)) if self.folds >= 2 else []
        with ThreadPoolExecutor(2) as pool:  # liblinear releases the GIL
            full = pool.submit(self._svm, X, y)
            fold_models = list(pool.map(lambda f: self._svm(X[f[0]], y[f[0]]), folds))
            svm = full.result()
        self.classes_ = [str(c) for c in svm.classes_]
        self.coef_, self.intercept_ = svm.coef_.astype(np.float32), svm.intercept_.astype(np.float32)
        self.oof_ = np.zeros((len(y), len(self.classes_)), np.float32) if folds else None
        for (_, held), fold in zip(folds, fold_models):
            cols = [self.classes_.index(str(c)) for c in fold.classes_]
            self.oof_[np.ix_(held, cols)] = fold.decision_function(X[held])
        return self

    def transform(self, texts: Sequence[str], descriptions: Sequence[str] | None = None) -> np.ndarray:
        """`(N, K) float32` decision scores, one column per label path in `classes_`."""
        X = self._matrix(texts, descriptions)
        return np.asarray(X @ self.coef_.T + self.intercept_, dtype=np.float32)

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        self.features_.components_ = np.zeros((0, 0), np.float32)
        self.features_.save(folder)
        if self.description_ is not None:
            self.description_.components_ = np.zeros((0, 0), np.float32)
            self.description_.save(folder / "description")
        np.save(folder / "coef.npy", self.coef_.astype(np.float16))
        np.save(folder / "intercept.npy", self.intercept_)
        (folder / "classes.json").write_text(json.dumps(self.classes_))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> TfidfSvmScores:
        folder = Path(folder)
        model = cls()
        model.features_ = TfidfProjector.load(folder)
        if (folder / "description").exists():
            model.description_ = TfidfProjector.load(folder / "description")
        model.coef_ = np.load(folder / "coef.npy", allow_pickle=False).astype(np.float32)
        model.intercept_ = np.load(folder / "intercept.npy", allow_pickle=False)
        model.classes_ = json.loads((folder / "classes.json").read_text())
        return model
