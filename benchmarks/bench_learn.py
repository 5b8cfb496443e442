"""Benchmark: batched per-image mask learning vs the original's serial loop vs the bare network.

For each architecture and each N, on the same frozen model, images, steps and seed, in one process:

* ``serial``  – :func:`serial_reference.learn_masks_serial` (the original procedure: one image at a time,
  fresh model loaded from a checkpoint per image, ``.item()`` logging and a prediction check every step);
  timed on the first ``--serial-images`` images (it is a rate, images·steps/s, so a subset measures it);
* ``batched`` – :func:`fmask.learn.learn_masks` with ``per_image=True`` on all N images;
* ``bare``    – forward + input-backward of the frozen network alone on the same batches: the limit.

Throughputs are images·steps per second. ``ratio`` = batched / serial (target ≥ 5), ``overhead`` =
1 − batched / bare (target ≤ 15 %). ``max dM`` (max |ΔM|) compares batched and serial masks of the images both
learned (they must agree: it is the same optimisation problem).

Early stopping is disabled in both learners (patience larger than steps) so that both do exactly
``steps`` steps per image. Images: the first N validation images of the paper's five Imagenette classes when
``--data``/``FMASK_DATA`` is given (grayscale, resized to ``--size``), else seeded synthetic images.
Models have random (seeded) weights: the speed does not depend on training.

Usage::

    python benchmarks/bench_learn.py                       # defaults: a few minutes on 2 CPU cores
    python benchmarks/bench_learn.py --n 64 256 --steps 5 --archs vgg11_bn vgg_small --size 128
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serial_reference import checkpoint_factory, learn_masks_serial  # noqa: E402

PAPER_CLASSES = ["n02102040", "n03000684", "n03028079", "n03394916", "n03417042"]


# ------------------------------------------------------------------------------------------ setup


def build_model(arch: str, seed: int) -> nn.Module:
    """Frozen classifier for 1-channel images, 5 classes, in eval mode (fmask.models if present)."""
    torch.manual_seed(seed)
    try:
        from fmask.models import build_model as fm_build
    except ImportError:
        fm_build = None
    if fm_build is not None:
        model = fm_build(arch, in_channels=1, num_classes=5)
    else:  # fallback while fmask.models is not there: same networks as the original
        import torchvision

        if arch == "vgg11_bn":
            model = torchvision.models.vgg11_bn(num_classes=5)
            model.features[0] = nn.Conv2d(1, 64, 3, padding=1)
        elif arch == "resnet18":
            model = torchvision.models.resnet18(num_classes=5)
            model.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
        else:
            raise ValueError(f"unknown arch {arch!r} (fmask.models not available)")
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def load_images(n: int, size: int, data_root: str | None, seed: int) -> tuple[torch.Tensor, str]:
    """(n, 1, size, size) float32 in [0, 1] and a description of where they came from."""
    if data_root:
        from PIL import Image

        val = Path(data_root) / "val"
        files: list[Path] = []
        for wnid in PAPER_CLASSES:
            d = val / wnid
            if not d.is_dir():
                raise ValueError(f"data root {data_root}: missing class folder {d}")
            files += sorted(d.glob("*.JPEG"))
        if len(files) < n:
            raise ValueError(f"data root {data_root}: only {len(files)} val images, need {n}")
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(files), generator=g)[:n].tolist()
        out = torch.empty(n, 1, size, size)
        for k, i in enumerate(pick):
            img = Image.open(files[i]).convert("L").resize((size, size), Image.BILINEAR)
            out[k, 0] = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(size, size).float() / 255
        return out, f"Imagenette val ({data_root}), {n} seeded random picks of the 5 paper classes"
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size // 8, size // 8, generator=g)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x + 0.1 * torch.rand(n, 1, size, size, generator=g)).clamp(0, 1)
    return x, "synthetic (seeded smooth noise; set FMASK_DATA for real images)"


# ------------------------------------------------------------------------------------------ timing


def time_bare(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, steps: int, batch: int) -> float:
    """images·steps/s of forward + input-backward of the frozen network (no mask, no optimiser)."""
    def one_pass() -> None:
        for s in range(0, images.shape[0], batch):
            x = images[s : s + batch].clone().requires_grad_(True)
            loss = F.cross_entropy(model(x), targets[s : s + batch], reduction="sum")
            (g,) = torch.autograd.grad(loss, x)
    one_pass_warm = images[:batch], targets[:batch]
    x = one_pass_warm[0].clone().requires_grad_(True)
    torch.autograd.grad(F.cross_entropy(model(x), one_pass_warm[1], reduction="sum"), x)  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        one_pass()
    return images.shape[0] * steps / (time.perf_counter() - t0)


def run_batched(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, steps: int, batch: int,
                seed: int, lam: float, lr: float) -> tuple[float, Any]:
    """images·steps/s of fmask.learn.learn_masks (per-image, early stopping off) and its result."""
    from fmask.learn import learn_masks

    kw = dict(per_image=True, lam=lam, lr=lr, batch_size=batch, seed=seed, patience=steps + 10, device="cpu")
    learn_masks(model, images[:batch], targets[:batch], steps=1, **kw)  # warm-up (allocator, kernels)
    t0 = time.perf_counter()
    res = learn_masks(model, images, targets, steps=steps, **kw)
    return images.shape[0] * steps / (time.perf_counter() - t0), res


def run_serial(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, steps: int, seed: int,
               lam: float, lr: float) -> tuple[float, Any]:
    factory, path = checkpoint_factory(model)
    try:
        learn_masks_serial(factory, images[:1], targets[:1], steps=1, lam=lam, lr=lr, seed=seed, patience=None)
        t0 = time.perf_counter()
        res = learn_masks_serial(factory, images, targets, steps=steps, lam=lam, lr=lr, seed=seed, patience=None)
        return images.shape[0] * steps / (time.perf_counter() - t0), res
    finally:
        os.remove(path)


def machine_line() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"nproc={os.cpu_count()} torch_threads={torch.get_num_threads()} cpu={cpu!r} "
            f"torch={torch.__version__} python={platform.python_version()} "
            f"date={_dt.datetime.now().isoformat(timespec='seconds')}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[64, 256], help="numbers of images (default 64 256)")
    p.add_argument("--size", type=int, default=128, help="image side (default 128)")
    p.add_argument("--steps", type=int, default=5, help="mask steps per image (default 5)")
    p.add_argument("--archs", nargs="+", default=["vgg_small", "vgg11_bn"],
                   help="architectures (fmask.models names; default vgg_small vgg11_bn)")
    p.add_argument("--batch-size", type=int, default=64, help="batch of the batched learner and the bare pass")
    p.add_argument("--serial-images", type=int, default=4,
                   help="images the serial reference learns (its rate is measured on these; default 4)")
    p.add_argument("--lam", type=float, default=0.07)
    p.add_argument("--lr", type=float, default=0.01, help="Adam lr (learn_masks per-image default)")
    p.add_argument("--seed", type=int, default=31)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--data", default=os.environ.get("FMASK_DATA"), help="Imagenette root (default $FMASK_DATA)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if min(args.n) < 1 or args.steps < 1 or args.serial_images < 1:
        raise ValueError("--n, --steps and --serial-images must be >= 1")

    print("# fmask mask-learning benchmark")
    print(f"# machine: {machine_line()}")
    images_all, source = load_images(max(args.n), args.size, args.data, args.seed)
    print(f"# images: {source}; size {args.size}x{args.size}; steps {args.steps}; batch {args.batch_size}; "
          f"serial reference on the first {args.serial_images} image(s); lam {args.lam}; lr {args.lr}; "
          f"seed {args.seed}")
    header = (f"| {'arch':<9} | {'N':>4} | {'serial':>8} | {'batched':>8} | {'bare net':>8} | "
              f"{'ratio':>6} | {'overhead':>8} | {'max dM':>8} |")
    print("# throughput in images·steps/s (higher is better)")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for arch in args.archs:
        model = build_model(arch, args.seed)
        with torch.no_grad():
            targets_all = model(images_all).argmax(1)  # the paper uses the model's own predictions
        serial_cache: tuple[float, Any] | None = None
        for n in args.n:
            images, targets = images_all[:n], targets_all[:n]
            bare = time_bare(model, images, targets, args.steps, args.batch_size)
            batched, res = run_batched(model, images, targets, args.steps, args.batch_size, args.seed,
                                       args.lam, args.lr)
            k = min(args.serial_images, n)
            if serial_cache is None:  # the serial rate does not depend on N: measure it once per arch
                serial_cache = run_serial(model, images[:k], targets[:k], args.steps, args.seed, args.lam, args.lr)
            serial, sres = serial_cache
            dm = (res.masks[:k].cpu() - sres.masks[:k]).abs().max().item()
            print(f"| {arch:<9} | {n:>4} | {serial:>8.2f} | {batched:>8.2f} | {bare:>8.2f} | "
                  f"{batched / serial:>5.2f}x | {100 * (1 - batched / bare):>7.1f}% | {dm:>8.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
