"""Where fmask runs: the repository folder and the machine.

Float results depend on the CPU's kernels (AVX-512, bf16 and AMX units pick different oneDNN and MKL code
paths), on the torch build and on the thread count. :func:`machine` names all of these, so that a result
file or a build record says what computed it, and :func:`cpu_kind` gives the short key under which two
machines are expected to give bitwise equal numbers.
"""
from __future__ import annotations

import functools
import platform
import re
from pathlib import Path
from typing import Any

__all__ = ["REPO_ROOT", "KERNEL_FLAGS", "cpu_info", "machine", "cpu_kind", "bf16_is_fast"]

#: the folder above the ``fmask`` package: the repository in a source checkout
REPO_ROOT = Path(__file__).resolve().parents[2]

#: CPU flags that change which kernels torch runs (and so the low bits of float results)
KERNEL_FLAGS: tuple[str, ...] = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


@functools.lru_cache(maxsize=1)
def cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """``{"model": str, "vendor": str, "flags": [the KERNEL_FLAGS present]}`` read from ``/proc/cpuinfo``
    (``cpuinfo``: its text, for tests); on other systems the model is :func:`platform.processor`."""
    text = cpuinfo
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""

    def field(name: str) -> str | None:
        m = re.search(rf"(?m)^{name}\s*:\s*(.*)$", text)
        return m.group(1).strip() if m else None

    flags = set((field("flags") or "").split())
    return {"model": field("model name") or platform.processor() or "unknown",
            "vendor": field("vendor_id") or "unknown",
            "flags": [f for f in KERNEL_FLAGS if f in flags]}


@functools.lru_cache(maxsize=1)
def _torch_build() -> tuple[tuple[str, Any], ...]:
    """The torch build's fixed facts as ``(key, value)`` pairs, read once per process (every saved result
    file records them)."""
    import torch

    cfg = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([^\s]+)", cfg)
    dnn = re.search(r"MKL-DNN v([^\s]+)", cfg)
    blas = re.search(r"BLAS_INFO=([^\s,]+)", cfg)
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # pragma: no cover - very old torch
        capability = None
    return (("torch", torch.__version__), ("blas", blas.group(1) if blas else None),
            ("mkl", mkl.group(1) if mkl else None), ("onednn", dnn.group(1) if dnn else None),
            ("cpu_capability", capability))


def machine(threads: int | None = None) -> dict[str, Any]:
    """What computed a result: the CPU (model, vendor, kernel flags), the torch build (version, BLAS,
    MKL, oneDNN, the CPU capability torch dispatches to), the torch thread count and the
    :func:`cpu_kind` key.

    ``threads``: the thread count to record instead of this process's own (the book runner's kernels run
    with a pinned count that the runner process itself need not use)."""
    import torch

    out = {"cpu": cpu_info(), **dict(_torch_build()),
           "threads": int(threads) if threads is not None else torch.get_num_threads()}
    out["kind"] = cpu_kind(out)
    return out


def cpu_kind(info: dict[str, Any] | None = None) -> str:
    """A short key for "these two machines should give bitwise equal results": CPU model, kernel flags,
    torch version and thread count, e.g. ``"AMD EPYC|avx2,avx512f,avx512_bf16|torch 2.14.1|2 threads"``."""
    info = machine() if info is None else info
    cpu = info["cpu"]
    return f"{cpu['model']}|{','.join(cpu['flags'])}|torch {info['torch']}|{info['threads']} threads"


def bf16_is_fast(info: dict[str, Any] | None = None) -> bool:
    """True where bf16 autocast is expected to beat float32 on the CPU: native bf16 dot products
    (``avx512_bf16``) or AMX tiles. Measured: ~1.5× faster on an AMD EPYC with avx512_bf16, ~0.7× on an
    Intel Xeon without AMX (``benchmarks/bench_learn.py --quick``)."""
    flags = set((info or {"cpu": cpu_info()})["cpu"]["flags"])
    return bool(flags & {"avx512_bf16", "amx_bf16"})
