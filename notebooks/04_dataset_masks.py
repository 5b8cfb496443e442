# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Dataset masks
#
# *Profile: **{glue:text}`profile`**.*
#
# For each of the five trained networks (A vanilla, B adversarial, C scale, D translation, E rotation) we
# learn **one** Fourier mask $M$ for the whole validation set: starting from all ones, $M$ minimises
# $\exp[(\mathrm{CE}(\Phi(\bar x), y) - \mathrm{CE}(\Phi(x), y))^2] + \lambda\,\mathrm{mean}(M)$ with
# $\bar x = \mathrm{Re}\,\mathcal{F}^{-1}(M \odot \mathcal{F}x)$, $\lambda = $ {glue:text}`lam`, and is
# projected to $[0, 1]$ after every step. This is the paper's Eq. 2 with an $\ell_1$ penalty (Sec. 2.2) in the
# form the original code implements: the initialisation at ones, the clamp to $[0, 1]$, the real part and the
# $\ell_1$ norm divided by its initial value (the mean of $M$) are the code's. The mask acts on the
# {glue:text}`mask_space`. The mask shows which input frequencies the network needs
# (the paper's Fig. 3); Table 1 compares the accuracy on the original and on the masked images.

# %% tags=["parameters"]
from typing import Optional  # the annotations below are what `papermill --help-notebook` shows

profile: str = "smoke"            # smoke (minutes; the default), cpu (the book), paper, or a YAML path
data_root: Optional[str] = None      # Imagenette root; None -> the profile's data.root, else $FMASK_DATA
artifacts_dir: Optional[str] = None  # trained models and masks; None -> $FMASK_ARTIFACTS or ./artifacts
results_dir: str = "results"      # result files of this chapter (fmask.experiment.results), relative to the book folder
device: Optional[str] = None         # auto | cpu | cuda; None -> the profile's device

# %% tags=["remove-cell"]
from fmask.book import chapter
ch = chapter.open(profile=profile, data_root=data_root, artifacts_dir=artifacts_dir, results_dir=results_dir, device=device)

# %%
from fmask import plots
from fmask.analysis import accuracy, maps, stats
from fmask.data.regimes import PAPER_LETTERS, REGIMES

run = ch.run
letters = PAPER_LETTERS
x_val, y_val = run.val_data()
ch.glue("n_val", len(y_val), ",")

# %%
with run.timed("04_dataset_masks.learn"):
    reps = run.replicate_models()          # regime -> [model of seed + k]
    rmasks = run.replicate_dataset_masks()  # regime -> [dataset mask of replicate k, learned with seed + k]
models = {r: v[0] for r, v in reps.items()}   # replicate 0: the figures below and every other chapter
masks = {r: v[0] for r, v in rmasks.items()}
seeds = [run.replicate_seed(k) for k in range(run.n_replicates)]
ch.glue("n_replicates", str(run.n_replicates))
lam = masks["vanilla"].params["lam"]
ch.glue("lam", f"{lam:g}")
space = masks["vanilla"].params.get("space", "auto")
ch.glue("mask_space", {"normalised": "normalised image (as in the original code)",
                       "pixel": "pixel image (the original code filters the normalised image)"}.get(space, str(space)))
for r, v in rmasks.items():
    for k, res in enumerate(v):
        stage = f"dataset_mask.{r}" + ("" if k == 0 else f".r{k}")
        print(f"{letters[r]} {r:>11} seed {seeds[k]}: {run.provenance.get(stage, 'in memory')}, "
              f"{int(res.steps[0])} steps, converged={bool(res.converged[0])}, mean(M)={float(res.masks.mean()):.3f}")

# %% [markdown]
# ## Training trace and stopping rule
#
# The original code learns a dataset mask for up to 100 epochs and keeps the mask of the last epoch whose masked
# accuracy is at least {glue:text}`accuracy_ratio` of the unmasked one; it stops once the mask's sparsity (mean of
# $M$) has stayed unchanged (to {glue:text}`tol_sparsity`) for `patience` such epochs (`train_masks.py`). This build runs at most
# {glue:text}`mask_epochs` epochs with patience {glue:text}`mask_patience`. Per network (replicate 0, seed
# {glue:text}`base_seed`): the objective, the masked accuracy and the sparsity after every epoch, then for every
# seed whether the original's rule held (the mask is the rule's snapshot) or the epoch budget ran out first.

# %%
from fmask.core.objective import ACCURACY_RATIO, TOL_SPARSITY

ch.glue("mask_epochs", str(ch.setting("dataset_mask", "epochs")))
ch.glue("mask_patience", str(ch.setting("dataset_mask", "patience")))
ch.glue("base_seed", str(run.seed))
ch.glue("tol_sparsity", f"{TOL_SPARSITY:g}")
ch.glue("accuracy_ratio", f"{100 * ACCURACY_RATIO:g} %")
trace = {f"({letters[r]}) {r}": masks[r].history for r in masks}
ch.figure(plots.dataset_mask_trace(trace), "fig-dataset-mask-trace",
          "Dataset-mask training of each network (replicate 0): epoch means of the objective and of the "
          "sparsity, and the masked accuracy after each epoch, with the snapshot threshold (dashed) and the "
          "epoch of the kept mask (ringed; none if no epoch qualified).",
          alt="Three line plots against epoch (objective, masked accuracy, sparsity), one line per network.")

# %%
def _stopping(res):
    """How a dataset mask's training ended: the original's rule, or the epoch budget (with / without a snapshot)."""
    snap, epochs = int(res.history["snapshot_epoch"][0]), len(res.history["loss"])
    if bool(res.converged[0]):
        return f"rule held (snapshot epoch {snap})"
    return f"budget of {epochs} epochs; " + (f"snapshot epoch {snap}" if snap else "no epoch reached the threshold")


ch.table([{"model": f"({letters[r]}) {r}",
           **{f"seed {seeds[k]}": _stopping(res) for k, res in enumerate(v)}}
          for r, v in rmasks.items()])
# How far this profile's schedule is from the original's: a side-by-side measurement on the vanilla network
# (benchmarks/bench_dm_schedule.py, result file benchmarks/results/bench_dm_schedule.json), quoted for the cpu
# profile whose settings it measured.
from fmask.experiment import results as report

_dms = report.benchmark_result("bench_dm_schedule")
_dmv = {k: v.get("vanilla") for k, v in (_dms or {}).get("results", {}).items()}
if profile == "cpu" and _dmv.get("cpu") and _dmv.get("original"):
    _c, _o, _s, _b1 = _dmv["cpu"], _dmv["original"], _dmv.get("cpu_10ep"), _dmv.get("b1_lr0.001_10ep")
    _big = [v for k, v in _dmv.items() if v and k.startswith("b") and v["settings"]["lr"] >= 0.01]
    ch.glue("dm_schedule", (
        f"**This profile's schedule vs the original's.** Measured on a vanilla network trained with this profile's "
        f"settings (seed 0, validation accuracy {100 * _c['model_val_acc']:.1f}%; "
        f"`benchmarks/results/bench_dm_schedule.json`): the original's schedule (one Adam step per image, lr "
        f"0.001, one-cycle over at most 100 epochs, patience 7) ran {_o['epochs_run']} epochs, kept the masked "
        f"accuracy at {_o['final_accuracy']:.1f}% (unmasked {_o['initial_accuracy']:.1f}%) and ended at mask mean "
        f"{_o['mask_mean']:.3f}, with {100 * _o['low_share']:.0f}% of its energy in the lower half of the radii. "
        f"This profile's ({_c['settings']['epochs']} epochs of batches of {_c['settings']['batch_size']} at lr "
        f"{_c['settings']['lr']:g}, {_c['seconds']:.0f} s) kept the mask of epoch {_c['snapshot_epoch']} (the last "
        f"one whose masked accuracy met the original's threshold): mean {_c['mask_mean']:.3f}, "
        f"{100 * _c['low_share']:.0f}% low, a mean |ΔM| of {_c['mean_abs_diff_to_original']:.3f} from the "
        f"original's mask"
        + (f"; a 10-epoch budget gives {_s['mask_mean']:.3f} (|ΔM| {_s['mean_abs_diff_to_original']:.3f})"
           if _s and "mean_abs_diff_to_original" in _s else "")
        + (f"; the original's one step per image for 10 epochs ({_b1['seconds']:.0f} s per mask) gives "
           f"{_b1['mask_mean']:.3f} (|ΔM| {_b1['mean_abs_diff_to_original']:.3f})" if _b1 else "")
        + (f"; larger steps on small batches (lr {min(v['settings']['lr'] for v in _big):g}-"
           f"{max(v['settings']['lr'] for v in _big):g}) drop the masked accuracy to "
           f"{min(v['final_accuracy'] for v in _big):.0f}-{max(v['final_accuracy'] for v in _big):.0f}%" if _big else "")
        + (". So the cpu dataset masks switch off fewer frequencies"
           + (", and keep relatively more high ones," if _c["low_share"] < _o["low_share"] else "")
           + " than the original's schedule would: the comparisons between networks below use one schedule for "
           "all, but their absolute sparsity is not the original's"
           if _c["mask_mean"] - _o["mask_mean"] > 0.02 else
           ". The cpu dataset masks are " + ("sparser than" if _c["mask_mean"] < _o["mask_mean"] - 0.02 else
                                              "about as sparse as") + " the original schedule's")
        + "."))
else:
    ch.glue("dm_schedule", "")

# %% [markdown]
# {glue:text}`dm_schedule`
#
# ## The masks and their differences (Fig. 3)
#
# Top: the centred masks (DC in the middle, low frequencies near the centre). Bottom: the difference of
# each mask to the vanilla network's mask. The differences use a diverging colormap whose centre (white)
# is exactly **zero**: red where the other network keeps more of a frequency than the vanilla network,
# blue where it keeps less.

# %%
titled = {f"({letters[r]}) {r}": masks[r].masks for r in masks}
diffs = maps.mask_differences({r: masks[r].masks for r in masks}, reference="vanilla")
titled_diffs = {f"({letters[r]}−A)": d for r, d in diffs.items()}
ch.figure(plots.dataset_masks_figure(titled, titled_diffs), "fig-dataset-masks",
          "Dataset masks of the five networks (top, centred, DC in the middle) and their differences to the "
          "vanilla network's mask (bottom; white = no difference).",
          alt="Top row: five square masks, bright in the centre. Bottom row: four difference maps in red and blue.")

# %% [markdown]
# **A note on the original figure.** The original code min-max normalised all four differences jointly
# and subtracted 0.5 before drawing them with `coolwarm`. Unless the largest positive and negative
# differences happen to be equal in size, that moves "no difference" away from the colormap's centre.
# Here zero difference is mapped to {glue:text}`zero_shift` after the original's rescaling (it should be
# 0), so regions where the masks agree would not appear white:

# %%
rescaled = maps.minmax_normalised_differences(titled_diffs)
stack = [d for d in diffs.values()]
lo = min(float(d.min()) for d in stack)
hi = max(float(d.max()) for d in stack)
zero_shift = (0.0 - lo) / (hi - lo) - 0.5 if hi > lo else 0.0
ch.glue("zero_shift", f"{zero_shift:+.3f}")
ch.figure(plots.difference_grid(rescaled, vmax=0.5), "fig-original-rescaling",
          "The same differences after the original code's joint min-max rescaling: zero is no longer white.",
          alt="Four difference maps whose background is tinted instead of white.")

# %% [markdown]
# ## Masked accuracy (Table 1)
#
# Accuracy of each network on the {glue:text}`n_val` validation images as they are ("standard") and
# filtered by its own dataset mask ("masked"), over the {glue:text}`n_replicates` training seeds (each seed's
# network with its own mask): mean ± the half-width of the 95% Student-t interval of the mean over seeds, the
# range of the seeds in brackets (`fmask.analysis.stats.replicate_spread`; one seed: its value). The per-seed values
# and counts (images right on $x$ only / on $M(x)$ only, which the claims ledger's paired intervals use) are
# in `table1.json` (`replicates`).

# %%
table1, rows1 = {}, {}
for r, v in rmasks.items():
    rows1[r] = []
    for k, res in enumerate(v):
        row = accuracy.table1_counts(reps[r][k].model, x_val, y_val, res.masks, space=res.params.get("space", "auto"))
        row["mask_mean"] = float(res.masks.mean())
        rows1[r].append(row)
    table1[r] = rows1[r][0]  # replicate 0: the top-level entries (as before)
rep1 = {r: accuracy.table1_replicates(rows, seeds) for r, rows in rows1.items()}
spread = {r: {q: stats.replicate_spread(rep1[r][q]) for q in ("standard", "masked", "mask_mean")} |
          {"difference": stats.replicate_spread([m - s for s, m in zip(rep1[r]["standard"], rep1[r]["masked"])])}
          for r in rep1}
ch.save("table1", {r: {**{k: v[k] for k in ("standard", "masked", "n", "correct", "discordant", "mask_mean")},
                       "replicates": rep1[r],
                       "summary": {q: {k: sp[k] for k in ("n", "mean", "sd", "interval", "min", "max")}
                                   for q, sp in spread[r].items()}}
                   for r, v in table1.items()},
        meta={"n_val": int(len(y_val)), "lam": lam, "replicates": run.n_replicates, "replicate_seeds": seeds,
              "spread": "mean over seeds, 95% Student-t interval of the mean (fmask.analysis.stats.replicate_summary), "
                        "min-max of the seeds"})
converged = {r: [bool(res.converged[0]) for res in v] for r, v in rmasks.items()}
n_conv = sum(sum(c) for c in converged.values())
n_all = sum(len(c) for c in converged.values())
ch.glue("n_converged", f"{n_conv} of {n_all}")
if n_conv == n_all:
    ch.glue("convergence_sentence", "Every mask met the stopping rule within the epoch budget, so these are the "
            "masks at which the trade-off between the loss change and λ·mean(M) settled.")
else:
    ch.glue("convergence_sentence", "The optimisation stopped at its epoch budget before meeting the stopping "
            f"rule for {n_all - n_conv} of the {n_all} masks, so those masks are not the "
            "optimum of the objective (they may keep more frequencies than the paper's Fig. 3 masks), and the "
            "agreement of the two accuracies is partly that of a less changed input.")
ch.save("dataset_masks", {r: {"mask_mean": v["mask_mean"], "steps": int(masks[r].steps[0]),
                              "converged": bool(masks[r].converged[0]),
                              "trace": {k: masks[r].history[k].tolist() for k in ("loss", "accuracy", "sparsity")},
                              "replicates": {"seed": seeds, "steps": [int(m.steps[0]) for m in rmasks[r]],
                                             "converged": converged[r],
                                             "epochs": [len(m.history["loss"]) for m in rmasks[r]],
                                             "snapshot_epoch": [int(m.history["snapshot_epoch"][0])
                                                                for m in rmasks[r]]}}
                          for r, v in table1.items()},
        meta={"space": space, "replicates": run.n_replicates})
ch.table(
    [{"model": f"({letters[r]}) {r}", "standard (%)": stats.spread_text(sp["standard"]),
      "masked (%)": stats.spread_text(sp["masked"]),
      "masked − standard (points)": stats.spread_text(sp["difference"]),
      "mean of M (%)": stats.spread_text(sp["mask_mean"]),
      "converged": f"{sum(converged[r])} of {len(converged[r])}"}
     for r, sp in spread.items()], digits=1)
for r in REGIMES:  # "n/a" for regimes this profile does not train
    sp = spread.get(r)
    ch.glue(f"std_{r}", f"{100 * sp['standard']['mean']:.1f}%" if sp else "n/a")
    ch.glue(f"masked_{r}", f"{100 * sp['masked']['mean']:.1f}%" if sp else "n/a")
    ch.glue(f"kept_{r}", f"{100 * sp['mask_mean']['mean']:.1f}%" if sp else "n/a")

# %% [markdown]
# Averaged over the {glue:text}`n_replicates` seeds, the vanilla network reaches {glue:text}`std_vanilla` on the
# clean images and {glue:text}`masked_vanilla` on the masked ones, with a mask whose mean value is
# {glue:text}`kept_vanilla`. The adversarially trained network: {glue:text}`std_adversarial` vs
# {glue:text}`masked_adversarial` (mask mean {glue:text}`kept_adversarial`). The mask minimises the change of the
# loss plus λ times its mean, so it keeps the network's decisions while removing frequencies the network does not
# need, and the two accuracies should be close. {glue:text}`n_converged` masks converged.
# {glue:text}`convergence_sentence` The claims ledger decides Table 1's claims against the seed spread and each
# seed's image-level interval (chapter 8); the paper's values are compared with these in the report chapter.
