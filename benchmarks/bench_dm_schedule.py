"""Benchmark: how far the cpu profile's dataset-mask schedule is from the original's (issue #9's fidelity side
of the time budget).

The original code (``train_masks.py``) learns a dataset mask with one Adam step per image (batch 1), lr 1e-3,
the one-cycle schedule over up to 100 epochs, and stops when its rule holds (masked accuracy >= 99 % of the
unmasked one while the sparsity stays put for 7 epochs). The cpu profile takes batches of 32, a 10x larger
peak lr and at most ``dataset_mask.epochs`` epochs (patience 3) to fit the book's budget. This script learns
the masks of the cpu profile's networks (``--regimes``, seed 0; trained, or loaded from ``--artifacts``) with

* ``cpu`` -- the cpu profile's settings as they are;
* ``cpu_<E>ep`` -- the same with ``dataset_mask.epochs = E`` for each ``--short`` E (the one-cycle schedule then
  anneals sooner): the cheaper setting considered for the 90-minute ceiling;
* ``original`` -- the original's schedule (batch 1, lr 1e-3, <= 100 epochs, patience 7) -- unless ``--no-original``
* ``b<B>_lr<LR>_<E>ep`` -- each ``--extra B:LR:E`` schedule (first regime only): cheaper ways towards the original

and prints per setting and regime: seconds, epochs run, whether the original's rule ended it, the mask mean
(the sparsity term), the masked accuracy, the share of the mask's energy in the lower half of the radial bands,
and the mean |dM| to the ``original`` mask (and to ``cpu``). Masks are cached in the artifact store like the
book's, so a second call only reads them (its seconds are then those recorded by the first, from
``<artifacts>/../results*/runtimes``; the JSON says which). The LAST line printed is one JSON object (also
written to ``--out``).

Usage::

    FMASK_DATA=/work/shared/data/imagenette2-224 python benchmarks/bench_dm_schedule.py --artifacts /tmp/dm \\
        --regimes vanilla translate --original-regimes vanilla --short 10 \
        --extra 1:0.001:10 8:0.003:10 4:0.01:10 8:0.02:10 --out benchmarks/results/bench_dm_schedule.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmask.analysis import bands
from fmask.experiment.run import Run  # noqa: E402
from fmask.experiment.profiles import load_profile  # noqa: E402

ORIGINAL = {"epochs": 100, "lr": 0.001, "patience": 7, "batch_size": 1}


def _settings(short: list[int], original: bool, extra: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {"cpu": {}}
    for e in short:
        out[f"cpu_{e}ep"] = {"epochs": e}
    for spec in extra:
        try:
            bs, lr, ep = spec.split(":")
            over = {"batch_size": int(bs), "lr": float(lr), "epochs": int(ep)}
        except ValueError as e:
            raise SystemExit(f"--extra wants BATCH:LR:EPOCHS, e.g. 1:0.001:10; got {spec!r} ({e})") from None
        out[f"b{bs}_lr{lr}_{ep}ep"] = over
    if original:
        out["original"] = dict(ORIGINAL)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", required=True, help="artifact store (trained models and masks are cached here)")
    ap.add_argument("--regimes", nargs="+", default=["vanilla"])
    ap.add_argument("--short", nargs="*", type=int, default=[10], help="shorter epoch budgets of the cpu schedule")
    ap.add_argument("--no-original", action="store_true", help="skip the original's schedule (~7 s per epoch)")
    ap.add_argument("--original-regimes", nargs="*", default=None,
                    help="regimes for the original's schedule (default: --regimes; up to ~13 min each)")
    ap.add_argument("--extra", nargs="*", default=[], metavar="BATCH:LR:EPOCHS",
                    help="more schedules (one-cycle, the cpu profile's patience), on the first of --regimes only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-bands", type=int, default=32)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if any(e < 1 for e in args.short):
        ap.error("--short epochs must be >= 1")
    torch.set_num_threads(args.threads)
    load_before = list(os.getloadavg())
    print(f"# threads {args.threads}, torch {torch.__version__}, load before {[round(v, 2) for v in load_before]}",
          flush=True)
    base = load_profile("cpu").to_dict()
    rows: dict[str, dict[str, dict]] = {}
    masks: dict[tuple[str, str], torch.Tensor] = {}
    for name, over in _settings(args.short, not args.no_original, args.extra).items():
        prof = {**base, "dataset_mask": {**dict(base["dataset_mask"]), **over}}
        res_dir = Path(args.artifacts).parent / f"results_{name}"
        run = Run.from_profile(prof, artifacts=args.artifacts, results_dir=res_dir, progress=True)
        regimes = args.regimes
        if name == "original" and args.original_regimes is not None:
            regimes = args.original_regimes
        elif name.startswith("b"):
            regimes = args.regimes[:1]
        for r in regimes:
            t = time.perf_counter()
            res = run.dataset_mask(r)
            sec = time.perf_counter() - t
            how = run.provenance.get(f"dataset_mask.{r}")
            if how == "loaded":
                rec = res_dir / "runtimes" / f"dataset_mask.{r}.json"
                sec = json.loads(rec.read_text())["seconds"] if rec.is_file() else None
            h = res.history
            masks[(name, r)] = res.masks
            row = {"settings": {**dict(base["dataset_mask"]), **over}, "seconds": sec, "provenance": how,
                   "epochs_run": int(len(h["accuracy"])), "snapshot_epoch": int(h["snapshot_epoch"][0]),
                   "rule_held": bool(res.converged.all()), "mask_mean": float(res.masks.mean()),
                   "initial_accuracy": float(h["initial_accuracy"][0]), "final_accuracy": float(h["accuracy"][-1]),
                   "low_share": float(bands.low_frequency_share(res.masks, args.n_bands)[0]),
                   "sparsity_trace": [round(float(v), 4) for v in h["sparsity"]],
                   "model_val_acc": float(run.model(r).metrics.get("val_acc", float("nan")))}
            rows.setdefault(name, {})[r] = row
            print(json.dumps({"setting": name, "regime": r, **{k: v for k, v in row.items()
                                                                if k not in ("sparsity_trace", "settings")}}),
                  flush=True)
    for name, per in rows.items():
        for r, row in per.items():
            for ref in ("original", "cpu"):
                if (ref, r) in masks and ref != name:
                    row[f"mean_abs_diff_to_{ref}"] = float((masks[(name, r)] - masks[(ref, r)]).abs().mean())
    out = {"what": "dataset masks of the cpu profile's networks (seed 0) under the cpu schedule, shorter cpu "
                   "schedules and the original's schedule (batch 1, lr 1e-3, <= 100 epochs, patience 7)",
           "threads": args.threads, "torch": torch.__version__, "load_before": load_before,
           "load_after": list(os.getloadavg()), "n_bands": args.n_bands, "results": rows,
           "command": "python benchmarks/bench_dm_schedule.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    line = json.dumps(out)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
