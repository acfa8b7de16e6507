"""A joint text-image space without hub weights: CLIP-style contrastive alignment on frozen embeddings.

Two projection heads (text -> d, image -> d) are trained on image-title pairs with the symmetric InfoNCE
loss and a learned temperature (`logit_scale`, clamped to [0, log(max_logit_scale)]), as in CLIP with
locked encoders ("locked-image tuning"). The result gives text -> image search (`transform_text` vs
`transform_image`) and a product embedding (`joint`) that also exists for text-only products.

Saved as one `.pt` (state_dict + JSON meta, loaded with `weights_only=True`) or `.npz` file (arrays +
JSON meta), never a pickled object. torch is imported lazily.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.embed.encoders import l2_normalize, resolve_device
from core.torch_runtime import torch_threads


def _projection(in_dim: int, dim: int, hidden: int):
    from torch import nn

    if hidden:
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
    return nn.Linear(in_dim, dim)


def _build(text_dim: int, image_dim: int, dim: int, hidden: int, init_temperature: float):
    import torch
    from torch import nn

    module = nn.Module()
    module.text = _projection(text_dim, dim, hidden)
    module.image = _projection(image_dim, dim, hidden)
    module.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))
    return module


def info_nce(text, image, logit_scale):
    """Symmetric InfoNCE of a batch of matching pairs: `(B, d)` unit rows each, pair i matches i."""
    import torch
    import torch.nn.functional as F

    logits = logit_scale.exp() * text @ image.T
    target = torch.arange(len(text), device=text.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class JointAligner:
    """Projection heads aligning frozen text and image embeddings.

    Args:
        dim: width of the joint space.
        hidden: hidden width of the heads (0 = linear heads).
        epochs: passes over the pairs (0 leaves the random initialisation: a baseline).
        lr: AdamW learning rate. weight_decay: AdamW weight decay.
        batch_size: pairs per InfoNCE batch (the in-batch negatives).
        init_temperature: initial softmax temperature (logit_scale = log(1 / T)).
        max_logit_scale: clamp of exp(logit_scale).
        seed: initialisation and batch order.
        device: "cuda", "cpu" or None (CUDA when available).
        num_threads: CPU threads torch may use in `fit` (None: torch's current setting).
    """

    def __init__(
        self,
        *,
        dim: int = 256,
        hidden: int = 0,
        epochs: int = 30,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 512,
        init_temperature: float = 0.07,
        max_logit_scale: float = 100.0,
        seed: int = 0,
        device=None,
        num_threads: int | None = 1,
    ):
        self.params = dict(
            dim=dim,
            hidden=hidden,
            epochs=epochs,
            lr=lr,
            weight_decay=weight_decay,
            batch_size=batch_size,
            init_temperature=init_temperature,
            max_logit_scale=max_logit_scale,
            seed=seed,
        )
        self.device, self.num_threads = device, num_threads
        self.model_ = None
        self.dims_: tuple[int, int] = (0, 0)
        self.history_: list[float] = []

    def _init(self, text_dim: int, image_dim: int) -> None:
        import torch

        torch.manual_seed(self.params["seed"])
        p = self.params
        self.dims_ = (int(text_dim), int(image_dim))
        self.model_ = _build(text_dim, image_dim, p["dim"], p["hidden"], p["init_temperature"])
        self.model_.to(resolve_device(self.device))

    def fit(self, text_emb: np.ndarray, image_emb: np.ndarray) -> JointAligner:
        """Trains the heads on matching pairs.

        Args:
            text_emb: `(N, D_text) float32`, row i describes the product of image row i.
            image_emb: `(N, D_image) float32`.

        Returns:
            self.
        """
        if len(text_emb) != len(image_emb):
            raise ValueError("text_emb and image_emb must hold the same pairs")
        with torch_threads(self.num_threads):
            return self._fit(text_emb, image_emb)

    def _fit(self, text_emb: np.ndarray, image_emb: np.ndarray) -> JointAligner:
        import torch

        self._init(np.shape(text_emb)[1], np.shape(image_emb)[1])
        device = self.model_.logit_scale.device
        t = torch.as_tensor(np.asarray(text_emb, np.float32), device=device)
        v = torch.as_tensor(np.asarray(image_emb, np.float32), device=device)
        opt = torch.optim.AdamW(
            self.model_.parameters(), lr=self.params["lr"], weight_decay=self.params["weight_decay"], foreach=True
        )
        rng = np.random.default_rng(self.params["seed"])
        self.history_ = [self._epoch(t, v, opt, rng) for _ in range(self.params["epochs"])]
        self.model_.eval()
        return self

    def _epoch(self, t, v, opt, rng) -> float:
        import torch.nn.functional as F

        self.model_.train()
        order, size, total = rng.permutation(len(t)), self.params["batch_size"], 0.0
        max_log = math.log(self.params["max_logit_scale"])
        for start in range(0, len(order) - 1, size):
            idx = order[start : start + size]
            if len(idx) < 2:
                continue
            loss = info_nce(
                F.normalize(self.model_.text(t[idx]), dim=-1),
                F.normalize(self.model_.image(v[idx]), dim=-1),
                self.model_.logit_scale,
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.model_.logit_scale.data.clamp_(0.0, max_log)
            total += float(loss.detach()) * len(idx)
        return total / len(order)

    @property
    def logit_scale_(self) -> float:
        """Learned exp(logit_scale), the inverse temperature."""
        return float(self.model_.logit_scale.detach().exp())

    def _apply(self, head, x: np.ndarray, batch_size: int = 8192) -> np.ndarray:
        import torch

        device = self.model_.logit_scale.device
        out = []
        with torch.inference_mode():
            for start in range(0, len(x), batch_size):
                chunk = torch.as_tensor(np.asarray(x[start : start + batch_size], np.float32), device=device)
                out.append(head(chunk).float().cpu().numpy())
        return l2_normalize(np.concatenate(out)) if out else np.zeros((0, self.params["dim"]), np.float32)

    def transform_text(self, text_emb: np.ndarray) -> np.ndarray:
        """`(N, D_text)` -> `(N, dim) float32` unit vectors in the joint space."""
        return self._apply(self.model_.text, text_emb)

    def transform_image(self, image_emb: np.ndarray) -> np.ndarray:
        """`(N, D_image)` -> `(N, dim) float32` unit vectors in the joint space."""
        return self._apply(self.model_.image, image_emb)

    def joint(self, text_emb: np.ndarray, image_emb: np.ndarray, image_mask: np.ndarray | None = None) -> np.ndarray:
        """Product embedding: normalised sum of the projected text and (where present) image.

        Args:
            text_emb: `(N, D_text)`. image_emb: `(N, D_image)` (rows where the mask is False ignored).
            image_mask: `(N,) bool`, True where the product has an image (default: all).

        Returns:
            `(N, dim) float32` unit vectors; text-only products get their projected text.
        """
        mask = np.ones(len(text_emb), bool) if image_mask is None else np.asarray(image_mask, bool)
        out = self.transform_text(text_emb)
        if mask.any():
            out[mask] += self.transform_image(np.asarray(image_emb)[mask])
        return l2_normalize(out)

    def _meta(self) -> str:
        return json.dumps({"format": 1, "params": self.params, "dims": list(self.dims_), "history": self.history_})

    def save(self, path: str | Path) -> Path:
        """Writes weights and meta to one file, never a pickled object.

        A `.pt` path gets a torch file `{"state_dict": ..., "meta": json}` (readable with
        `weights_only=True`); any other suffix an `.npz` of arrays plus a JSON string.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _WRITERS[".pt" if path.suffix == ".pt" else ".npz"](path, self.model_.state_dict(), self._meta())
        return path

    @classmethod
    def load(cls, path: str | Path, *, device=None) -> JointAligner:
        """Reads an aligner written by `save`."""
        path = Path(path)
        state, meta = _READERS[".pt" if path.suffix == ".pt" else ".npz"](path)
        meta = json.loads(meta)
        aligner = cls(**meta["params"], device=device)
        aligner._init(*meta["dims"])
        aligner.model_.load_state_dict(state)
        aligner.model_.eval()
        aligner.history_ = meta["history"]
        return aligner


def _write_pt(path: Path, state: dict, meta: str) -> None:
    import torch

    torch.save({"state_dict": {k: v.detach().cpu() for k, v in state.items()}, "meta": meta}, path)


def _read_pt(path: Path) -> tuple[dict, str]:
    import torch

    data = torch.load(path, map_location="cpu", weights_only=True)
    return data["state_dict"], data["meta"]


def _write_npz(path: Path, state: dict, meta: str) -> None:
    arrays = {f"w__{k}": v.detach().cpu().numpy() for k, v in state.items()}
    with open(path, "wb") as fh:
        np.savez(fh, meta=np.array(meta), **arrays)


def _read_npz(path: Path) -> tuple[dict, str]:
    import torch

    with np.load(path, allow_pickle=False) as data:
        return {k[3:]: torch.from_numpy(data[k]) for k in data.files if k.startswith("w__")}, str(data["meta"])


_WRITERS = {".pt": _write_pt, ".npz": _write_npz}
_READERS = {".pt": _read_pt, ".npz": _read_npz}


def retrieval_recall(
    queries: np.ndarray, keys: np.ndarray, *, ks: Sequence[int] = (1, 10), batch_size: int = 1024
) -> dict[int, float]:
    """Recall@k of paired retrieval: query i's match is key i, ranked by dot product.

    Args:
        queries: `(N, d)` (e.g. projected texts), unit rows for cosine ranking.
        keys: `(N, d)` (e.g. projected images).
        ks: cut-offs.
        batch_size: queries scored at a time (memory: batch_size x N floats).

    Returns:
        `{k: share of queries whose match ranks in the top k}` (ties count against the match).
    """
    queries, keys = np.asarray(queries, np.float32), np.asarray(keys, np.float32)
    ranks = np.empty(len(queries), np.int64)
    for start in range(0, len(queries), batch_size):
        sims = queries[start : start + batch_size] @ keys.T
        rows = np.arange(len(sims))
        true = sims[rows, start + rows]
        ranks[start : start + len(sims)] = (sims >= true[:, None]).sum(1) - 1
    return {int(k): float(np.mean(ranks < k)) for k in ks}
