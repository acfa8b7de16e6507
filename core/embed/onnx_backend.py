"""ONNX Runtime inference for the encoders on the CPU; torch stays the path on CUDA.

`CURATOR_INFERENCE` picks the backend: `auto` (default: ONNX Runtime on the CPU when `onnxruntime` is installed,
torch otherwise and on CUDA), `torch`, `onnx` (fp32: the same embeddings as torch to float rounding, so the same
encoder id and embedding cache) or `onnx-int8` (dynamic int8 quantisation of the weights: faster, but the vectors
move, so the encoder id gains ":onnx-int8" and nothing is mixed with fp32 vectors; BENCHMARKS.md "ONNX Runtime"
says what it does to accuracy). A graph is exported once per encoder id, torch version and opset, into
`CURATOR_ONNX_DIR` (default `~/.cache/taxonomy-curator/onnx`: it depends on the model, not on the catalogue, so every
data folder on the machine shares it), and reused by every later process; the export is written to a temporary file
and renamed, so two processes exporting at once cannot leave a half-written graph.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BACKEND_ENV = "CURATOR_INFERENCE"
THREADS_ENV = "CURATOR_ORT_THREADS"
FOLDER_ENV = "CURATOR_ONNX_DIR"
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
OPSET = 17


def requested() -> str:
    """The backend `CURATOR_INFERENCE` asks for (refused with the choices when it is not one of them)."""
    choice = os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
    if choice not in BACKENDS:
        raise ValueError(f"{BACKEND_ENV}={choice!r} is not a backend; use one of {', '.join(BACKENDS)}")
    return choice


def id_suffix() -> str:
    """What the backend adds to an encoder's id: only int8 changes the vectors."""
    return ":onnx-int8" if requested() == "onnx-int8" else ""


def backend(device: str) -> str:
    """ "torch", "onnx" or "onnx-int8" for embedding on `device`."""
    choice = requested()
    if choice == "onnx-int8":
        return choice  # its vectors differ from the others': the same on every device
    if choice == "torch" or not str(device).startswith("cpu"):
        return "torch"
    if choice == "auto" and importlib.util.find_spec("onnxruntime") is None:
        return "torch"
    return "onnx"


def graph_path(encoder_id: str, *, int8: bool) -> Path:
    """Where the exported graph of `encoder_id` lives (keyed by the id, the torch version and the opset)."""
    import torch

    key = hashlib.sha1(f"{encoder_id}|torch={torch.__version__}|opset={OPSET}".encode()).hexdigest()[:16]
    folder = graph_folder()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key}{'.int8' if int8 else ''}.onnx"


def graph_folder() -> Path:
    """The folder of the exported graphs (`FOLDER_ENV`, else the user's cache home)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "taxonomy-curator" / "onnx"
    return Path(os.environ.get(FOLDER_ENV) or cache)


def remove_partial_graphs(pid: int | None) -> list[Path]:
    """Remove the temporary files an export in process `pid` left when it was stopped midway; returns them."""
    if pid is None:
        return []
    removed = sorted(graph_folder().glob(f"*.{pid}.tmp*"))
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def export(
    encoder_id: str,
    build: Callable[[], Any],
    example: tuple,
    *,
    inputs: Sequence[str],
    outputs: Sequence[str],
    dynamic: dict[str, dict[int, str]],
    int8: bool,
) -> Path:
    """The graph of `encoder_id`, exported from the torch module `build()` returns when not there yet (and quantised
    to int8 when asked). `example` is one input tuple for the trace; `dynamic` names the axes that vary."""
    fp32 = graph_path(encoder_id, int8=False)
    if not fp32.exists():
        import torch

        tmp = fp32.with_name(f"{fp32.stem}.{os.getpid()}.tmp")
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(
                build().eval(),
                example,
                str(tmp),
                input_names=list(inputs),
                output_names=list(outputs),
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
        os.replace(tmp, fp32)
    if not int8:
        return fp32
    quantised = graph_path(encoder_id, int8=True)
    if not quantised.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = quantised.with_name(f"{quantised.stem}.{os.getpid()}.tmp.onnx")
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8)
        os.replace(tmp, quantised)
    return quantised


class OrtModel:
    """An ONNX Runtime session standing where the torch module was (`to` and `eval` do nothing: it runs on the CPU)."""

    def __init__(self, path: Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get(THREADS_ENV, "0"))  # 0: one per core
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def to(self, device: str) -> OrtModel:
        return self

    def eval(self) -> OrtModel:
        return self

    def run(self, **feeds: np.ndarray) -> np.ndarray:
        return self.session.run(None, {name: feeds[name] for name in self.inputs})[0]


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors where `mask` is 1 (numpy twin of the torch pooling)."""
    weights = mask[..., None].astype(np.float32)
    return (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
