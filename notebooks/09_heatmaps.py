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
# # 9. Beyond the paper: Fourier masks against Fourier heat maps
#
# *Profile: **{glue:text}`profile`**.*
#
# A Fourier mask asks which frequencies a network **needs**: it switches off as much of the spectrum as it
# can while keeping the network's decisions. A *Fourier heat map* (Yin et al., 2019, "A Fourier Perspective
# on Model Robustness in Computer Vision") asks the opposite question, which frequencies a network is
# **sensitive** to: every test image gets a small perturbation $\varepsilon\, r\, U_{i,j}$ along one real
# Fourier basis image $U_{i,j}$ (unit $L_2$ norm, random sign $r$), and the map shows the error rate for
# every frequency $(i, j)$. Pass-band curves are a third, coarser view: the accuracy on images low-pass or
# high-pass filtered at a radius $r$.
#
# This chapter puts the three side by side for the five networks and measures, per network, whether the
# mask and the heat map rank the radial frequency bands alike. On images where the truth is known (a
# planted-frequency data set), it checks which tool finds the frequencies that carry the class.
#
# **Settings.** Heat maps use {glue:text}`hm_n_images` validation images (a seeded subset, the same for
# every network), $\varepsilon =$ {glue:text}`hm_eps` (pixel units of $[0, 1]$ images; a per-pixel RMS of
# {glue:text}`hm_rms`, close to Yin et al.'s ImageNet setting, 15.7 at 224 px ≈ 0.070) and, to fit the
# time budget, only every {glue:text}`hm_stride`-th frequency along each axis ({glue:text}`hm_n_freq`
# conjugate pairs of {glue:text}`hm_n_all`). The heat maps are therefore drawn on that sub-grid.

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
import math

import torch

from fmask.data.regimes import PAPER_LETTERS, REGIMES

from fmask.analysis import agreement, heatmap, passband, planted
from fmask.plots import heatmaps as hplots

run = ch.run
letters = PAPER_LETTERS
hs = ch.profile.heatmap  # the profile's `heatmap` section
x_val, y_val = run.val_data()
g = torch.Generator().manual_seed(ch.seed)
subset = torch.randperm(len(y_val), generator=g)[: min(hs.n_images, len(y_val))].sort().values
x_hm, y_hm = x_val[subset], y_val[subset]
h, w = x_hm.shape[-2:]
n_freq = heatmap.heatmap_frequencies(h, w, hs.stride, hs.window).shape[0]
r_max = math.ceil(math.hypot(h // 2, w // 2))
radii = torch.linspace(0, r_max, hs.n_radii)
ch.glue("hm_n_images", len(y_hm), ",")
ch.glue("hm_eps", hs.eps, "g")
ch.glue("hm_rms", hs.eps / math.sqrt(h * w), ".3f")
ch.glue("hm_stride", hs.stride)
ch.glue("hm_n_freq", n_freq, ",")
ch.glue("hm_n_all", heatmap.heatmap_frequencies(h, w).shape[0], ",")
ch.glue("hm_n_bands", hs.n_bands)
ch.glue("hm_n_boot", hs.n_bootstrap, ",")
ch.glue("hm_r_max", r_max)

with ch.timed("09_heatmaps.load"):
    models = run.models()
    masks = run.dataset_masks()  # chapter 4's dataset masks (from the artifact store)

# %% [markdown]
# ## The rule, stated before the numbers
#
# For every network we average the mask over {glue:text}`hm_n_bands` radial bands (the mean of $M$ in a
# band: the fraction of the band the mask keeps) and the heat map over the same bands (the mean error of
# the band's evaluated frequencies), and compute Spearman's rank correlation $\rho$ between the two
# profiles. Its 95% interval comes from {glue:text}`hm_n_boot` bootstrap resamples of the images (the mask
# is fixed; only the heat map is re-estimated). The tools **agree** on a network when the whole interval
# lies above 0 (the bands the mask keeps most are those where the network is most sensitive), **disagree**
# when it lies below 0, and the comparison is **undecided** when the interval contains 0.

# %%
results = {}
with ch.timed("09_heatmaps.heatmaps"):
    for r, tm in models.items():
        net = tm.model
        per_img = heatmap.fourier_heat_map(net, x_hm, y_hm, eps=hs.eps, frequencies=hs.stride, window=hs.window,
                                           batch_size=hs.batch_size, seed=ch.seed, progress=False, per_image=True)
        low = passband.pass_band_accuracy(net, x_hm, y_hm, radii, "low", batch_size=hs.batch_size, progress=False)
        high = passband.pass_band_accuracy(net, x_hm, y_hm, radii, "high", batch_size=hs.batch_size, progress=False)
        agree = agreement.band_rank_agreement(masks[r].masks, per_img, hs.n_bands, n_resamples=hs.n_bootstrap,
                                            seed=ch.seed)
        agree["verdict"] = agreement.agreement_verdict(agree["lo"], agree["hi"], agree["rho"])
        results[r] = {"heat": per_img.mean(0), "low": low, "high": high, "clean": float(high[0]), **agree}

# %% [markdown]
# ## Mask, heat map and pass-band curves

# %%
titles = {r: f"({letters[r]}) {r}" for r in results}
ch.figure(hplots.masks_heatmaps_passbands(
    {titles[r]: masks[r].masks for r in results}, {titles[r]: v["heat"] for r, v in results.items()},
    radii.tolist(), {titles[r]: v["low"].tolist() for r, v in results.items()},
    {titles[r]: v["high"].tolist() for r, v in results.items()},
    clean={titles[r]: v["clean"] for r, v in results.items()}),
    "fig-heatmaps",
    "Per network: the dataset mask (top, centred, DC in the middle), the Fourier heat map (middle, error rate "
    "under a Fourier-basis perturbation of each frequency; evaluated sub-grid) and the accuracy on low-pass and "
    "high-pass filtered images against the cut-off radius (bottom; dotted: unfiltered accuracy).",
    alt="Three rows of five panels: square masks, square heat maps, and two accuracy curves per network.")

# %%
ch.figure(hplots.band_profiles({titles[r]: v for r, v in results.items()}), "fig-band-profiles",
          "Radial-band profiles of the mask (mean M per band) and the heat map (mean error per band), each "
          "scaled to [0, 1]; the title gives Spearman's ρ between them.",
          alt="Five small line plots, two lines each, against the radial band index.")

# %%
import numpy as np


def _fmt(v, spec="+.2f"):
    return "n/a" if v is None or v != v else format(v, spec)


def _scaled(v):
    a = np.asarray(v, dtype=float)
    lo, hi = np.nanmin(a), np.nanmax(a)
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


# where the tools disagree most: the band with the largest gap between the two scaled profiles
edges = np.linspace(0, math.hypot(h // 2, w // 2), hs.n_bands + 1)  # the bands of fmask.core.spectral.radial_bands
for v in results.values():
    gap = np.abs(_scaled(v["mask_profile"]) - _scaled(v["heat_profile"]))
    b = int(np.nanargmax(gap)) if np.isfinite(gap).any() else None
    v["gap_band"] = b
    v["gap_radii"] = None if b is None else f"{edges[b]:.1f}–{edges[b + 1]:.1f}"
    v["gap_side"] = None if b is None else ("mask" if _scaled(v["mask_profile"])[b] > _scaled(v["heat_profile"])[b]
                                            else "heat map")


ch.table([{"model": titles[r], "clean acc. (%)": 100 * v["clean"],
           "mean heat-map error (%)": 100 * float(torch.nanmean(v["heat"])),
           "ρ": _fmt(v["rho"]), "95% interval": f"[{_fmt(v['lo'])}, {_fmt(v['hi'])}]", "verdict": v["verdict"],
           "largest gap (radius)": v["gap_radii"] or "n/a", "higher there": v["gap_side"] or "n/a"}
          for r, v in results.items()], digits=1,
         notes=[f"{len(y_hm)} validation images; heat-map error includes the images misclassified without "
                "perturbation (Yin et al.'s definition), so it is at least 100% minus the clean accuracy."])
verdicts = {k: [titles[r] for r, v in results.items() if v["verdict"] == k] for k in ("agree", "disagree", "undecided")}
for k, names in verdicts.items():
    ch.glue(f"n_{k}", len(names))
    ch.glue(f"list_{k}", ", ".join(names) if names else "none")
ch.glue("n_nets", len(results))
for r in REGIMES:  # "n/a" for regimes this profile does not train
    v = results.get(r)
    ch.glue(f"rho_{r}", _fmt(v["rho"]) if v else "n/a")
    ch.glue(f"verdict_{r}", v["verdict"] if v else "n/a")
    ch.glue(f"gap_{r}", v["gap_radii"] if v else None)
    ch.glue(f"gap_side_{r}", v["gap_side"] if v else None)

# %% [markdown]
# By the rule above, the mask and the heat map **agree** on {glue:text}`n_agree` of the
# {glue:text}`n_nets` networks ({glue:text}`list_agree`), **disagree** on {glue:text}`n_disagree`
# ({glue:text}`list_disagree`) and are **undecided** on {glue:text}`n_undecided`
# ({glue:text}`list_undecided`). For the vanilla network $\rho =$ {glue:text}`rho_vanilla`
# ({glue:text}`verdict_vanilla`); for the adversarially trained one $\rho =$
# {glue:text}`rho_adversarial` ({glue:text}`verdict_adversarial`). The last two columns say where the
# two scaled profiles differ most: for the vanilla network at radii {glue:text}`gap_vanilla`, where the
# {glue:text}`gap_side_vanilla` ranks the band higher; for the adversarial one at {glue:text}`gap_adversarial`
# ({glue:text}`gap_side_adversarial` higher).
#
# Agreement is not guaranteed by construction. The mask keeps the frequencies whose *removal* changes the
# loss; the heat map marks the frequencies where an *added* perturbation of fixed norm changes the
# decision. A network can rely on low frequencies (the mask keeps them) while being most easily fooled at
# mid or high frequencies where natural images carry little energy, so a small perturbation is large
# relative to the signal: then the two tools disagree, and both statements are true.

# %% [markdown]
# ## Where the truth is known: planted frequencies
#
# The class of a planted-frequency image (32 px, 4 classes; `fmask.data.synthetic.planted_frequency_dataset`)
# lives only in one planted frequency per class (and its mirror), so the support of
# {glue:text}`pl_k` entries is the ground truth. A small CNN (`fmask.analysis.planted.PlantedNet`, trained here in
# seconds on {glue:text}`pl_train` images) reaches {glue:text}`pl_acc` test accuracy. On
# {glue:text}`pl_test` test images we learn its dataset mask and, on the first {glue:text}`pl_hm_n` of them,
# its full heat map ($\varepsilon = 4$, Yin et al.'s value for 32-px images), and ask how many planted
# entries are among each tool's top $k$ (recall@$k$, `fmask.analysis.agreement.recall_at_k`) for $k$ = the support
# size and multiples of it.

# %%
with ch.timed("09_heatmaps.planted"):
    pl = planted.planted_benchmark(hs.planted_train, hs.planted_test, seed=ch.seed)
    from fmask.learners import learn_masks

    xt, yt = pl["test"]
    # the test suite's settings for this tiny network (the profile's dataset_mask settings are for Imagenette)
    pl_mask = learn_masks(pl["model"], xt, yt, per_image=False, lam=ch.profile.dataset_mask.lam, lr=0.05, steps=12,
                          batch_size=32, patience=3, seed=ch.seed, progress=False).masks[0, 0]
    n_pl_hm = min(hs.n_images, len(yt))
    pl_heat = heatmap.fourier_heat_map(pl["model"], xt[:n_pl_hm], yt[:n_pl_hm], eps=heatmap.YIN_EPS["cifar10"],
                                       batch_size=hs.batch_size, seed=ch.seed, progress=False)
support = pl["support"]
k0 = int(support.sum())
ks = [k0, 2 * k0, 4 * k0, 8 * k0]
recall = {"mask": {k: agreement.recall_at_k(pl_mask, support, k) for k in ks},
          "heat map": {k: agreement.recall_at_k(pl_heat, support, k) for k in ks}}
ch.glue("pl_k", k0)
ch.glue("pl_train", hs.planted_train, ",")
ch.glue("pl_test", hs.planted_test, ",")
ch.glue("pl_hm_n", n_pl_hm)
ch.glue_pct("pl_acc", pl["test_accuracy"])
for tool, key in (("mask", "mask"), ("heat map", "heat")):
    for m, k in zip((1, 2, 4, 8), ks):
        ch.glue(f"pl_{key}_r{m}", recall[tool][k], ".2f")
best = max(recall, key=lambda t: recall[t][k0])
tie = recall["mask"][k0] == recall["heat map"][k0]
ch.glue("pl_winner", "neither tool (a tie)" if tie else f"the {best}")
ch.figure(hplots.planted_comparison(support, pl_mask, pl_heat, recall), "fig-planted",
          "Planted-frequency benchmark: the planted support (centred), the learned dataset mask, the heat map, "
          "and recall@k of each tool (k = support size × 1, 2, 4, 8).",
          alt="Three small square maps with a few bright points, and a plot of recall against k for two tools.")

# %% [markdown]
# At $k$ = the support size ({glue:text}`pl_k`), recall@$k$ is {glue:text}`pl_mask_r1` for the mask and
# {glue:text}`pl_heat_r1` for the heat map, so {glue:text}`pl_winner` recovers the planted frequencies
# best. With $2k$, $4k$, $8k$ entries: mask {glue:text}`pl_mask_r2`, {glue:text}`pl_mask_r4`,
# {glue:text}`pl_mask_r8`; heat map {glue:text}`pl_heat_r2`, {glue:text}`pl_heat_r4`,
# {glue:text}`pl_heat_r8`. The heat map measures sensitivity, and a CNN whose filters are not
# frequency-sharp is also sensitive to the neighbours of the frequencies it uses; the mask's sparsity
# penalty removes everything the decision does not need.

# %%
def _num(v):
    return None if v is None or v != v else float(v)


ch.save("heatmaps", {
    "networks": {r: {"rho": _num(v["rho"]), "lo": _num(v["lo"]), "hi": _num(v["hi"]), "verdict": v["verdict"],
                     "n_undefined": v["n_undefined"], "clean_accuracy": v["clean"],
                     "largest_gap_band": v["gap_band"], "largest_gap_higher": v["gap_side"],
                     "mean_heat_error": float(torch.nanmean(v["heat"])),
                     "mask_profile": [_num(x) for x in v["mask_profile"]],
                     "heat_profile": [_num(x) for x in v["heat_profile"]],
                     "low_pass": v["low"].tolist(), "high_pass": v["high"].tolist()} for r, v in results.items()},
    "radii": radii.tolist(),
    "planted": {"support_size": k0, "test_accuracy": pl["test_accuracy"],
                "recall_mask": {str(k): v for k, v in recall["mask"].items()},
                "recall_heatmap": {str(k): v for k, v in recall["heat map"].items()}},
}, meta={"n_images": len(y_hm), "eps": hs.eps, "stride": hs.stride, "window": hs.window, "n_freq": n_freq,
         "n_bands": hs.n_bands, "n_bootstrap": hs.n_bootstrap, "planted_eps": heatmap.YIN_EPS["cifar10"]})
