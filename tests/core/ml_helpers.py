"""Shared utilities for the ML-core tests: synthetic labelled data, tiny checkpoints, fake encoders."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.embed.encoders import Encoder, load_image, save_open_clip_folder

PATHS = [
    ("Apparel", "Topwear", "Shirts"),
    ("Apparel", "Topwear", "Tshirts"),
    ("Apparel", "Bottomwear", "Jeans"),
    ("Footwear", "Shoes", "Heels"),
    ("Footwear", "Shoes", "Casual Shoes", "Sneakers"),  # a curated 4th level
    ("Footwear", "Shoes", "Casual Shoes", "Loafers"),
    ("Footwear", "Flip Flops", "Flip Flops"),  # same name at two levels
    ("Accessories", "Bags"),  # a 2-level path: the node has no children
]


def labelled_data(
    n: int = 600,
    *,
    seed: int = 0,
    noise: float = 0.6,
    image_share: float = 0.7,
    text_dim: int = 24,
    image_dim: int = 40,
    text_informative: bool = True,
):
    """Synthetic products: a text and an image vector per product, labels from `PATHS`.

    With `text_informative=False` the text only tells the top level; the image tells the full path.

    Returns:
        X (dict of `(n, D)` float32), y (list of paths), masks ({"image": (n,) bool}).
    """
    rng = np.random.default_rng(seed)
    label = rng.integers(0, len(PATHS), n)
    centers = rng.normal(size=(len(PATHS), 8))
    if not text_informative:
        top = np.array([sorted({p[0] for p in PATHS}).index(p[0]) for p in PATHS])
        centers_text = rng.normal(size=(3, 8))[top]
    else:
        centers_text = centers
    text = centers_text[label] @ rng.normal(size=(8, text_dim)) + noise * rng.normal(size=(n, text_dim))
    image = centers[label] @ rng.normal(size=(8, image_dim)) + noise * rng.normal(size=(n, image_dim))
    mask = rng.random(n) < image_share
    image[~mask] = 0.0
    X = {"text": text.astype(np.float32), "image": image.astype(np.float32)}
    return X, [PATHS[i] for i in label], {"image": mask}


def write_images(folder: Path, n: int, *, size=(40, 30), seed: int = 0) -> list[Path]:
    """Writes `n` small random RGB JPEGs and returns their paths."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        path = folder / f"img{i}.jpg"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


CORPUS = [
    "Turtle Check Men Navy Blue Shirt",
    "Nike Women Running Shoes",
    "Puma red cap for men",
    "Fabindia Women Kurta",
    "Titan watch with leather strap",
] * 4
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def tiny_roberta(folder: Path, *, seed: int = 0) -> Path:
    """Saves a random-initialised 1-layer RoBERTa (hidden 32) with a trained byte-level BPE tokenizer."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=300, min_frequency=1, special_tokens=SPECIALS)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in json.loads(bpe.to_str())["model"]["merges"]]
    tokenizer = RobertaTokenizer(vocab=bpe.get_vocab(), merges=merges)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=72,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    RobertaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_xlm_roberta(folder: Path, *, seed: int = 0) -> Path:
    """Saves a random-initialised 1-layer XLM-RoBERTa (hidden 32) with a small unigram tokenizer."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizer

    pieces = sorted({w for text in CORPUS for w in text.split()})
    vocab = [(s, 0.0) for s in SPECIALS[:4]] + [(f"\u2581{w}", -1.0) for w in pieces]
    vocab += [(c, -5.0) for c in sorted(set("".join(CORPUS)) - {" "})] + [("<mask>", 0.0)]
    tokenizer = XLMRobertaTokenizer(vocab=vocab)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=72,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    XLMRobertaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_vit(folder: Path, *, seed: int = 0) -> Path:
    """Saves a random-initialised 1-layer ViT (32x32 input, hidden 32) and its image processor."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    torch.manual_seed(seed)
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


TINY_CLIP_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def tiny_clip(folder: Path, *, seed: int = 0):
    """Saves a random-initialised tiny open_clip CLIP as a "local-dir" folder; returns (folder, model)."""
    import open_clip
    import torch

    torch.manual_seed(seed)
    model = open_clip.model.CLIP(**TINY_CLIP_CFG).eval()
    save_open_clip_folder(model, folder, model_cfg=TINY_CLIP_CFG, preprocess_cfg={"size": 32})
    return folder, model


class FakeEncoder:
    """Deterministic stand-in encoder that records what it embedded (for cache tests)."""

    def __init__(self, *, id: str = "text:fake:v1", dim: int = 8, modality: str = "text"):
        self.id, self.dim, self.modality = id, dim, modality
        self.calls: list[list] = []

    def embed_masked(self, items, *, batch_size=32, device=None, progress=None):
        items = list(items)
        self.calls.append(items)
        out = np.zeros((len(items), self.dim), np.float32)
        ok = np.ones(len(items), bool)
        for i, item in enumerate(items):
            if self.modality == "image":
                try:
                    data = Path(item).read_bytes()
                except OSError:
                    ok[i] = False
                    continue
            else:
                data = str(item).encode()
            seed = int.from_bytes(hashlib.sha1(data).digest()[:4], "little")
            out[i] = np.random.default_rng(seed).normal(size=self.dim)
        if progress:
            progress(len(items), len(items))
        return out, ok

    def embed(self, items, *, batch_size=32, device=None, progress=None) -> np.ndarray:
        """The vectors of `embed_masked` (zeros where an item failed)."""
        return self.embed_masked(items, batch_size=batch_size, device=device, progress=progress)[0]

    @property
    def n_embedded(self) -> int:
        return sum(len(c) for c in self.calls)


# ----------------------------------------------------------------------------------------------
# a small leak-free catalogue and stand-in encoders that look its products up (for the database-step tests)

LEAVES = ["Apparel > Topwear > Shirts", "Apparel > Topwear > Tshirts", "Footwear > Shoes > Heels", "Footwear > Shoes > Flats"]
LABEL_WORDS = {w.lower() for leaf in LEAVES for w in leaf.replace(">", " ").split()}
POOL_WORDS = "alto brisk cove dune ember fable glint harbor isle jovial kestrel lumen mosaic nimbus opal prism quill".split()
POOL_WORDS += "ripple sable tundra umber vesper willow yonder zephyr amble bramble cinder drift elm fern grove".split()
CLASS_WORDS = [  # made-up words, four per hidden class; class k also uses class k+1's (overlapping vocabularies)
    ["vamo", "tesk", "rilp", "quon"],
    ["bazu", "fent", "gorv", "hult"],
    ["jipa", "kreb", "lumo", "nask"],
    ["pavo", "sorn", "tivu", "wexl"],
]
STAND_INS = {"text": "test-text", "image": "test-image"}  # registry names of the stand-in encoders


@dataclass
class SmallCatalogue:
    """Products with a hidden class (an index into `LEAVES`) that only the test knows.

    Titles are words drawn from overlapping class vocabularies and a shared pool (no label word); title and photo
    vectors are drawn from the hidden class with overlap (class centre + noise), so a model can be wrong. The
    stand-in encoders (`stand_in_factories`) look each title / photo file up in `title_vectors` / `image_vectors`.
    """

    skus: list[str]
    titles: list[str]
    hidden: np.ndarray  # (n,) int
    photos: list[str | None]  # resolved file paths, None without a photo
    title_vectors: np.ndarray  # (n, title_dim)
    image_vectors: np.ndarray  # (n, image_dim)
    embedded: dict[str, list] = field(default_factory=lambda: {"text": [], "image": []})  # what the stand-ins embedded

    def __len__(self) -> int:
        return len(self.skus)

    def leaf(self, i: int) -> str:
        return LEAVES[int(self.hidden[i])]

    def labels(self, *, shuffle_seed: int | None = None) -> list[str]:
        """Each product's hidden leaf (in sku order), or with `shuffle_seed` the same leaves permuted over the products."""
        order = np.arange(len(self)) if shuffle_seed is None else np.random.default_rng(shuffle_seed).permutation(len(self))
        return [self.leaf(int(j)) for j in order]

    def skus_of(self, leaf: str) -> list[str]:
        return [sku for sku, k in zip(self.skus, self.hidden) if LEAVES[k] == leaf]

    def encoder_id(self, modality: str) -> str:
        """The stand-in's id: names the table it reads, so another table is another cache entry."""
        vectors = self.title_vectors if modality == "text" else self.image_vectors
        return f"{modality}:stand-in:{hashlib.sha1(vectors.tobytes()).hexdigest()[:12]}"


def make_small_catalogue(
    folder: Path,
    n: int = 240,
    *,
    seed: int = 0,
    photo_share: float = 0.6,
    title_dim: int = 24,
    image_dim: int = 16,
    signal: tuple[float, float] = (0.4, 0.6),
) -> SmallCatalogue:
    """A balanced catalogue over `LEAVES` with real small PNG photos written under `folder` (see `SmallCatalogue`)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    k = len(LEAVES)
    hidden = rng.permutation(np.arange(n) % k)
    titles: list[str] = []
    for c in hidden:
        vocabulary = CLASS_WORDS[c] + CLASS_WORDS[(c + 1) % k]
        title = ""
        while not title or title in titles:  # unique titles: the text stand-in looks products up by title
            words = [rng.choice(vocabulary) if rng.random() < 0.4 else rng.choice(POOL_WORDS) for _ in range(5)]
            title = " ".join(words).capitalize()
        titles.append(title)
    assert not LABEL_WORDS & {w.lower() for t in titles for w in t.split()}, "a title holds a label word"
    title_vectors = signal[0] * rng.normal(size=(k, title_dim))[hidden] + rng.normal(size=(n, title_dim))
    image_vectors = signal[1] * rng.normal(size=(k, image_dim))[hidden] + rng.normal(size=(n, image_dim))
    folder.mkdir(parents=True, exist_ok=True)
    photos: list[str | None] = []
    for i, has in enumerate(rng.random(n) < photo_share):
        path = folder / f"p{i:04d}.png"
        if has:  # random pixels: every file has its own content (the image cache keys on the bytes)
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)
        photos.append(str(path.resolve()) if has else None)
    return SmallCatalogue(
        skus=[f"sku{i:04d}" for i in range(n)],
        titles=titles,
        hidden=hidden,
        photos=photos,
        title_vectors=title_vectors.astype(np.float32),
        image_vectors=image_vectors.astype(np.float32),
    )


class _NoModel:
    """What `Encoder._ensure_loaded` moves and puts in eval mode: nothing to do for a table."""

    def to(self, device):
        return self

    def eval(self):
        return self


class TableEncoder(Encoder):
    """A stand-in encoder through the real `Encoder` base (batching, ok masks, L2 normalisation): each item's vector
    is looked up in a table the test built (title -> vector, or photo file -> vector); the photo is opened first,
    so an unreadable file fails like a real one. Every item embedded is appended to `log`."""

    def __init__(self, modality: str, encoder_id: str, table: dict[str, np.ndarray], log: list):
        super().__init__()
        self.modality, self.id, self.table, self.log = modality, encoder_id, table, log

    def _config_dim(self) -> int:
        return len(next(iter(self.table.values())))

    def _load(self, device: str) -> None:
        self._model = _NoModel()

    def _embed_batch(self, items: list, device: str) -> tuple[np.ndarray, np.ndarray]:
        self.log.extend(items)
        out, ok = np.zeros((len(items), self.dim), np.float32), np.ones(len(items), bool)
        for i, item in enumerate(items):
            if self.modality == "image":
                key = str(Path(item).resolve())
                ok[i] = load_image(item) is not None and key in self.table
            else:
                key = item
                if key not in self.table:
                    raise KeyError(f"the stand-in text encoder has no vector for {item!r}")
            if ok[i]:
                out[i] = self.table[key]
        return out, ok


def stand_in_factories(cat: SmallCatalogue, *, variant: str = "") -> dict[str, Any]:
    """{registry name: factory} of the two stand-in encoders over `cat`'s tables (`STAND_INS`); a `variant` gives
    another pair ("test-text-b", ...) with other ids over the same tables, as a second encoder choice."""
    titles = dict(zip(cat.titles, cat.title_vectors))
    photos = {p: v for p, v in zip(cat.photos, cat.image_vectors) if p is not None}
    suffix = f"-{variant}" if variant else ""
    return {
        STAND_INS["text"] + suffix: lambda **_: TableEncoder(
            "text", cat.encoder_id("text") + suffix, titles, cat.embedded["text"]
        ),
        STAND_INS["image"] + suffix: lambda **_: TableEncoder(
            "image", cat.encoder_id("image") + suffix, photos, cat.embedded["image"]
        ),
    }


def hf1(truth: list, pred: list) -> float:
    """Micro hierarchical F1 of path tuples (ancestor-augmented), computed here by hand."""
    prefixes = lambda path: {tuple(path[: i + 1]) for i in range(len(path))}  # noqa: E731
    inter = sum(len(prefixes(t) & prefixes(p)) for t, p in zip(truth, pred))
    hp, hr = inter / sum(len(p) for p in pred), inter / sum(len(t) for t in truth)
    return 2 * hp * hr / (hp + hr) if hp + hr else 0.0


def chance_hf1(truth: list) -> float:
    """hF1 of the best constant path (the majority class's at best): what a model that learnt nothing reaches."""
    return max(hf1(truth, [p] * len(truth)) for p in set(truth))
