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
# # 6. Single-image masks
#
# *Profile: **{glue:text}`profile`**.*
#
# Instead of one mask for the whole dataset, we now learn one mask per image (the paper's Figs. 5-7 and
# Table 2). The images are validation images that the vanilla network (A) classifies correctly and whose PGD
# image $X_A$ (attacking A) A misclassifies (the paper's rule, Sec. 3.2); we also require the adversarially
# trained network (B) to classify them correctly, so that its masks $M_B$ are masks of correctly classified
# images. (The original code's rule differs: it keeps images on which A and B agree, right or wrong, and whose
# attack flips A's correctness, and it scores Table 2 against A's clean prediction.) We learn four kinds of
# masks, all batched: the vanilla network's $M$ for every selected image, the other three for
# {glue:text}`paired_note`:
#
# * $M$ ($M_{N,X}$): the vanilla network's mask of the clean image $X$;
# * $M_B$ ($M_{A,X}$): the adversarially trained network's mask of the same image (what the original code
#   compares with $M$ for its Fig. 7);
# * $M_{X_A}$ ($M_{N,X_A}$): the vanilla network's mask of the adversarial image;
# * $M_{B,X_A}$ ($M_{A,X_A}$, the paper's Fig. 7): the adversarially trained network's mask of the same image
#   attacked *against that network* (same PGD settings). The original code never attacks that network for
#   single-image masks, so we follow the paper: the same selected images (paired with $M$), whether or not
#   the attack fools the robust network; the target is its prediction on the attacked image (as for
#   $M_{X_A}$).
#
# $M'$ is the binary complement of $M$ (1 exactly where $M$ switched a frequency off).

# %% tags=["parameters"]
from typing import Optional  # the annotations below are what `papermill --help-notebook` shows

profile: str = "smoke"            # smoke (minutes; the default), cpu (the book), paper, or a YAML path
data_root: Optional[str] = None      # Imagenette root; None -> the profile's data.root, else $FMASK_DATA
artifacts_dir: Optional[str] = None  # trained models and masks; None -> $FMASK_ARTIFACTS or ./artifacts
results_dir: str = "results"      # result files of this chapter (fmask.experiment.results), relative to the book folder
device: Optional[str] = None         # auto | cpu | cuda; None -> the profile's device
n_bands: Optional[int] = None        # None -> the profile's analysis.n_bands (the original code: 64)
n_pixel_subset: int = 200            # images (seeded, class-balanced) for Table 2 in the pixel convention
n_examples: int = 3                  # seeded examples in Fig. 6

# %% tags=["remove-cell"]
from fmask.book import chapter
ch = chapter.open(profile=profile, data_root=data_root, artifacts_dir=artifacts_dir, results_dir=results_dir, device=device)

# %%
import numpy as np
import torch

from fmask import plots

from fmask.analysis import accuracy, bands, complements

from fmask.analysis import diagnostics

from fmask.analysis import stats

from fmask.experiment import variants
from fmask.core.mask import filter_images, pixel_offset

run = ch.run
n_bands = int(n_bands or ch.setting("analysis", "n_bands", 64))
models = run.models(["vanilla", "adversarial"])

# %% [markdown]
# ## Which images

# %%
with run.timed("06_single_image_masks.select"):
    sel = run.single_image_selection()
c = sel.counts
ch.table([{"criterion": k, "images": v} for k, v in c.items()])

# %%
for k, v in c.items():
    ch.glue(f"count_{k}", v, ",")
ch.glue("pgd_eps", f"{run.pgd_settings()['eps']:.4g}")
ch.glue("criterion", sel.criterion.replace("_", " "))
_cap = ch.setting("selection", "n_images")
ch.glue("selection_cap", (f"a seeded random {sel.counts['selected']:,} of the {sel.counts['eligible']:,} eligible images "
                          f"(`selection.n_images` = {int(_cap):,} keeps this chapter and the next in the budget)")
        if sel.counts.get("eligible", sel.counts["selected"]) > sel.counts["selected"] else "every eligible image")

# %% [markdown]
# Of the {glue:text}`count_validation` validation images, the vanilla network classifies
# {glue:text}`count_vanilla_correct` correctly, the adversarially trained one
# {glue:text}`count_adversarial_correct`, both {glue:text}`count_both_correct`. PGD ($L_\infty$, $\epsilon$ =
# {glue:text}`pgd_eps` in pixel units) fools the vanilla network on {glue:text}`count_candidates` of those;
# {glue:text}`count_selected` images are used here, {glue:text}`selection_cap`, chosen by the rule
# "{glue:text}`criterion`" (the paper's rule plus B correct; a weaker rule is used only when no image meets it,
# which happens with the barely trained networks of the smoke profile).

# %%
with run.timed("06_single_image_masks.learn"):
    sm = run.single_image_masks()
for w, res in sm.items():
    print(f"{w:>11}: {run.provenance.get('single_image_masks.' + w, 'in memory')}, "
          f"converged {int(res.converged.sum())}/{len(res.converged)}, "
          f"median steps {int(res.steps.median())}, mean(M) {float(res.masks.mean()):.3f}")
conv = {w: float(res.converged.float().mean()) for w, res in sm.items()}
pi = run.paired_subset()  # indices into the selection of the images with all four kinds of masks
_np = int(pi.numel())
ch.glue("paired_note", f"all {_np:,} of them" if _np == len(sel.labels) else
        f"a seeded class-balanced {_np:,} of them (`selection.n_paired` = {_np:,}, the time budget), "
        "so every comparison with $M$ below uses the vanilla masks of those images")
ch.glue("converged_vanilla", f"{100 * conv['vanilla']:.0f}%")
att = run.adversarial_attack()
ch.glue("adv_fooled", int(att["fooled"].sum()), ",")

# %% [markdown]
# {glue:text}`converged_vanilla` of the vanilla masks met the original's stopping rule within the step
# budget of this profile; the others stopped at the budget. The attack against the adversarially trained
# network fools it on {glue:text}`adv_fooled` of the {glue:text}`count_selected` images (the images for
# $M_{B,X_A}$).
#
# ## Network diagnostics
#
# A network that is unsure of its answers (high cross-entropy, low max-softmax) lets the mask objective
# remove almost everything at little cost; such masks keep at most the DC entry (the image's mean). We
# count them so that a weak network's collapse is not read as a frequency bias: a mask is *DC-only* when, in
# every channel, no entry but the DC exceeds the threshold (and some channel keeps the DC), *all-zero* when no
# entry does. Two thresholds: the paper's $10^{-8}$ (its rule for $M'$) and 0.05.

# %%
x_val, y_val = run.val_data()
net_diag = {}
for r, tm in models.items():
    net_diag[r] = {"validation": diagnostics.network_diagnostics(tm.model, x_val, y_val),
                   "selected": diagnostics.network_diagnostics(tm.model, sel.images, sel.labels)}
ch.table([{"network": r, "images": part, "n": d["n"], "mean CE (nats)": d["mean_cross_entropy"],
           "mean max-softmax": d["mean_max_softmax"], "accuracy (%)": 100 * d["accuracy"]}
          for r, v in net_diag.items() for part, d in v.items()], digits=3)
mask_diag = {w: {f"{t:g}": diagnostics.degenerate_masks(res.masks, t) for t in diagnostics.DEGENERATE_THRESHOLDS}
             for w, res in sm.items()}
ch.table([{"masks": w, "threshold": t, "n": d["n"], "DC-only": d["dc_only"], "all-zero": d["all_zero"],
           "degenerate (%)": d["degenerate_pct"]} for w, v in mask_diag.items() for t, d in v.items()], digits=1)
_t_hi = f"{diagnostics.DEGENERATE_THRESHOLDS[-1]:g}"
_deg = {w: v[_t_hi]["degenerate_pct"] for w, v in mask_diag.items()}
_worst = max(_deg, key=_deg.get)
ch.glue("diag_ce_van", f"{net_diag['vanilla']['validation']['mean_cross_entropy']:.3f}")
ch.glue("diag_ce_adv", f"{net_diag['adversarial']['validation']['mean_cross_entropy']:.3f}")
ch.glue("diag_conf_van", f"{net_diag['vanilla']['validation']['mean_max_softmax']:.3f}")
ch.glue("diag_conf_adv", f"{net_diag['adversarial']['validation']['mean_max_softmax']:.3f}")
ch.glue("diag_worst", _worst)
ch.glue("diag_worst_pct", f"{_deg[_worst]:.1f}%")
ch.glue("diag_thr", _t_hi)
DEGENERATE_CONCERN = 25.0  # percent: from a quarter of the masks on, collapsed masks dominate the band shares
ch.glue("diag_reading", f"{DEGENERATE_CONCERN:g}% or more, so the band comparisons below are dominated by "
        "collapsed masks and say little about a frequency preference" if _deg[_worst] >= DEGENERATE_CONCERN else
        f"below {DEGENERATE_CONCERN:g}%, so collapsed masks alone do not decide the band comparisons below")

# %% [markdown]
# On the validation set the vanilla network's mean cross-entropy is {glue:text}`diag_ce_van` (mean max-softmax
# {glue:text}`diag_conf_van`), the adversarially trained network's {glue:text}`diag_ce_adv`
# ({glue:text}`diag_conf_adv`). The most degenerate mask set is {glue:text}`diag_worst`:
# {glue:text}`diag_worst_pct` of its masks are DC-only or all-zero at threshold {glue:text}`diag_thr`,
# {glue:text}`diag_reading`.
#
# ## Class masks and single masks (Fig. 5)
#
# Each row is a class: first its *class mask* (one dataset mask learned on that class's validation images
# with the dataset-mask settings, the first column of the paper's Fig. 5), then vanilla single-image masks
# of that class's selected images (a seeded choice).

# %%
names = run.class_names
y = sel.labels
with run.timed("06_single_image_masks.class_masks"):
    class_masks = variants.class_dataset_masks(run, "vanilla")
_present = [k for k in range(len(names)) if bool((y == k).any())]
_n5 = max(1, min(4, min(int((y == k).sum()) for k in _present)))
_g = torch.Generator().manual_seed(run.seed)
_singles5 = []
for k in _present:
    _ik = torch.nonzero(y == k).flatten()
    _singles5.append(sm["vanilla"].masks[_ik[torch.randperm(_ik.numel(), generator=_g)[:_n5]]])
ch.figure(plots.class_masks_figure(torch.cat([class_masks[k].masks for k in _present]), _singles5,
                                   [names[k] for k in _present]), "fig-class-masks",
          "Per class (rows): the class mask (a dataset mask learned on that class's validation images), then "
          "randomly chosen single-image masks of the vanilla network (masks centred).",
          alt="A grid of masks, one row per class; the first column holds the class masks.")

# %% [markdown]
# ## One image, all panels (Fig. 6)
#
# For a few seeded examples: (A) the image $x$, (B) its adversarial image $x_A$, (C) the vanilla mask $M$,
# (D) $M(x)$, (E) $M(x_A)$, (F) the binary complement $M'$, (G) $M'(x)$.

# %%
off = pixel_offset(models["vanilla"].model, sm["vanilla"].params.get("space", "auto"), channels=sel.images.shape[1])
_ex = torch.sort(torch.randperm(len(y), generator=torch.Generator().manual_seed(run.seed))[:n_examples]).values
Xe, XAe, Me = sel.images[_ex], sel.adv_images[_ex], sm["vanilla"].masks[_ex]
Mc = complements.complement_mask(Me)
fig6 = {"(A) x": Xe, "(B) x_A": XAe, "(C) M": Me, "(D) M(x)": filter_images(Xe, Me, offset=off),
        "(E) M(x_A)": filter_images(XAe, Me, offset=off), "(F) M'": Mc, "(G) M'(x)": filter_images(Xe, Mc, offset=off)}
ch.figure(plots.fig6_panels(fig6, col_titles=[names[int(y[i])] for i in _ex]), "fig-single-masks",
          "Seeded examples (columns), the paper's Fig. 6 panels (rows): (A) x, (B) x_A, (C) the vanilla mask M "
          "(centred), (D) M(x), (E) M(x_A), (F) the binary complement M', (G) M'(x). Filtered images are "
          "min-max rescaled for display.",
          alt="A grid with one column per example and seven rows of images and masks.")

# %% [markdown]
# The filtered images leave $[0, 1]$ (the filter does not clip; $M'(x)$ has no DC when $M$ kept it), so
# each is min-max rescaled for display only; the accuracies below use the unscaled filtered images. The masks
# act on the normalised image (the original code's convention, see below), so filtering adds back
# $(1 - M[0,0])\,\mu$.
#
# ## Accuracies (Table 2)
#
# Accuracy of the vanilla network on the {glue:text}`count_selected` images filtered by their own masks,
# $M(X)$, and by the complements, $M'(X)$; on the adversarial images $X_A$; and on the adversarial images
# filtered with the *clean* image's mask, $M(X_A)$. For the adversarially trained network the same with its
# own masks $M_B$ (no adversarial images: they attack the vanilla network), on the {glue:text}`n_paired`
# images that have them.

# %%
t2_counts = {
    "vanilla": accuracy.table2_counts(models["vanilla"].model, sel.images, sel.labels, sm["vanilla"].masks,
                                      sel.adv_images, space=sm["vanilla"].params.get("space", "auto")),
    "adversarial": accuracy.table2_counts(models["adversarial"].model, sel.images[pi], sel.labels[pi],
                                          sm["adversarial"].masks, space=sm["adversarial"].params.get("space", "auto")),
}
ch.save("table2", t2_counts, meta={"n_images": int(len(sel.labels)), "n_images_adversarial": _np})
t2 = {m: {k: v[k] for k in v if k not in ("n", "correct", "discordant", "original")} for m, v in t2_counts.items()}
cols = {"masked": "M(X)", "complement": "M'(X)", "adversarial": "X_A", "masked_adversarial": "M(X_A)",
        "masked_adversarial_binary": "M(X_A), binarised M"}
ch.table(
    [{"model": m, **{cols[k] + " (%)": 100 * a for k, a in v.items()}} for m, v in t2.items()], digits=1)
for m, v in t2.items():
    for k, a in v.items():
        ch.glue(f"t2_{m}_{k}", f"{100 * a:.1f}%")
_m, _c = t2["vanilla"]["masked"], t2["vanilla"]["complement"]
ch.glue("t2_reading", "the frequencies the mask keeps carry more of the decision than those it removes"
        if _m > _c else "on these images the complement-filtered images are classified at least as well, so "
        "this build does not show that the kept frequencies carry the decision")

# %% [markdown]
# The vanilla network keeps {glue:text}`t2_vanilla_masked` accuracy on $M(X)$ and drops to
# {glue:text}`t2_vanilla_complement` on $M'(X)$: {glue:text}`t2_reading` (the claims ledger gives the paired
# interval of the difference). On the
# adversarial images it scores {glue:text}`t2_vanilla_adversarial` (they were selected to fool it); filtering
# them with the clean image's mask brings it to {glue:text}`t2_vanilla_masked_adversarial`.
#
# **Continuous vs binarised masks.** The original notebook computed $M'(X)$ by binarising the mask *in
# place* (every entry above $10^{-8}$ set to 1) before it computed $M(X_A)$, so its $M(X_A)$ used binarised
# masks. Our implementation never modifies a mask in place; both are computed here, on the same images.

# %%
Mv = sm["vanilla"].masks
_space = sm["vanilla"].params.get("space", "auto")
_bin = complements.binarize(Mv)
_oc = accuracy.correct_predictions(models["vanilla"].model, sel.adv_images, sel.labels, Mv, space=_space)
_ob = accuracy.correct_predictions(models["vanilla"].model, sel.adv_images, sel.labels, _bin, space=_space)
_a, _b = int((_oc & _ob).sum()), int((_oc & ~_ob).sum())
_c, _d = int((~_oc & _ob).sum()), int((~_oc & ~_ob).sum())
_n = len(_oc)
_iv = stats.paired_difference_interval(_a, _b, _c, _d)
binarised = {
    "n": _n, "continuous_correct": int(_oc.sum()), "binary_correct": int(_ob.sum()),
    "binary_minus_continuous": (_c - _b) / _n, "newcombe95_continuous_minus_binary": list(_iv),
    "continuous_only": _b, "binary_only": _c,
    "mask_mean_continuous": float(Mv.mean()), "mask_mean_binary": float(_bin.mean()),
    "kept_fraction": float(np.mean(complements.kept_fraction(Mv))),
}
ch.glue_pct("bin_cont", int(_oc.sum()) / _n)
ch.glue_pct("bin_bin", int(_ob.sum()) / _n)
ch.glue("bin_diff", f"{100 * (_c - _b) / _n:+.1f}")
ch.glue("bin_iv", f"[{-100 * _iv[1]:+.1f}, {-100 * _iv[0]:+.1f}]")
ch.glue("bin_mean_c", f"{binarised['mask_mean_continuous']:.3f}")
ch.glue("bin_mean_b", f"{binarised['mask_mean_binary']:.3f}")
ch.glue_pct("bin_kept", binarised["kept_fraction"])
ch.glue("bin_flips", f"{_b} / {_c}")

# %% [markdown]
# Binarising sets every kept entry to 1: the mean mask value rises from {glue:text}`bin_mean_c` to
# {glue:text}`bin_mean_b` (the share of kept entries, {glue:text}`bin_kept`), i.e. the binarised mask passes
# every frequency the mask did not switch off *at full strength*, including all the weakly kept ones. On the
# adversarial images $M(X_A)$ goes from {glue:text}`bin_cont` (continuous) to {glue:text}`bin_bin`
# (binarised): {glue:text}`bin_diff` points (binarised minus continuous; paired 95% interval
# {glue:text}`bin_iv`; images right only with the continuous / only with the binarised mask:
# {glue:text}`bin_flips`). The paper's Table 2 value for $M(X_A)$ came from the original notebook, i.e. from
# binarised masks.
#
# ## Table 2 under both conventions: mask on the normalised vs on the pixel image
#
# The original code normalises the image in its data loader (`loaddata.py`: `transforms.Normalize` in both
# transforms) and applies the mask inside `MaskCore`, i.e. to the *normalised* image; that is fmask's
# default (and every number above). fmask before issue #9 filtered the [0, 1] *pixel* image. The two differ
# only through the DC entry: switching DC off sets the mean of the normalised image to 0 (pixel mean μ) in the
# first, the pixel mean to 0 (a black image) in the second. On a seeded class-balanced subset of the selected
# images we learn the vanilla network's masks again with `space="pixel"` (of the clean and of the attacked
# images) and score Table 2 under both conventions, each mask in its own: every cell with its Wilson 95%
# interval, and the paired difference (pixel − normalised, Newcombe's hybrid score interval for paired
# proportions) on the same images.

# %%
if float(pixel_offset(models["vanilla"].model, sm["vanilla"].params.get("space", "auto"),
                      channels=sel.images.shape[1]).abs().sum()) == 0:
    raise ValueError("the chapter's single masks are not in the normalised convention (single_mask.space="
                     f"{sm['vanilla'].params.get('space')!r}); the comparison below needs them to be")
# the subset must have M_N,X_A masks: drawn from the paired images (positions in them: _sub_p)
_sub_p = variants.balanced_subset(sel.labels[pi], n_pixel_subset, seed=run.seed)
sub = pi[_sub_p]
with run.timed("06_single_image_masks.pixel_masks"):
    pm = variants.pixel_single_masks(run, sub)
t2_conv = variants.convention_table2(
    models["vanilla"].model, sel.images[sub], sel.labels[sub], sel.adv_images[sub],
    {"normalised": sm["vanilla"].masks[sub], "pixel": pm["vanilla"].masks},
    {"normalised": sm["pgd"].masks[_sub_p], "pixel": pm["pgd"].masks})
t2_conv["subset"] = {"n": int(sub.numel()), "seed": run.seed, "per_class": torch.bincount(
    sel.labels[sub], minlength=len(names)).tolist(), "indices_into_selection": sub.tolist()}
t2_conv["degenerate_pixel"] = {w: diagnostics.degenerate_masks(r.masks, diagnostics.DEGENERATE_THRESHOLDS[-1])
                               for w, r in pm.items()}
_cell_names = {"original": "X", "adversarial": "X_A", "masked": "M(X)", "masked_adversarial": "M(X_A)",
               "masked_adversarial_binary": "M(X_A), binarised M", "complement": "M'(X)",
               "pgd_masked_pgd": "M_{X_A}(X_A)"}
ch.table(variants.summary_rows(t2_conv, _cell_names),
         notes=[f"{t2_conv['n']} images (seeded, class-balanced: {t2_conv['subset']['per_class']} per class); "
                "[lo, hi]: Wilson 95% interval; difference: Newcombe paired 95% interval."])
_dm = t2_conv["difference"]["masked"]
_dc = t2_conv["difference"]["complement"]
ch.glue("conv_n", t2_conv["n"], ",")
ch.glue("n_paired", _np, ",")
for _c_ in ("masked", "complement", "masked_adversarial"):
    ch.glue_pct(f"conv_norm_{_c_}", t2_conv["cells"]["normalised"][_c_]["accuracy"])
    ch.glue_pct(f"conv_pix_{_c_}", t2_conv["cells"]["pixel"][_c_]["accuracy"])
_sig = [c for c, d in t2_conv["difference"].items() if d["newcombe95"][0] > 0 or d["newcombe95"][1] < 0]
ch.glue("conv_sig", ", ".join(_cell_names[c] for c in _sig) if _sig else "none of the cells")

# %% [markdown]
# On these {glue:text}`conv_n` images, $M(X)$ scores {glue:text}`conv_norm_masked` with normalised-image
# masks and {glue:text}`conv_pix_masked` with pixel-image masks; $M'(X)$ {glue:text}`conv_norm_complement` vs
# {glue:text}`conv_pix_complement`; $M(X_A)$ {glue:text}`conv_norm_masked_adversarial` vs
# {glue:text}`conv_pix_masked_adversarial`. The paired interval excludes 0 for: {glue:text}`conv_sig`.
#
# ## Adversarially trained vs vanilla masks, band by band (Fig. 7)
#
# For each radial band and angular sector: the share of images whose adversarially trained network's mask
# puts more of its (unit-norm) energy into that band than the vanilla network's mask $M$ does. Top: as the
# paper's caption describes, $M_{B,X_A}$ (adversarially trained network, images attacked against it) vs $M$;
# bottom: what the original code compares, $M_B$ (the same network's masks of the *clean* images) vs $M$.

# %%
Mvp = sm["vanilla"].masks[pi]  # the vanilla masks of the paired images
dom_pr = bands.band_dominance(sm["adversarial_pgd"].masks, Mvp, n_bands, "radial")
dom_pa = bands.band_dominance(sm["adversarial_pgd"].masks, Mvp, n_bands, "angular")
dom_r = bands.band_dominance(sm["adversarial"].masks, Mvp, n_bands, "radial")
dom_a = bands.band_dominance(sm["adversarial"].masks, Mvp, n_bands, "angular")
ch.figure(plots.dominance_comparison({"paper: M_A,X_A vs M_N,X": (dom_pr, dom_pa),
                                      "original code: M_A,X vs M_N,X": (dom_r, dom_a)}), "fig-dominance-adv",
          "Per radial band (left) and angular sector (right): share of images whose adversarially trained "
          "network's mask has more energy in the band than the vanilla mask M. Top: the paper's comparison "
          "(masks of images attacked against the adversarially trained network); bottom: the original code's "
          "(masks of the clean images).",
          alt="Four bar charts of percentages with a dashed line at 50 %, two rows.")

# %% [markdown]
# The same comparison between the vanilla network's masks of the adversarial and of the clean images:

# %%
pdom_r = bands.band_dominance(sm["pgd"].masks, Mvp, n_bands, "radial")
pdom_a = bands.band_dominance(sm["pgd"].masks, Mvp, n_bands, "angular")
ch.figure(plots.band_dominance_bars(pdom_r, pdom_a, ylabel="images with M(X_A) > M(X) (%)"), "fig-dominance-pgd",
          "The same comparison between the vanilla network's masks of the adversarial and of the clean images.",
          alt="Two bar charts of percentages with a dashed line at 50 %.")

# %%
half = n_bands // 2
ch.glue("dom_low", f"{100 * float(dom_pr[:half].mean()):.0f}%")
ch.glue("dom_high", f"{100 * float(dom_pr[half:].mean()):.0f}%")
ch.glue("dom_low_code", f"{100 * float(dom_r[:half].mean()):.0f}%")
ch.glue("dom_high_code", f"{100 * float(dom_r[half:].mean()):.0f}%")
# per-image quantities the claims ledger needs (fig5.masks_sparse, fig7, fig5.texture_like)
per_image = {
    "kept_fraction": {w: complements.kept_fraction(res.masks).tolist() for w, res in sm.items()},
    "low_share": {w: bands.low_frequency_share(res.masks, n_bands).tolist() for w, res in sm.items()},
    # the other kinds' row i belongs to selected image paired_indices[i] (fmask.experiment.run.Run.paired_subset)
    "paired_indices": pi.tolist(),
    # a constant filtered image (e.g. M' of a mask that keeps everything) shares no structure with x: its
    # undefined (NaN) correlation is recorded as 0
    "pixel_correlation": {
        "masked": np.nan_to_num(complements.pixel_correlation(
            sel.images, filter_images(sel.images, Mv, offset=off)), nan=0.0).tolist(),
        "complement": np.nan_to_num(complements.pixel_correlation(
            sel.images, filter_images(sel.images, complements.complement_mask(Mv), offset=off)), nan=0.0).tolist(),
    },
}
ch.glue_pct("kept_vanilla_mean", float(np.mean(per_image["kept_fraction"]["vanilla"])))
_low_v = np.asarray(per_image["low_share"]["vanilla"])[pi.numpy()]
low_diff = np.asarray(per_image["low_share"]["adversarial_pgd"]) - _low_v
low_diff_code = np.asarray(per_image["low_share"]["adversarial"]) - _low_v
ch.glue_pct("low_more_share", float(np.mean(low_diff > 0)), 0)
ch.glue_pct("low_more_share_code", float(np.mean(low_diff_code > 0)), 0)
ch.save(
    "single_image",
    {
        "counts": c,
        "n_paired": _np,
        "converged": conv,
        "mask_mean": {w: float(res.masks.mean()) for w, res in sm.items()},
        "dominance_adversarial_pgd_vs_vanilla": {"radial": dom_pr.tolist(), "angular": dom_pa.tolist()},
        "dominance_adversarial_vs_vanilla": {"radial": dom_r.tolist(), "angular": dom_a.tolist()},
        "dominance_pgd_vs_clean": {"radial": pdom_r.tolist(), "angular": pdom_a.tolist()},
        "n_bands": n_bands,
        "per_image": per_image,
        "adversarial_attack": {"fooled": int(att["fooled"].sum()), "n": int(att["fooled"].numel())},
        "diagnostics": {"networks": net_diag, "degenerate_masks": mask_diag},
        "binarised": binarised,
        "table2_conventions": t2_conv,
        "class_masks": {"mask_mean": {names[k]: float(class_masks[k].masks.mean()) for k in _present},
                        "kept_fraction": {names[k]: float(complements.kept_fraction(class_masks[k].masks)[0])
                                          for k in _present}},
    },
)

# %% [markdown]
# As the paper describes (top row), averaged over the lower half of the radial bands $M_{B,X_A}$ beats $M$
# on {glue:text}`dom_low` of the images, over the upper half on {glue:text}`dom_high`; per image, it has the
# larger share of its energy in the lower half of the radii for {glue:text}`low_more_share` of the images
# (the claims ledger's test). As the original code compares (bottom row, $M_B$ of the clean images):
# {glue:text}`dom_low_code` / {glue:text}`dom_high_code`, and {glue:text}`low_more_share_code` of the images.
# On average a vanilla mask keeps (value above $10^{-8}$, the paper's threshold for $M'$)
# {glue:text}`kept_vanilla_mean` of the frequencies. Read these beside the diagnostics above: DC-only masks
# put all their energy in the lowest band.
