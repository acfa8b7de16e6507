"""Shared utilities for the ML-core tests: synthetic labelled data, tiny checkpoints, fake encoders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from core.embed.encoders import save_open_clip_folder

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
