"""Benchmark: per-image mask learning, end to end, until every mask stops -- fmask vs the original's serial loop.

On the same frozen model, images, targets, hyper-parameters and step cap, in one process:

* ``serial`` -- :func:`serial_reference.learn_masks_serial`: the original procedure (one image at a time, a fresh
  model loaded from a checkpoint per image, ``.item()`` logging and a prediction-check forward every step, the
  original stopping counter), masking the normalised image like the original;
* ``exact``  -- :class:`fmask.learners.PerImageMasks` with ``precision="exact"`` (float32, channels_last private
  copy of the network, compaction: stopped masks leave the batch and queued images take their slots);
* ``fast``   -- the same with ``precision="fast"`` (bf16 autocast for the network only);
* ``exact-plain`` (unless ``--quick``) -- exact without BN folding, channels_last and compaction (fixed
  chunks): what fmask's previous learner ran, for reference.

Every learner runs until every mask meets the original's stopping rule (patience ``--patience``) or the common
step cap ``--steps``. Rates are images per second end to end (model copies, spectra, all steps, results);
``e2e_ratio_*`` = rate / serial rate (targets: exact ≥ 5×, fast ≥ 8× on 2 CPU cores). Masks are compared with
the serial ones (``max_dM_*``; ``rel_dM_*_vs_serial`` = ‖M − M_serial‖ / ‖1 − M_serial‖) and fast with exact
(``rel_dM_fast``, ‖ΔM‖ / ‖1 − M_exact‖); ``final objective`` = the mean over masks of exp(inv) + λ·mean(M) at
each mask's last step (the quality the learners reach). The per-image objective is ill-conditioned at the
start (CE(x̄) − CE(x) cancels) and Adam turns rounding-level gradient differences near zero into full-size
steps, so after hundreds of steps individual entries can differ visibly between two float32 implementations
(``max dM``) while the objective and the step counts agree; ``tests/test_serial_reference.py`` bounds the
agreement over a few steps.

Models have seeded random weights, briefly fitted to arbitrary labels of the benchmark images (``--fit-steps``)
so that their predictions depend on the image and the invariance term acts; images are seeded random picks of the
paper's five Imagenette classes (``--data`` / ``FMASK_DATA``), grayscale, resized, else seeded synthetic images.
The machine load (1-min load average before/after) is recorded: on a shared machine the serial loop (batch 1)
suffers most from competing processes, so only idle-machine ratios should be quoted.

The JSON's ``decision`` (:func:`decide`) says whether the book's cpu profile should learn single masks with
``precision="fast"``: only if fast is >= 1.1x exact end to end and the fraction of images whose masked or
complement-filtered prediction differs between fast and exact masks is <= half the smallest 95 % Wilson
half-width of the mask-dependent Table 2 cells in ``book/results/table2.json`` (``--table2``).

The LAST line printed is one JSON object (also written to ``benchmarks/results/bench_learn.json``).

Usage::

    python benchmarks/bench_learn.py --quick     # vgg_small, 64x64, 64 images in one batch of 64, cap 200 steps: ~2 min on 2 cores
    python benchmarks/bench_learn.py --quick --ttq --out /tmp/ttq.json   # + time to quality
    python benchmarks/bench_learn.py             # vgg11_bn, 128x128, 16 images, cap 100, patience 10: ~10 min
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
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
TTQ_TOL = 1e-4
RESULTS = Path(__file__).resolve().parent / "results" / "bench_learn.json"

# ------------------------------------------------------------------------------------------ setup


def build_model(arch: str, seed: int) -> nn.Module:
    """Frozen ``fmask.models.zoo.build_model(arch)`` for 1-channel images, 5 classes, seeded random weights."""
    from fmask.models.zoo import build_model as fm_build

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


def fit_model(model: nn.Module, images: torch.Tensor, steps: int, seed: int) -> nn.Module:
    """Fit the (random) model briefly to arbitrary labels (image k -> class k mod 5) on ``images``, full batch,
    Adam lr 1e-3, then freeze it. A random network's masks simply collapse to 0 (its prediction ignores the
    image), so the invariance term would never act; a fitted network's prediction depends on the image."""
    if steps < 1:
        return model
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(images.shape[0]) % 5
    labels = labels[torch.randperm(images.shape[0], generator=g)]
    for p in model.parameters():
        p.requires_grad_(True)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        loss = F.cross_entropy(model(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


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



def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def run_serial(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, kw: dict[str, Any]):
    """The original's serial loop: (seconds, result). ``kw``: lam, lr, steps, patience, schedule, seed."""
    factory, path = checkpoint_factory(model)
    sched = 0.1 if kw["schedule"] == "original" else None
    args = dict(lam=kw["lam"], lr=kw["lr"], seed=kw["seed"], patience=kw["patience"], schedule=sched,
                schedule_total_steps=kw["steps"] * 200 if sched else None, device=kw["device"])
    try:
        learn_masks_serial(factory, images[:1], targets[:1], steps=2, **args)  # warm-up
        t0 = time.perf_counter()
        res = learn_masks_serial(factory, images, targets, steps=kw["steps"], **args)
        return time.perf_counter() - t0, res
    finally:
        os.remove(path)


def run_fmask(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, kw: dict[str, Any], **extra: Any):
    """fmask.learners.PerImageMasks end to end: (seconds, result)."""
    from fmask.learners import PerImageMasks

    common = dict(lam=kw["lam"], lr=kw["lr"], patience=kw["patience"], schedule=kw["schedule"], seed=kw["seed"],
                  batch_size=kw["batch_size"], device=kw["device"], progress=False, **extra)
    PerImageMasks(model, steps=2, **common)(images[:2], targets[:2])  # warm-up (allocator, kernels)
    t0 = time.perf_counter()
    res = PerImageMasks(model, steps=kw["steps"], **common)(images, targets)
    return time.perf_counter() - t0, res


def time_to_quality(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, kw: dict[str, Any],
                    target: float, options: list[tuple[str, float]], fractions=(0.125, 0.25, 0.5, 0.75, 1.0)):
    """Steps and seconds (exact learner) until the mean objective reaches ``target`` (the serial reference's
    final value, up to ``TTQ_TOL`` = 1e-4: two float32 runs of the same schedule end ~2e-5 apart), per (schedule, lr) option: runs with step caps ``fraction × steps`` and reports the first cap
    whose mean final objective is ≤ target (None if none). Returns a list of dicts, one per option."""
    out = []
    for schedule, lr in options:
        row: dict[str, Any] = {"schedule": schedule, "lr": lr, "trace": []}
        for f in fractions:
            k = max(2, int(round(f * kw["steps"])))
            secs, res = run_fmask(model, images, targets, {**kw, "steps": k, "schedule": schedule, "lr": lr},
                                  precision="exact")
            obj = res.history["loss"].mean().item()
            row["trace"].append({"steps": k, "seconds": secs, "objective": obj})
            if obj <= target + TTQ_TOL and "steps_to_target" not in row:
                row["steps_to_target"], row["seconds_to_target"] = k, secs
        row.setdefault("steps_to_target", None)
        row.setdefault("seconds_to_target", None)
        out.append(row)
    return out


TABLE2 = Path(__file__).resolve().parents[1] / "book" / "results" / "table2.json"
#: fast mode must beat exact end to end by at least this factor to be worth its error
MIN_FAST_SPEEDUP = 1.1


def table2_half_widths(path: Path) -> dict[str, float]:
    """95 % Wilson half-widths ((hi − lo) / 2) of the mask-dependent count cells of the book's Table 2 result file
    (``values[regime]["correct"][cell]`` out of ``values[regime]["n"]`` for the cells named ``masked*`` or
    ``complement*``; ``original`` / ``adversarial`` do not involve a mask), keyed ``"regime/cell"``; {} if the
    file is absent."""
    from fmask.analysis.stats import wilson_interval

    if not path.is_file():
        return {}
    values = json.loads(path.read_text())["values"]
    out = {}
    for regime, row in values.items():
        for cell, k in row.get("correct", {}).items():
            if not cell.startswith(("masked", "complement")):
                continue
            lo, hi = wilson_interval(int(k), int(row["n"]))
            out[f"{regime}/{cell}"] = (hi - lo) / 2
    return out


def _repo_relative(path) -> str:
    """``path`` relative to the repository when inside it (result files carry no machine-local paths)."""
    p = Path(path).resolve()
    root = Path(__file__).resolve().parents[1]
    try:
        return str(p.relative_to(root))
    except ValueError:
        return p.name


def decide(model: nn.Module, images: torch.Tensor, exact, fast, exact_rate: float, fast_rate: float,
           table2: Path) -> dict[str, Any]:
    """Should the book's cpu profile learn single-image masks with ``precision="fast"``?

    Yes iff fast is at least ``MIN_FAST_SPEEDUP`` (1.1×) faster than exact end to end AND the masks' error cannot
    move a Table 2 cell by more than half of its smallest 95 % Wilson half-width. A Table 2 cell is an accuracy
    over images filtered with the masks (or their complements), so the fraction of images whose masked (resp.
    complement-filtered) prediction differs between the fast and the exact masks bounds how far fast mode can
    shift that cell; the larger of the two flip rates is compared with the half-widths of the cells in
    ``table2`` (the book's result file)."""
    from fmask.core.mask import complement, filter_images, pixel_offset

    off = pixel_offset(model, "auto", channels=images.shape[1])
    with torch.no_grad():
        comp = [model(filter_images(images, complement(r.masks), offset=off)).argmax(1) for r in (exact, fast)]
    masked_flip = float((exact.history["prediction"] != fast.history["prediction"]).float().mean())
    comp_flip = float((comp[0] != comp[1]).float().mean())
    widths = table2_half_widths(table2)
    min_hw = min(widths.values()) if widths else None
    speedup = fast_rate / exact_rate
    rel = float((fast.masks - exact.masks).norm() / (1 - exact.masks).norm().clamp_min(1e-30))
    pays = speedup >= MIN_FAST_SPEEDUP
    small = min_hw is not None and max(masked_flip, comp_flip) <= min_hw / 2
    use = pays and small
    reasons = [f"fast/exact end-to-end speed {speedup:.2f}x ({'>=' if pays else '<'} {MIN_FAST_SPEEDUP}x)"]
    if min_hw is None:
        reasons.append(f"no Table 2 result file at {table2}: the error criterion cannot be checked")
    else:
        reasons.append(f"prediction flips fast vs exact masks {max(masked_flip, comp_flip):.3g} "
                       f"({'<=' if small else '>'} half the smallest Table 2 Wilson half-width {min_hw:.3g})")
    return {"cpu_profile_single_mask_precision": "fast" if use else "exact", "use_fast": use,
            "speedup_fast_vs_exact": speedup, "rel_dM_fast_vs_exact": rel,
            "masked_prediction_flip_rate": masked_flip, "complement_prediction_flip_rate": comp_flip,
            "table2_min_wilson_half_width": min_hw, "table2_file": _repo_relative(table2),
            "rule": f"fast iff speed-up >= {MIN_FAST_SPEEDUP}x and max flip rate <= min Wilson half-width / 2",
            "reason": "; ".join(reasons)}


def main(argv: list[str] | None = None) -> int:
    from fmask.core.objective import PER_IMAGE_DEFAULTS
    from fmask.core.schedule import ORIGINAL_SINGLE_IMAGE

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="vgg_small, 64x64, 64 images, cap 200, patience 20, batch 64 = the book's single-mask batch (~2 min on 2 cores)")
    p.add_argument("--arch", default="vgg11_bn")
    p.add_argument("--size", type=int, default=128, help="image side (default 128)")
    p.add_argument("--n", type=int, default=16, help="images (default 16)")
    p.add_argument("--steps", type=int, default=100, help="step cap per mask, the same for all (default 100)")
    p.add_argument("--patience", type=int, default=10,
                   help="the stopping counter's patience (smaller than the original's so masks stop within the cap)")
    p.add_argument("--batch-size", type=int, default=16, help="fmask batch (masks learned at once)")
    p.add_argument("--lam", type=float, default=PER_IMAGE_DEFAULTS["lam"])
    p.add_argument("--lr", type=float, default=ORIGINAL_SINGLE_IMAGE["lr"],
                   help="max lr of the original schedule (default: the original's)")
    p.add_argument("--schedule", default="original", choices=["original", "constant"])
    p.add_argument("--seed", type=int, default=31)
    p.add_argument("--fit-steps", type=int, default=30,
                   help="full-batch Adam steps fitting the random model to arbitrary labels first (default 30)")
    p.add_argument("--device", default="cpu", help="cpu | cuda (default cpu; results are synchronised at the end)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--data", default=os.environ.get("FMASK_DATA"), help="Imagenette root (default $FMASK_DATA)")
    p.add_argument("--ttq", action="store_true",
                   help="also time-to-quality: steps/seconds until fmask exact reaches the serial's final objective, "
                        "for the original schedule and constant lr 0.01 / 0.05")
    p.add_argument("--out", default=str(RESULTS), help=f"JSON output (default {RESULTS})")
    p.add_argument("--table2", default=str(TABLE2),
                   help=f"the book's Table 2 result file for the fast-mode decision (default {TABLE2})")
    args = p.parse_args(argv)
    if args.quick:
        # the book's cpu single-mask workload shape: vgg_small at 64 px, batches of 64 (cpu.yaml single_mask.batch_size)
        args.arch, args.size, args.n, args.steps, args.patience, args.batch_size = "vgg_small", 64, 64, 200, 20, 64
    if args.threads:
        torch.set_num_threads(args.threads)
    if min(args.n, args.steps, args.patience, args.batch_size) < 1 or args.steps < 2:
        raise ValueError("--n, --patience, --batch-size must be >= 1 and --steps >= 2")

    load_before = _load()
    print("# fmask mask-learning benchmark (end to end, until every mask stops)")
    print(f"# command: python benchmarks/bench_learn.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"# machine: {machine_line()}; load before {load_before}")
    images, source = load_images(args.n, args.size, args.data, args.seed)
    model = fit_model(build_model(args.arch, args.seed), images, args.fit_steps, args.seed)
    with torch.no_grad():
        targets = model(images).argmax(1)  # the original uses the model's own predictions
    kw = dict(lam=args.lam, lr=args.lr, steps=args.steps, patience=args.patience, schedule=args.schedule,
              seed=args.seed, batch_size=args.batch_size, device=args.device)
    print(f"# {args.arch} (seeded random weights, fitted {args.fit_steps} steps to arbitrary labels); images: "
          f"{source}; {args.n} x {args.size}x{args.size}; settings {kw}")

    runs: dict[str, tuple[float, Any]] = {}
    runs["serial"] = run_serial(model, images, targets, kw)
    runs["exact"] = run_fmask(model, images, targets, kw, precision="exact")
    runs["fast"] = run_fmask(model, images, targets, kw, precision="fast")
    if not args.quick:
        runs["exact-plain"] = run_fmask(model, images, targets, kw, precision="exact", channels_last=False,
                                        fuse_bn=False, compaction=False)
    load_after = _load()
    serial_rate = args.n / runs["serial"][0]
    s_masks = runs["serial"][1].masks
    out: dict[str, Any] = {"arch": args.arch, "fit_steps": args.fit_steps, "size": args.size, "n": args.n, **kw, "source": source,
                           "machine": machine_line(), "load_before": load_before, "load_after": load_after,
                           "serial_images_per_s": serial_rate}
    print("| learner          | seconds | images/s | ratio vs serial | mean steps | converged | final objective "
          "| max dM vs serial | rel dM vs serial |")
    print("|------------------|---------|----------|-----------------|------------|-----------|-----------------"
          "|------------------|------------------|")
    for name, (secs, res) in runs.items():
        rate = args.n / secs
        steps = res.steps.float().mean().item()
        conv = float(res.converged.float().mean())
        dm = (res.masks - s_masks).abs().max().item()
        rel = float((res.masks - s_masks).norm() / (1 - s_masks).norm().clamp_min(1e-30))
        if name == "serial":  # the objective at each mask's last step: exp(inv) + λ·mean(M)
            obj = sum(math.exp(h["invariance"][-1]) + args.lam * h["sparsity"][-1] for h in res.history) / args.n
        else:
            obj = res.history["loss"].mean().item()
        print(f"| {name:<16} | {secs:>7.1f} | {rate:>8.3f} | {rate / serial_rate:>14.2f}x | {steps:>10.1f} | "
              f"{conv:>9.2f} | {obj:>15.5f} | {dm:>16.2e} | {rel:>16.2e} |", flush=True)
        out[f"{name.replace('-', '_')}_final_objective"] = obj

        key = name.replace("-", "_")
        out[f"{key}_seconds"] = secs
        out[f"{key}_images_per_s"] = rate
        out[f"{key}_mean_steps"] = steps
        out[f"{key}_converged"] = conv
        if name != "serial":
            out[f"e2e_ratio_{key}"] = rate / serial_rate
            out[f"max_dM_{key}"] = dm
            out[f"rel_dM_{key}_vs_serial"] = rel
            out[f"steps_equal_{key}"] = bool(torch.equal(res.steps, runs["serial"][1].steps))
    if args.ttq:
        target = out["serial_final_objective"]
        opts = [("original", args.lr), ("constant", 0.01), ("constant", 0.05)]
        out["time_to_quality"] = time_to_quality(model, images, targets, kw, target, opts)
        print(f"# time to quality (exact): first step cap whose mean objective <= serial final {target:.5f}")
        for row in out["time_to_quality"]:
            trace = ", ".join(f"{t['steps']}: {t['objective']:.5f} ({t['seconds']:.1f}s)" for t in row["trace"])
            print(f"#   {row['schedule']} lr {row['lr']}: steps {row['steps_to_target']}, "
                  f"seconds {row['seconds_to_target']}; trace {trace}")
    ex = runs["exact"][1].masks
    out["rel_dM_fast"] = float((runs["fast"][1].masks - ex).norm() / (1 - ex).norm().clamp_min(1e-30))
    print(f"# load after {load_after}; rel dM fast vs exact {out['rel_dM_fast']:.2e}")
    out["decision"] = decide(model, images, runs["exact"][1], runs["fast"][1], out["exact_images_per_s"],
                             out["fast_images_per_s"], Path(args.table2))
    print(f"# decision: cpu profile single masks use precision={out['decision']['cpu_profile_single_mask_precision']!r}"
          f" ({out['decision']['reason']})")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fmask.infra.atomic import atomic_write_json

    atomic_write_json(out, path)
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
