"""Benchmark: what a wider cpu network costs per image -- the price side of "vanilla accuracy >= 80 %" (issue #9).

For each ``vgg_small`` width (``--widths``, default 8 and 4) at ``--size`` px (default 64, the cpu profile), in
one process, on seeded random data, channels_last, fp32, ``--threads`` torch threads (default 2):

* ``train`` -- one training step (forward, backward, Adam update), the unit of every clean training epoch;
* ``input_grad`` -- forward + input gradient with frozen weights in eval mode: one PGD step of adversarial
  training / the attacks, and (up to the mask's own few per cent) one mask-learning step of chapters 4, 6, 7;
* ``dataset_mask_epoch`` -- seconds per epoch of the real learner, ``fmask.learners.DatasetMask`` (cpu profile's
  lam 0.2, lr 0.01, batch ``--mask-batch``), on ``--mask-images`` random images (default 1,973, the cpu
  validation set) with the network inside fmask's normalising wrapper; best of ``--mask-reps`` runs of 2 epochs.
  Added after the 80 % book: its dataset masks cost 2.4-2.6x the narrow network's, where ``input_grad`` says
  1.27-1.40x (``results/bench_width.json``, ``results/bench_width_dm.json``). 0 images: skipped.

Rates are images per second, the median of ``--reps`` timed repeats after two warm-up calls; ratios are taken
against the first width. The 1-minute load average is printed before and after: quote ratios from an idle run.
The LAST line printed is one JSON object (also written to ``--out`` if given).

Usage::

    python benchmarks/bench_width.py                      # /8 vs /4, batch 64 and 128, ~20 s
    python benchmarks/bench_width.py --widths 8 4 2 --out benchmarks/results/bench_width.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmask.models.zoo import vgg_small  # noqa: E402


def _rate(fn, n: int, reps: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def measure(width_div: int, batch: int, size: int, reps: int, seed: int = 0) -> dict[str, float]:
    """Images per second of a training step and of an input-gradient step for ``vgg_small/width_div``."""
    torch.manual_seed(seed)
    model = vgg_small(1, 5, width_div=width_div).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, size, size, generator=g).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 5, (batch,), generator=g)

    def train_step() -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    def input_grad() -> None:
        model.eval()
        xx = x.clone().requires_grad_(True)
        torch.autograd.grad(torch.nn.functional.cross_entropy(model(xx), y), xx)

    return {"train": _rate(train_step, batch, reps), "input_grad": _rate(input_grad, batch, reps)}


def dataset_mask_epoch(width_div: int, n_images: int, size: int, batch: int, reps: int, seed: int = 0) -> float:
    """Seconds per epoch of :class:`fmask.learners.DatasetMask` with ``vgg_small/width_div`` (random weights and
    images; the cost does not depend on them), best of ``reps`` runs of 2 epochs."""
    from fmask.learners.dataset import DatasetMask
    from fmask.models.zoo import Normalized

    torch.manual_seed(seed)
    net = Normalized(vgg_small(1, 5, width_div=width_div), mean=[0.449], std=[0.226]).eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_images, 1, size, size, generator=g)
    y = torch.randint(0, 5, (n_images,), generator=g)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        DatasetMask(net, lam=0.2, lr=0.01, epochs=2, patience=100, batch_size=batch, progress=False)(x, y)
        best = min(best, (time.perf_counter() - t0) / 2)
    return best


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--widths", type=int, nargs="+", default=[8, 4], help="vgg_small width divisors (default 8 4)")
    p.add_argument("--batches", type=int, nargs="+", default=[64, 128], help="batch sizes (default 64 128)")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--mask-images", type=int, default=1973, help="images per dataset-mask epoch (0: skip)")
    p.add_argument("--mask-batch", type=int, default=32, help="dataset-mask batch (cpu profile: 32)")
    p.add_argument("--mask-reps", type=int, default=2)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    if min(a.widths + a.batches + [a.size, a.reps, a.threads, a.mask_batch, a.mask_reps]) < 1 or a.mask_images < 0:
        raise SystemExit("widths, batches, size, reps, threads, mask-batch and mask-reps must be >= 1, "
                         "mask-images >= 0")
    torch.set_num_threads(a.threads)
    load_before = list(os.getloadavg())
    print(f"# vgg_small width cost, {a.size} px, channels_last fp32, {a.threads} torch threads, median of {a.reps}; "
          f"torch {torch.__version__}; load before {[round(v, 2) for v in load_before]}")
    rows = []
    for b in a.batches:
        base = None
        for w in a.widths:
            r = measure(w, b, a.size, a.reps)
            base = base or r
            row = {"width_div": w, "batch": b, **r,
                   "train_cost_vs_first": base["train"] / r["train"],
                   "input_grad_cost_vs_first": base["input_grad"] / r["input_grad"]}
            rows.append(row)
            print(f"vgg_small/{w:<2} batch {b:>4}: train {r['train']:7.0f} img/s ({row['train_cost_vs_first']:.2f}x "
                  f"the cost of /{a.widths[0]}), input gradient {r['input_grad']:7.0f} img/s "
                  f"({row['input_grad_cost_vs_first']:.2f}x)", flush=True)
    masks = []
    if a.mask_images:
        for w in a.widths:
            sec = dataset_mask_epoch(w, a.mask_images, a.size, a.mask_batch, a.mask_reps)
            masks.append({"width_div": w, "seconds_per_epoch": sec, "cost_vs_first": sec / (masks[0]["seconds_per_epoch"] if masks else sec)})
            print(f"vgg_small/{w:<2} dataset mask: {sec:6.2f} s per epoch of {a.mask_images} images, batch {a.mask_batch} "
                  f"({masks[-1]['cost_vs_first']:.2f}x the cost of /{a.widths[0]})", flush=True)
    out = {"bench": "width", "size": a.size, "threads": a.threads, "reps": a.reps, "rows": rows,
           "dataset_mask": {"images": a.mask_images, "batch": a.mask_batch, "reps": a.mask_reps, "rows": masks},
           "load_before": load_before, "load_after": list(os.getloadavg()),
           "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    print(f"# load after {[round(v, 2) for v in out['load_after']]}")
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
