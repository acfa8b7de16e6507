"""Embedding throughput on a CUDA device, through the project's own encoder classes.

Run on the lent GPU machine with a folder (--assets) holding: minilm/ (MiniLM's config and tokenizer,
no weights: the model is random-initialised with the same architecture, which sets the speed), the
EfficientNet-Lite0 state_dict (*.pth), images/*.jpg from the catalogue and texts.txt / titles.txt.

    python -m benchmarks.gpu_embed_check --assets .gpucheck --out $OUT/gpu_embed.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def throughput(encoder, items, *, batch_size: int, device: str) -> dict:
    import torch

    encoder.embed(items[: batch_size * 2], batch_size=batch_size, device=device)  # warm-up (load, cudnn autotune)
    torch.cuda.synchronize()
    started = time.perf_counter()
    vectors = encoder.embed(items, batch_size=batch_size, device=device)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {
        "items": len(items),
        "batch_size": batch_size,
        "seconds": round(seconds, 3),
        "items_per_s": round(len(items) / seconds, 1),
        "dim": int(vectors.shape[1]),
    }


def main() -> int:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from core.embed.encoders import EfficientNetLite0Encoder, HFTextEncoder

    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    assets = Path(args.assets)
    folder = Path("/tmp/minilm-random")
    BertModel(BertConfig.from_pretrained(assets / "minilm")).save_pretrained(folder)
    AutoTokenizer.from_pretrained(assets / "minilm").save_pretrained(folder)
    texts = (assets / "texts.txt").read_text().splitlines()
    titles = (assets / "titles.txt").read_text().splitlines()
    images = sorted(str(p) for p in (assets / "images").glob("*.jpg"))
    images = (images * (4096 // len(images) + 1))[:4096]
    weights = next(assets.glob("*.pth"))
    result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    text_encoder = HFTextEncoder(folder, name="minilm-random-init", max_length=256)
    result["text: title + description (MiniLM-L6 architecture)"] = throughput(text_encoder, texts, batch_size=256, device="cuda")
    result["text: title only"] = throughput(text_encoder, titles, batch_size=256, device="cuda")
    result["image: EfficientNet-Lite0 (decode + resize included)"] = throughput(
        EfficientNetLite0Encoder(weights=weights), images, batch_size=128, device="cuda"
    )
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
