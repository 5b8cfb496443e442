"""Correctness of the fast (GPU / bf16) mask-learning path against float32 CPU results.

Reference: :class:`fmask.learners.PerImageMasks` on the CPU with ``precision="exact"`` (float32, deterministic).
Candidates (all the learner's own paths; it runs a private channels_last copy of the network):

* ``cpu-fast``   – always: ``precision="fast"`` on the CPU (bf16 autocast for the network only; masks, FFTs,
  the loss, Adam and the stopping statistics stay float32) – also the proxy of the GPU path.
* ``cuda-exact`` – when CUDA is available: float32 network (cuDNN may use TF32 for convolutions, torch's
  default), ``cudnn.benchmark`` on.
* ``cuda-fast``  – when CUDA is available: ``precision="fast"`` on CUDA.
* ``cuda-fast-compile`` – with ``--compile``: the same with ``compile=True`` (``torch.compile``).

Errors (all relative, Frobenius norms over every image):

* ``rel dM``      = ‖M − M_ref‖ / ‖1 − M_ref‖: error of the *learned change* of the masks (masks start at
  ones, so dividing by ‖M_ref‖ would hide errors);
* ``rel logits``  = ‖Φ_fast(x) − Φ_ref(x)‖ / ‖Φ_ref(x)‖ on the clean images (forward only);
* ``pred agree``  = fraction of images whose masked prediction (with its own masks) equals the reference's.

Bounds (exit status 1 if exceeded): rel dM ≤ 1e-3 for cuda-fp32 with TF32 off, ≤ 5e-2 with TF32 (default),
and ≤ ``--bf16-bound`` (default 0.1) for the bf16 paths; rel logits ≤ 2e-2 for bf16. Bounds are stated for
the default problem (vgg_small, 16 images of 64×64, 30 steps, lr 0.01); they are not a theorem – bf16 noise
flips the sign of near-zero gradients, which Adam turns into full-size steps, so ``rel dM`` grows with the
number of steps.

Usage::

    python benchmarks/gpu_check.py                      # CPU: fp32 vs the bf16 proxy
    python benchmarks/gpu_check.py --arch vgg11_bn --size 128 --n 64 --steps 50 --compile   # on a GPU
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_learn import build_model, load_images, machine_line  # noqa: E402


def rel(a: torch.Tensor, b: torch.Tensor, denom: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / denom.double().norm().clamp_min(1e-30))


def main(argv: list[str] | None = None) -> int:
    from fmask.core.objective import PER_IMAGE_DEFAULTS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="vgg_small")
    p.add_argument("--n", type=int, default=16, help="images (default 16)")
    p.add_argument("--size", type=int, default=64, help="image side (default 64)")
    p.add_argument("--steps", type=int, default=30, help="mask steps (default 30)")
    p.add_argument("--lr", type=float, default=PER_IMAGE_DEFAULTS["lr"])
    p.add_argument("--lam", type=float, default=PER_IMAGE_DEFAULTS["lam"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=31)
    p.add_argument("--compile", action="store_true", help="also check compile=True on CUDA")
    p.add_argument("--no-tf32", action="store_true", help="disable TF32 for the cuda-exact check (tighter bound)")
    p.add_argument("--bf16-bound", type=float, default=0.1, help="bound on rel dM for the bf16 paths")
    p.add_argument("--data", default=os.environ.get("FMASK_DATA"), help="Imagenette root (default $FMASK_DATA)")
    args = p.parse_args(argv)
    if args.n < 1 or args.steps < 1 or args.size < 32:
        raise ValueError("--n and --steps must be >= 1 and --size >= 32")

    from fmask.learners import PerImageMasks

    print("# fmask GPU-path correctness check")
    print(f"# machine: {machine_line()} cuda={torch.cuda.is_available()}"
          + (f" gpu={torch.cuda.get_device_name(0)!r}" if torch.cuda.is_available() else ""))
    images, source = load_images(args.n, args.size, args.data, args.seed)
    model = build_model(args.arch, args.seed)
    with torch.no_grad():
        targets = model(images).argmax(1)
    print(f"# {args.arch}, {source}; {args.n} images {args.size}x{args.size}; steps {args.steps}; "
          f"lr {args.lr}; lam {args.lam}; seed {args.seed}")
    kw: dict[str, Any] = dict(lam=args.lam, lr=args.lr, steps=args.steps, batch_size=args.batch_size,
                              seed=args.seed, patience=args.steps + 10, progress=False)

    t0 = time.perf_counter()
    ref = PerImageMasks(model, device="cpu", precision="exact", **kw)(images, targets)
    t_ref = time.perf_counter() - t0
    with torch.no_grad():
        logits_ref = model(images)
    pred_ref = ref.history["prediction"]
    change = 1 - ref.masks
    print(f"# reference cpu-exact: {args.n * args.steps / t_ref:.2f} images*steps/s; "
          f"mean |1 - M_ref| = {change.abs().mean():.4f}")

    # (name, device, precision, compile, bound on rel dM, bound on rel logits)
    variants: list[tuple[str, str, str, bool, float, float]] = [
        ("cpu-fast", "cpu", "fast", False, args.bf16_bound, 2e-2),
    ]
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        if args.no_tf32:
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        fp32_bound = 1e-3 if args.no_tf32 else 5e-2
        variants.append(("cuda-exact", "cuda", "exact", False, fp32_bound, fp32_bound))
        variants.append(("cuda-fast", "cuda", "fast", False, args.bf16_bound, 2e-2))
        if args.compile:
            variants.append(("cuda-fast-compile", "cuda", "fast", True, args.bf16_bound, 2e-2))
    else:
        print("# CUDA not available: only the CPU bf16 path is checked. On a GPU machine run:")
        print("#   python benchmarks/gpu_check.py --arch vgg11_bn --size 128 --n 64 --steps 50 --compile")

    print("| variant           | images*steps/s | rel dM   | bound    | rel logits | bound    | pred agree | ok  |")
    print("|-------------------|----------------|----------|----------|------------|----------|------------|-----|")
    all_ok = True
    for name, dev, precision, comp, bound_m, bound_l in variants:
        learner = PerImageMasks(model, device=dev, precision=precision, compile=comp, **kw)
        if dev == "cuda":  # warm-up: cudnn autotuning / compilation outside the timing
            m = min(args.n, args.batch_size)
            PerImageMasks(model, device=dev, precision=precision, compile=comp, **{**kw, "steps": 2})(
                images[:m], targets[:m])
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        res = learner(images, targets)
        if dev == "cuda":
            torch.cuda.synchronize()
        rate = args.n * args.steps / (time.perf_counter() - t0)
        net = copy.deepcopy(model).to(dev).to(memory_format=torch.channels_last)
        with torch.no_grad():
            x = images.to(dev).contiguous(memory_format=torch.channels_last)
            if precision == "fast":
                with torch.autocast(dev, dtype=torch.bfloat16):
                    logits = net(x).float().cpu()
            else:
                logits = net(x).float().cpu()
        e_m = rel(res.masks, ref.masks, change)
        e_l = rel(logits, logits_ref, logits_ref)
        agree = float((res.history["prediction"] == pred_ref).float().mean())
        ok = e_m <= bound_m and e_l <= bound_l
        all_ok &= ok
        print(f"| {name:<17} | {rate:>14.2f} | {e_m:>8.2e} | {bound_m:>8.1e} | {e_l:>10.2e} | {bound_l:>8.1e} | "
              f"{agree:>10.3f} | {'yes' if ok else 'NO':<3} |", flush=True)
    print("# all within bounds" if all_ok else "# BOUND EXCEEDED")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
