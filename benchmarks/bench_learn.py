"""Benchmark: batched per-image mask learning vs the original's serial loop vs the bare network.

For each architecture and each N, on the same frozen model, images, steps and seed, in one process:

* ``serial``  – :func:`serial_reference.learn_masks_serial` (the original procedure: one image at a time,
  fresh model loaded from a checkpoint per image, ``.item()`` logging and a prediction check every step);
  timed on the first ``--serial-images`` images (it is a rate, images·steps/s, so a subset measures it);
* ``batched`` – :func:`fmask.learn.learn_masks` with ``per_image=True`` on all N images;
* ``bare``    – forward + input-backward of the frozen network alone on the same batches: the limit.

Throughputs are images·steps per second. ``serial``, ``batched`` and ``bare`` are per-step rates: the
median over single steps (serial: timed inside its loop; batched: between consecutive grad-enabled forward
calls of the network, i.e. one full step of a chunk; bare: one forward+backward of a batch), so a burst of
load from other processes on a shared machine does not decide the result; they leave out the fixed per-image / per-chunk work (model loading, spectra,
reference forward, final checks) that a 20000-step run amortises; the ``e2e`` columns are the end-to-end rates
at the benchmark's S steps. ``ratio`` = batched / serial (target ≥ 5), ``overhead`` = 1 − batched / bare
(target ≤ 15 %). ``max dM`` (max |ΔM|) compares batched and serial masks of the images both
learned (they must agree: it is the same optimisation problem).

Early stopping is disabled in both learners (patience larger than steps) so that both do exactly
``steps`` steps per image. Images: N seeded random validation images of the paper's five Imagenette classes when
``--data``/``FMASK_DATA`` is given (grayscale, resized to ``--size``), else seeded synthetic images.
Models have random (seeded) weights: the speed does not depend on training.

Usage::

    python benchmarks/bench_learn.py                  # vgg_small at N=64,256 and vgg11_bn at N=64, 5 steps
    python benchmarks/bench_learn.py --archs vgg11_bn vgg_small --n 64 256 --steps 5 --size 128
    python benchmarks/bench_learn.py --runs vgg11_bn:256 --steps 3
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
    """Frozen ``fmask.models.build_model(arch)`` for 1-channel images, 5 classes, seeded random weights."""
    from fmask.models import build_model as fm_build

    torch.manual_seed(seed)
    model = fm_build(arch, in_channels=1, num_classes=5)
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


class ForwardClock(nn.Module):
    """Transparent wrapper that records (time, batch size, grad enabled) at every forward call.

    In learn_masks' step loop every step makes exactly one grad-enabled forward, so the time between two
    consecutive grad-enabled forwards (with no no-grad forward in between) is one full step: FFTs,
    forward, backward, Adam, projection. Reference/final forwards run under no_grad and are skipped.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.calls: list[tuple[float, int, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda:  # timestamps of queued kernels mean nothing: wait for the previous step
            torch.cuda.synchronize(x.device)
        self.calls.append((time.perf_counter(), int(x.shape[0]), torch.is_grad_enabled()))
        return self.net(x)

    def step_rates(self) -> list[float]:
        """images/s of every measured step interval."""
        rates = []
        for (t0, b0, g0), (t1, b1, g1) in zip(self.calls, self.calls[1:]):
            if g0 and g1 and b0 == b1:
                rates.append(b0 / (t1 - t0))
        return rates


def median(xs: list[float]) -> float:
    if not xs:
        raise ValueError("no timings recorded")
    ys = sorted(xs)
    m = len(ys) // 2
    return ys[m] if len(ys) % 2 else 0.5 * (ys[m - 1] + ys[m])


def time_bare(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, steps: int, batch: int) -> float:
    """Median images/s of forward + input-backward of the frozen network (no mask, no optimiser), per batch."""
    x = images[:batch].clone().requires_grad_(True)
    torch.autograd.grad(F.cross_entropy(model(x), targets[:batch], reduction="sum"), x)  # warm-up
    rates = []
    for _ in range(steps):
        for s in range(0, images.shape[0], batch):
            t0 = time.perf_counter()
            x = images[s : s + batch].clone().requires_grad_(True)
            loss = F.cross_entropy(model(x), targets[s : s + batch], reduction="sum")
            torch.autograd.grad(loss, x)
            if x.is_cuda:
                torch.cuda.synchronize(x.device)
            rates.append(x.shape[0] / (time.perf_counter() - t0))
    return median(rates)


def run_batched(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, steps: int, batch: int,
                seed: int, lam: float, lr: float) -> tuple[float, float, Any]:
    """fmask.learn.learn_masks (per-image, early stopping off): (per-step rate, end-to-end rate, result).

    per-step rate: median over the step intervals measured by :class:`ForwardClock` (images/s); it leaves
    out the fixed per-chunk work (spectra, reference forward, final checks) that 20000 steps amortise.
    """
    from fmask.learn import learn_masks

    kw = dict(per_image=True, lam=lam, lr=lr, batch_size=batch, seed=seed, patience=steps + 10,
              device=images.device, progress=False)
    learn_masks(model, images[:batch], targets[:batch], steps=1, **kw)  # warm-up (allocator, kernels)
    clock = ForwardClock(model)
    t0 = time.perf_counter()
    res = learn_masks(clock, images, targets, steps=steps, **kw)
    t = time.perf_counter() - t0
    return median(clock.step_rates()), images.shape[0] * steps / t, res


def run_serial(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, steps: int, seed: int,
               lam: float, lr: float) -> tuple[float, float, Any]:
    """The original's serial loop on ``images``: (per-step rate, end-to-end rate, result).

    per-step rate: median over its steps (1 image per step), timed inside the loop (SerialResult).
    """
    factory, path = checkpoint_factory(model)
    kw = dict(lam=lam, lr=lr, seed=seed, patience=None, device=images.device)
    try:
        learn_masks_serial(factory, images[:1], targets[:1], steps=1, **kw)  # warm-up
        res = learn_masks_serial(factory, images, targets, steps=steps, **kw)
    finally:
        os.remove(path)
    return median([1.0 / d for d in res.step_seconds]), images.shape[0] * steps / res.seconds, res


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


def parse_runs(runs: list[str]) -> list[tuple[str, list[int]]]:
    """``["vgg_small:64,256", "vgg11_bn:64"]`` → ``[("vgg_small", [64, 256]), ("vgg11_bn", [64])]``."""
    out = []
    for r in runs:
        arch, _, ns = r.partition(":")
        try:
            sizes = [int(v) for v in ns.split(",") if v]
        except ValueError:
            sizes = []
        if not arch or not sizes or min(sizes) < 1:
            raise ValueError(f"run {r!r}: expected ARCH:N1[,N2...] with N >= 1")
        out.append((arch, sizes))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", default=["vgg_small:64,256", "vgg11_bn:64"],
                   help="ARCH:N1,N2 ... (default vgg_small:64,256 vgg11_bn:64, a few minutes on 2 cores)")
    p.add_argument("--archs", nargs="+", default=None, help="with --n: run every arch at every N (overrides --runs)")
    p.add_argument("--n", type=int, nargs="+", default=None, help="numbers of images for --archs (default 64 256)")
    p.add_argument("--size", type=int, default=128, help="image side (default 128)")
    p.add_argument("--steps", type=int, default=5, help="mask steps per image, >= 2 (default 5)")
    p.add_argument("--batch-size", type=int, default=64, help="batch of the batched learner and the bare pass")
    p.add_argument("--serial-images", type=int, default=4,
                   help="images the serial reference learns (its rate is measured on these; default 4)")
    p.add_argument("--lam", type=float, default=0.07)
    p.add_argument("--lr", type=float, default=0.01, help="Adam lr (learn_masks per-image default)")
    p.add_argument("--seed", type=int, default=31)
    p.add_argument("--device", default="cpu", help="cpu | cuda (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--data", default=os.environ.get("FMASK_DATA"), help="Imagenette root (default $FMASK_DATA)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps < 2 or args.serial_images < 1 or args.batch_size < 1:
        raise ValueError("--steps must be >= 2, --serial-images and --batch-size >= 1")
    if args.archs or args.n:
        runs = [(a, list(args.n or [64, 256])) for a in (args.archs or ["vgg_small", "vgg11_bn"])]
        if min(n for _, ns in runs for n in ns) < 1:
            raise ValueError("--n must be >= 1")
    else:
        runs = parse_runs(args.runs)

    print("# fmask mask-learning benchmark")
    print(f"# command: python benchmarks/bench_learn.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"# machine: {machine_line()}")
    n_max = max(n for _, ns in runs for n in ns)
    images_all, source = load_images(n_max, args.size, args.data, args.seed)
    print(f"# images: {source}; size {args.size}x{args.size}; steps {args.steps}; batch {args.batch_size}; "
          f"serial reference on the first {args.serial_images} image(s); lam {args.lam}; lr {args.lr}; "
          f"seed {args.seed}; device {args.device}")
    print("# rates in images*steps/s (higher is better); 'serial'/'batched'/'bare net' = median per-step rates,")
    print("# '.. e2e' = end-to-end incl. fixed per-image/per-chunk work at this step count;")
    print("# ratio = batched/serial per-step; overhead = 1 - batched/bare; max dM = max |M_batched - M_serial|;")
    print("# load = 1-min load average after the row (> nproc means other processes competed for the cores)")
    cols = [("arch", 9), ("N", 4), ("serial", 7), ("serial e2e", 10), ("batched", 7), ("batched e2e", 11),
            ("bare net", 8), ("ratio", 6), ("overhead", 8), ("max dM", 7), ("load", 4)]
    print("| " + " | ".join(f"{c:>{w}}" for c, w in cols) + " |")
    print("|" + "|".join("-" * (w + 2) for _, w in cols) + "|")
    for arch, sizes in runs:
        model = build_model(arch, args.seed).to(args.device)
        images_all = images_all.to(args.device)
        with torch.no_grad():
            targets_all = model(images_all).argmax(1)  # the paper uses the model's own predictions
        for n in sizes:
            images, targets = images_all[:n], targets_all[:n]
            bare = time_bare(model, images, targets, args.steps, args.batch_size)
            batched, batched_e2e, res = run_batched(model, images, targets, args.steps, args.batch_size,
                                                    args.seed, args.lam, args.lr)
            k = min(args.serial_images, n)
            # measured again for every row, right after the batched run, so both see the same machine load
            serial, serial_e2e, sres = run_serial(model, images[:k], targets[:k], args.steps, args.seed,
                                                  args.lam, args.lr)
            k = min(k, sres.masks.shape[0])
            dm = (res.masks[:k].cpu() - sres.masks[:k]).abs().max().item()
            vals = [arch, n, f"{serial:.2f}", f"{serial_e2e:.2f}", f"{batched:.2f}", f"{batched_e2e:.2f}",
                    f"{bare:.2f}", f"{batched / serial:.2f}x", f"{100 * (1 - batched / bare):.1f}%", f"{dm:.1e}",
                    f"{os.getloadavg()[0]:.1f}"]
            print("| " + " | ".join(f"{v:>{w}}" for v, (_, w) in zip(vals, cols)) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
