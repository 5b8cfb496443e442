"""Benchmark: how many network passes a per-image mask needs to converge, per solver, on the book's images.

The original code (``train_single_img_masks.py``) learns each mask with Adam at the one-cycle warm-up's lr
(0.008 → 0.0092) for up to 20,000 steps and stops when its counter reaches 300 (the prediction kept, and the
invariance and sparsity terms changed by at most 1e-6 and 1e-5 for 300 steps in a row). This script takes a
seeded sample of ``--n`` of the book's selected images (the cpu profile's vanilla network, seed 0) and runs
each solver of ``--solvers`` on exactly those images, one after the other in one process:

* ``original`` -- the original's schedule and stopping rule (``schedule="original"``, 20,000 steps, patience 300);
* ``book`` -- the profile's ``single_mask`` settings as they are;
* any other name of :data:`SOLVERS`: the candidates.

Per mask it records the final objective exp[(CE(Φ(x̄), y) − CE(Φ(x), y))²] + λ·mean(M), recomputed with one
forward of the returned mask; the steps and network passes (one forward and one input-gradient per step, plus
the reference forward); whether the stopping rule ended it; the mask mean; the share of its energy in the
lower half of the radial bands; the masked and the complement prediction. Per solver it gives the seconds of the
whole batch, and against ``original``: the ratio of network passes, the share of images whose objective is
at most the original's + :data:`TOL` (fixed before the run: 1e-3 absolute, i.e. a mask mean 0.014 denser at λ = 0.07), and the change of the three mask
statistics. The LAST line printed is one JSON object (also written to ``--out``).

Usage::

    FMASK_DATA=/work/shared/data/imagenette2-224 python benchmarks/bench_converge.py --artifacts /work/store \\
        --n 64 --solvers original book --out benchmarks/results/bench_converge.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmask.analysis import bands  # noqa: E402
from fmask.core.mask import complement, filter_images, pixel_offset  # noqa: E402
from fmask.experiment.run import Run  # noqa: E402
from fmask.infra.host import machine  # noqa: E402
from fmask.learners import PerImageMasks  # noqa: E402

#: solver name -> PerImageMasks settings over the profile's (``None``: the profile's ``single_mask`` as is)
SOLVERS: dict[str, dict | None] = {
    "original": {"schedule": "original", "lr": None, "steps": 20000, "patience": 300},
    "book": None,
}
#: an image's objective counts as reached when it is at most the original's + TOL (fixed before the run)
TOL = 1e-3


@torch.no_grad()
def final_objective(model, images, targets, masks, lam, space):
    """Per image: (objective, masked prediction, complement prediction) of the returned masks, recomputed."""
    off = pixel_offset(model, space, channels=images.shape[1])
    ce0 = F.cross_entropy(model(filter_images(images, torch.ones_like(masks), off)), targets, reduction="none")
    logits = model(filter_images(images, masks, off))
    ce = F.cross_entropy(logits, targets, reduction="none")
    obj = torch.exp((ce - ce0) ** 2) + lam * masks.abs().mean(dim=(1, 2, 3))
    comp = model(filter_images(images, complement(masks), off)).argmax(1)
    return obj.double().numpy(), logits.argmax(1).numpy(), comp.numpy()


def run_solver(over, model, images, targets, base, seed, n_bands):
    settings = {**base, **(over or {})}
    learner = PerImageMasks(model, **settings, seed=seed, progress=False)
    t0 = time.perf_counter()
    res = learner(images, targets)
    secs = time.perf_counter() - t0
    obj, pred, comp = final_objective(model.eval(), images, targets, res.masks, settings["lam"], learner.space)
    steps = res.steps.numpy().astype(int)
    return {
        "settings": settings,
        "seconds": secs,
        "steps": steps.tolist(),
        "passes": (steps + 1).tolist(),
        "converged": res.converged.numpy().astype(bool).tolist(),
        "objective": obj.tolist(),
        "mask_mean": res.masks.mean(dim=(1, 2, 3)).double().numpy().tolist(),
        "low_half_share": bands.low_frequency_share(res.masks, n_bands).tolist(),
        "prediction": pred.tolist(),
        "complement_prediction": comp.tolist(),
    }


def summarise(rec, ref, targets):
    y = np.asarray(targets)
    out = {
        "seconds": rec["seconds"],
        "passes_total": int(np.sum(rec["passes"])),
        "steps_median": float(np.median(rec["steps"])),
        "steps_p90": float(np.percentile(rec["steps"], 90)),
        "steps_max": int(np.max(rec["steps"])),
        "converged_share": float(np.mean(rec["converged"])),
        "objective_mean": float(np.mean(rec["objective"])),
        "mask_mean": float(np.mean(rec["mask_mean"])),
        "low_half_share": float(np.mean(rec["low_half_share"])),
        "complement_accuracy": float(np.mean(np.asarray(rec["complement_prediction"]) == y)),
        "masked_accuracy": float(np.mean(np.asarray(rec["prediction"]) == y)),
    }
    if ref is not None:
        o, r = np.asarray(rec["objective"]), np.asarray(ref["objective"])
        out["vs_original"] = {
            "passes_ratio": float(np.sum(ref["passes"]) / np.sum(rec["passes"])),
            "seconds_ratio": float(ref["seconds"] / rec["seconds"]),
            "objective_reached_share": float(np.mean(o <= r + TOL)),
            "objective_diff_median": float(np.median(o - r)),
            "mask_mean_diff": float(np.mean(rec["mask_mean"]) - np.mean(ref["mask_mean"])),
            "low_half_share_diff": float(np.mean(rec["low_half_share"]) - np.mean(ref["low_half_share"])),
            "complement_accuracy_diff": out["complement_accuracy"] - float(
                np.mean(np.asarray(ref["complement_prediction"]) == y)),
        }
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--data", default=None)
    ap.add_argument("--artifacts", default=None)
    ap.add_argument("--n", type=int, default=64, help="images in the sample (default 64)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    ap.add_argument("--solvers", nargs="+", default=["original", "book"], choices=sorted(SOLVERS))
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    run = Run.from_profile(args.profile, data_root=args.data, artifacts=args.artifacts, progress=False)
    sel = run.single_image_selection()
    g = torch.Generator().manual_seed(args.seed)
    pick = torch.randperm(len(sel.labels), generator=g)[: args.n].sort().values
    images = sel.images[pick]
    targets = (sel.predictions if sel.predictions is not None else sel.labels)[pick]
    model = run.model("vanilla").model
    base = dict(run.single_mask_params)
    n_bands = int(run.profile["analysis"]["n_bands"])

    records, summary = {}, {}
    for name in sorted(args.solvers, key=lambda n: n != "original"):  # the reference first
        records[name] = run_solver(SOLVERS[name], model, images, targets, base, args.seed, n_bands)
        summary[name] = s = summarise(records[name], records.get("original") if name != "original" else None,
                                      targets.numpy())
        print(f"{name:>10}: {s['seconds']:7.1f} s, passes {s['passes_total']}, steps median {s['steps_median']:.0f} "
              f"p90 {s['steps_p90']:.0f} max {s['steps_max']}, converged {s['converged_share']:.1%}, "
              f"objective {s['objective_mean']:.4f}, mask mean {s['mask_mean']:.3f}, "
              f"low half {s['low_half_share']:.3f}, complement acc {s['complement_accuracy']:.3f}", flush=True)
    doc = {"benchmark": "bench_converge", "profile": args.profile, "n": args.n, "seed": args.seed, "tol": TOL,
           "selection_indices": sel.idx[pick].tolist(),
           "machine": machine(), "summary": summary, "per_mask": records}
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({"benchmark": "bench_converge", "n": args.n, "machine": machine()["kind"], "summary": summary}))


if __name__ == "__main__":
    main()
