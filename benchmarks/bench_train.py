"""Benchmark: training the cpu profile's networks -- the previous training loop vs the current one (issue #10).

In one process, on the same data, profile, seed and initial weights:

* ``before`` -- :func:`legacy_epoch` / :func:`legacy_eval`: the loop of ``fmask/training/fit.py`` before issue #10,
  kept here as the reference (channels_last network, contiguous batches handed to PGD, a host sync per batch
  for the loss and accuracy sums, the validation images decoded and centre-cropped again every epoch);
* ``now`` -- :func:`fmask.training.loop.train_epoch` + :func:`fmask.training.loop.eval_tensors` with ``precision`` fp32 (the
  default on CPU) and, unless ``--no-bf16``, bf16 autocast.

Measured: epoch throughput in training images per second, validation included (what one epoch of
:func:`fmask.training.fit.train_model` costs), for a clean (vanilla) and an adversarial epoch (the profile's PGD).
``--quick`` times the first ``--quick-batches`` training batches and one validation pass, and extrapolates to
the epoch (≤ 3 min on 2 idle cores); the full mode
times whole epochs and also trains ``vanilla`` and one augmented regime (``--regime2``, default ``scale``)
for the profile's epochs with both loops and compares the final validation accuracy: the check
"≥ 2× at equal accuracy ± 1 pp" is ``ok_speed`` / ``ok_accuracy`` in the JSON. The 1-minute load average is
recorded before and after: on a shared machine only ratios measured side by side mean anything.

The LAST line printed is one JSON object (also written to ``--out``).

Usage::

    FMASK_DATA=/path/to/imagenette python benchmarks/bench_train.py --quick
    FMASK_DATA=... python benchmarks/bench_train.py --out benchmarks/results/train_full.json
    FMASK_DATA=... python benchmarks/bench_train.py --train-only --regime2 "" --set train.epochs=16 train.batch_size=64
"""
from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmask.training import fit as T
from fmask.training import loop as L  # noqa: E402
from fmask.training.attacks import PGD  # noqa: E402
from fmask.experiment.profiles import load_profile  # noqa: E402
from fmask.infra.atomic import atomic_write_json  # noqa: E402
from fmask.infra.store import ArtifactStore  # noqa: E402

#: the benchmark's path labels as the trainer's precision words
_PRECISION = {"fp32": "exact", "bf16": "fast"}


# ---------------------------------------------------------------- the loop before issue #10 (reference)
def legacy_epoch(model, opt, sched, batches, attack, device):
    """One epoch as ``fmask/training/fit.py`` ran it before issue #10 (returns loss sum, correct, n)."""
    model.train()
    loss_sum, correct, n = 0.0, 0, 0
    for x, y in batches:
        if attack is not None:
            x = attack(x, y)
        x = x.contiguous(memory_format=torch.channels_last)
        out = model(x)
        loss = nn.functional.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_sum += float(loss.detach()) * len(y)
        correct += int((out.argmax(1) == y).sum())
        n += len(y)
    return loss_sum, correct, n


@torch.no_grad()
def legacy_eval(model, ds, device, batch_size=256):
    """Validation as before issue #10: the eval transform applied to the dataset again on every call."""
    was = model.training
    model.eval()
    correct, loss_sum, n = 0, 0.0, 0
    for x, y in ds.with_options(train=False).batches(batch_size, torch.Generator(), device, shuffle=False):
        out = model(x)
        loss_sum += float(nn.functional.cross_entropy(out.float(), y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
        n += len(y)
    model.train(was)
    return {"acc": correct / n, "loss": loss_sum / n, "n": n}


# ---------------------------------------------------------------- shared set-up
def setup(prof, regime, train_ds, val_ds, device):
    """Model (seeded initial weights), Adam, one-cycle and PGD exactly as :func:`fmask.training.fit._fit` builds them."""
    t = prof.train
    params = T.training_params(regime, prof, "bench")
    torch.manual_seed(prof.seed)
    model = T._build(params, device)
    opt = torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    spe = math.ceil(len(train_ds) / t.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=t.lr, epochs=t.epochs, steps_per_epoch=spe,
                                                pct_start=t.pct_start)
    attack = PGD(model, eps=t.adv_eps, alpha=t.adv_alpha, steps=t.adv_steps) if regime == "adversarial" else None
    return model, opt, sched, attack


def run_epochs(path, prof, regime, train_ds, val_ds, device, epochs, max_batches=None):
    """Train ``epochs`` epochs with ``path`` (``before`` / ``fp32`` / ``bf16``); returns per-epoch seconds
    (train + validation), training images per epoch and the validation accuracies."""
    ds = train_ds.with_options(train=True, regime=regime)
    model, opt, sched, attack = setup(prof, regime, ds, val_ds, device)
    gen = torch.Generator().manual_seed(prof.seed)
    secs, accs, n_img, t_train, t_val = [], [], 0, 0.0, 0.0
    torch.manual_seed(prof.seed)
    if path != "before":
        t0 = time.perf_counter()
        xv, yv = val_ds.with_options(train=False).tensors()  # once per training, as fmask.training.fit._fit
        xv = L.nhwc(xv)
        t_val += time.perf_counter() - t0
    for _ in range(epochs):
        t0 = time.perf_counter()
        batches = ds.batches(prof.train.batch_size, gen, device)
        if max_batches is not None:
            batches = itertools.islice(batches, max_batches)
        if path == "before":
            _, _, n_img = legacy_epoch(model, opt, sched, batches, attack, device)
            t1 = time.perf_counter()
            ev = legacy_eval(model, val_ds, device)
        else:
            _, _, n_img = L.train_epoch(model, opt, sched, batches, attack, device, _PRECISION[path])
            t1 = time.perf_counter()
            model.eval()
            ev = L.eval_tensors(model, xv, yv, device, 256, _PRECISION[path])
        t2 = time.perf_counter()
        t_train, t_val = t_train + t1 - t0, t_val + t2 - t1
        secs.append(t2 - t0)
        accs.append(ev["acc"])
    return {"seconds": secs, "n_train": n_img, "val_acc": accs, "train_s": t_train, "val_s": t_val}


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=YAML", help="profile overrides, e.g. train.epochs=5")
    ap.add_argument("--quick", action="store_true", help="time the first --quick-batches batches of one epoch")
    ap.add_argument("--quick-batches", type=int, default=8)
    ap.add_argument("--regime2", default="scale", help="the augmented regime trained in full mode")
    ap.add_argument("--no-bf16", action="store_true")
    ap.add_argument("--train-only", action="store_true",
                    help="config search: skip the throughput comparison, train vanilla (+ --regime2 unless '') "
                         "with the current loop only (fp32) and report accuracy, best epoch and seconds")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--store", default=None, help="artifact store for the decoded-image cache (default: a temp dir)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    import yaml

    prof = load_profile(a.profile, {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in a.set)})
    device = torch.device("cpu")
    store = ArtifactStore(a.store or tempfile.mkdtemp(prefix="bench_train_"))
    train_ds, val_ds = T.load_datasets(prof, store=store, progress=False)
    paths = ["before", "fp32"] + ([] if a.no_bf16 else ["bf16"])
    if a.train_only:
        paths = ["fp32"]
    res: dict = {
        "bench": "train", "mode": "quick" if a.quick else "full", "profile": a.profile, "overrides": a.set,
        "model": prof.model.to_dict(), "train": prof.train.to_dict(), "image_size": prof.data.image_size,
        "n_train": len(train_ds), "n_val": len(val_ds),
        "machine": {"nproc": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                    "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
        "load_before": load(),
    }
    print(f"# fmask training benchmark ({res['mode']}); profile {a.profile} {a.set}; {len(train_ds)} train / "
          f"{len(val_ds)} val images at {prof.data.image_size} px; model {prof.model.to_dict()}")
    print(f"# machine {res['machine']}; load before {res['load_before']}")
    mb = a.quick_batches if a.quick else None
    thr: dict = {}
    for regime in () if a.train_only else ("vanilla", "adversarial"):  # interleaved per path so load changes hit all paths alike
        for path in paths:
            r = run_epochs(path, prof, regime, train_ds, val_ds, device, 1, mb)
            # one epoch = all training images at the measured step rate + one validation pass
            epoch_s = len(train_ds) / (r["n_train"] / r["train_s"]) + r["val_s"]
            thr[f"{regime}/{path}"] = len(train_ds) / epoch_s
            print(f"{regime:12s} {path:7s} train {r['n_train'] / r['train_s']:7.1f} img/s"
                  f"{' (first %d batches)' % mb if mb else ''}, validation {r['val_s']:5.1f} s -> epoch {epoch_s:6.1f} s"
                  f" = {thr[f'{regime}/{path}']:6.1f} img/s  (load {load()[0]})", flush=True)
    ratios = {f"{rg}/{p}": thr[f"{rg}/{p}"] / thr[f"{rg}/before"] for rg in ("vanilla", "adversarial")
              for p in paths if p != "before" and not a.train_only}
    res["img_per_s"] = {k: round(v, 1) for k, v in thr.items()}
    res["speedup"] = {k: round(v, 3) for k, v in ratios.items()}
    if ratios:
        print("speed-up vs before: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    if not a.quick:
        acc: dict = {}
        regimes = ("vanilla", a.regime2) if a.regime2 else ("vanilla",)
        for regime in regimes:
            for path in paths:
                r = run_epochs(path, prof, regime, train_ds, val_ds, device, prof.train.epochs)
                best = max(r["val_acc"])
                acc[f"{regime}/{path}"] = {"best": best, "final": r["val_acc"][-1],
                                           "best_epoch": len(r["val_acc"]) - r["val_acc"][::-1].index(best),
                                           "seconds": round(sum(r["seconds"]), 1),
                                           "val_acc": [round(v, 4) for v in r["val_acc"]]}
                print(f"{regime:12s} {path:7s} {prof.train.epochs} epochs {sum(r['seconds']):7.1f} s  final val acc "
                      f"{r['val_acc'][-1]:.4f}  best {max(r['val_acc']):.4f}  (load {load()[0]})", flush=True)
        res["accuracy"] = acc
        if not a.train_only:
            diffs = {f"{rg}/{p}": acc[f"{rg}/{p}"]["best"] - acc[f"{rg}/before"]["best"]
                     for rg in regimes for p in paths if p != "before"}
            res["acc_diff_pp"] = {k: round(100 * v, 2) for k, v in diffs.items()}
            res["ok_accuracy"] = {p: all(abs(diffs[f"{rg}/{p}"]) <= 0.01 for rg in regimes)
                                  for p in paths if p != "before"}
            res["ok_speed"] = {p: all(ratios[f"{rg}/{p}"] >= 2.0 for rg in ("vanilla", "adversarial"))
                               for p in paths if p != "before"}
    res["load_after"] = load()
    print(f"# load after {res['load_after']}")
    if a.out:
        atomic_write_json(res, Path(a.out))
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
