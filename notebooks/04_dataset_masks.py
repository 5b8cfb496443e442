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

profile: str = "cpu"              # profile name (smoke, cpu, paper) or path to a YAML profile
data_root: Optional[str] = None      # Imagenette root; None -> the profile's data.root, else $FMASK_DATA
artifacts_dir: Optional[str] = None  # trained models and masks; None -> $FMASK_ARTIFACTS or ./artifacts
results_dir: str = "results"      # result files of this chapter (fmask.report), relative to the book folder
device: Optional[str] = None         # auto | cpu | cuda; None -> the profile's device

# %% tags=["remove-cell"]
from fmask.book import chapter
ch = chapter.open(profile=profile, data_root=data_root, artifacts_dir=artifacts_dir, results_dir=results_dir, device=device)

# %%
from fmask import analysis, plots

run = ch.run
letters = analysis.PAPER_LETTERS
x_val, y_val = run.val_data()
ch.glue("n_val", len(y_val), ",")

# %%
with run.timed("04_dataset_masks.learn"):
    models = run.models()
    masks = run.dataset_masks()
lam = masks["vanilla"].params["lam"]
ch.glue("lam", f"{lam:g}")
space = masks["vanilla"].params.get("space", "auto")
ch.glue("mask_space", {"normalised": "normalised image (as in the original code)",
                       "pixel": "pixel image (the original code filters the normalised image)"}.get(space, str(space)))
for r, res in masks.items():
    print(f"{letters[r]} {r:>11}: {run.provenance.get('dataset_mask.' + r, 'in memory')}, "
          f"{int(res.steps[0])} steps, converged={bool(res.converged[0])}, mean(M)={float(res.masks.mean()):.3f}")

# %% [markdown]
# ## The masks and their differences (Fig. 3)
#
# Top: the centred masks (DC in the middle, low frequencies near the centre). Bottom: the difference of
# each mask to the vanilla network's mask. The differences use a diverging colormap whose centre (white)
# is exactly **zero**: red where the other network keeps more of a frequency than the vanilla network,
# blue where it keeps less.

# %%
titled = {f"({letters[r]}) {r}": masks[r].masks for r in masks}
diffs = analysis.mask_differences({r: masks[r].masks for r in masks}, reference="vanilla")
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
rescaled = analysis.minmax_normalised_differences(titled_diffs)
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
# filtered by its own dataset mask ("masked"), with the counts behind them (images right on $x$ only / on
# $M(x)$ only) that the claims ledger's paired intervals use.

# %%
table1 = {}
for r in masks:
    table1[r] = analysis.table1_counts(models[r].model, x_val, y_val, masks[r].masks,
                                       space=masks[r].params.get("space", "auto"))
    table1[r]["mask_mean"] = float(masks[r].masks.mean())
ch.save("table1", {r: {k: v[k] for k in ("standard", "masked", "n", "correct", "discordant")}
                   for r, v in table1.items()},
        meta={"n_val": int(len(y_val)), "lam": lam})
converged = {r: bool(masks[r].converged[0]) for r in masks}
n_conv = sum(converged.values())
ch.glue("n_converged", f"{n_conv} of {len(converged)}")
if n_conv == len(converged):
    ch.glue("convergence_sentence", "Every mask met the stopping rule within the step budget, so these are the "
            "masks at which the trade-off between the loss change and λ·mean(M) settled.")
else:
    ch.glue("convergence_sentence", "The optimisation stopped at its step budget before meeting the stopping "
            f"rule for {len(converged) - n_conv} of the {len(converged)} masks, so those masks are not the "
            "optimum of the objective (they may keep more frequencies than the paper's Fig. 3 masks), and the "
            "agreement of the two accuracies is partly that of a less changed input.")
ch.save("dataset_masks", {r: {"mask_mean": v["mask_mean"], "steps": int(masks[r].steps[0]),
                                      "converged": bool(masks[r].converged[0])} for r, v in table1.items()},
        meta={"space": space})
ch.table(
    [{"model": f"({letters[r]}) {r}", "standard (%)": 100 * v["standard"], "masked (%)": 100 * v["masked"],
      "right on x only": v["discordant"]["standard_only"], "right on M(x) only": v["discordant"]["masked_only"],
      "mean of M (%)": 100 * v["mask_mean"], "converged": "yes" if converged[r] else "no"}
     for r, v in table1.items()], digits=1)
for r in analysis.REGIMES:  # "n/a" for regimes this profile does not train
    v = table1.get(r)
    ch.glue(f"std_{r}", f"{100 * v['standard']:.1f}%" if v else "n/a")
    ch.glue(f"masked_{r}", f"{100 * v['masked']:.1f}%" if v else "n/a")
    ch.glue(f"kept_{r}", f"{100 * v['mask_mean']:.1f}%" if v else "n/a")

# %% [markdown]
# The vanilla network reaches {glue:text}`std_vanilla` on the clean images and {glue:text}`masked_vanilla`
# on the masked ones, with a mask whose mean value is {glue:text}`kept_vanilla`. The adversarially trained
# network: {glue:text}`std_adversarial` vs {glue:text}`masked_adversarial` (mask mean
# {glue:text}`kept_adversarial`). The mask minimises the change of the loss plus λ times its mean, so it keeps the
# network's decisions while removing frequencies the network does not need, and the two accuracies should be
# close. {glue:text}`n_converged` masks converged. {glue:text}`convergence_sentence` The paper's values are
# compared with these in the report chapter.
