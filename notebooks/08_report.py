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
# # 8. Reproduction report
#
# *Profile: **{glue:text}`profile`**.*
#
# Everything on this page is generated from the result files the previous chapters wrote (through
# `fmask.report`) and from the paper's reference values in `fmask/paper_values.yaml`, which list the
# source of every number. Missing values show as "n/a": a paper value that could not be verified from a
# stored source, or a result that this run did not produce.

# %% tags=["parameters"]
profile = "cpu"          # parameter profile (smoke, cpu, paper or a YAML path)
data_root = None         # unused here
artifacts_dir = None     # unused here
results_dir = "results"  # the results the other chapters wrote

# %%
from IPython.display import Markdown, display
from myst_nb import glue

from fmask import report

profile_name = report.profile_name(profile)
glue("profile", profile_name, display=False)
results = report.load_results(results_dir, with_meta=True)
print(f"profile: {profile_name}; result files: {', '.join(sorted(results)) or 'none'}")
other_profiles = sorted({r['meta'].get('profile') for r in results.values()} - {profile_name})
if other_profiles:
    print(f"WARNING: some results were written with other profiles: {other_profiles}")


def fmt(v, digits=1, suffix=""):
    """A number for the text, or 'n/a'."""
    return "n/a" if v is None else f"{v:.{digits}f}{suffix}"


def get(name, *keys):
    """results[name]['values'][k1][k2]..., or None."""
    v = results.get(name, {}).get("values")
    for k in keys:
        if not isinstance(v, dict) or k not in v:
            return None
        v = v[k]
    return v

# %% [markdown]
# ## Paper vs ours: Tables 1-3
#
# Accuracies in percent; *difference* is ours minus the paper's.

# %%
rows = report.paper_vs_ours(results_dir, as_frame=False)
cols = ["table", "row", "column", "paper", "ours", "difference", "source"]
for t in ("table1", "table2", "table3"):
    sub = [r for r in rows if r["table"] == t]
    display(Markdown(f"**{t.replace('table', 'Table ')}**\n\n" + report.table_markdown(sub, columns=cols)))
n_ours = sum(r["ours"] is not None for r in rows)
n_paper = sum(r["paper"] is not None for r in rows)
n_both = sum(r["difference"] is not None for r in rows)
glue("n_cells", len(rows), display=False)
glue("n_ours", n_ours, display=False)
glue("n_paper", n_paper, display=False)
glue("n_both", n_both, display=False)

# %% [markdown]
# Of the {glue:text}`n_cells` cells, this run produced {glue:text}`n_ours`; {glue:text}`n_paper` paper
# values could be traced to a stored source, and {glue:text}`n_both` can be compared directly. The paper's
# Table 3 values above come from the original code's printed output (its `3_Umap.ipynb`), which used
# ResNet18 masks and redrew the random labels on every access (see below).
#
# ## Differences between the paper's text and its code
#
# **1. Classes and split counts.** The original code selects Imagenette folders `[1, 3, 4, 5, 6]`:
# {glue:text}`code_classes`, {glue:text}`code_train` training / {glue:text}`code_val` validation images.
# The paper's text gives {glue:text}`text_train` / {glue:text}`text_val`, the counts of the *first five*
# folders ({glue:text}`text_classes`). Both add up to {glue:text}`code_total` vs {glue:text}`text_total`
# images. This book uses the code's classes.

# %%
subsets = get("data", "subsets") or {}
for key, subset in (("code", "paper"), ("text", "first5")):
    s = subsets.get(subset, {})
    tr, va = s.get("train"), s.get("val")
    glue(f"{key}_train", "n/a" if tr is None else f"{tr:,}", display=False)
    glue(f"{key}_val", "n/a" if va is None else f"{va:,}", display=False)
    glue(f"{key}_total", "n/a" if tr is None or va is None else f"{tr + va:,}", display=False)
    glue(f"{key}_classes", ", ".join(s.get("classes", [])) or "n/a", display=False)

# %% [markdown]
# **2. Effective learning rate of the single-image masks.** The original (`flags.py`,
# `train_single_img_masks.py`) sets the learning rate to {glue:text}`orig_lr` with a one-cycle schedule
# sized for `epochs × steps_per_epoch` = {glue:text}`orig_epochs` × {glue:text}`orig_spe` steps, but steps
# it once per iteration and stops after at most {glue:text}`orig_epochs` iterations, i.e. within the first
# {glue:text}`warmup_share` of the warm-up. The schedule therefore never leaves its warm-up: over those
# iterations the learning rate only moves from {glue:text}`lr_first` to {glue:text}`lr_last`, about
# {glue:text}`lr_ratio` of the nominal {glue:text}`orig_lr`. (Replayed with
# `torch.optim.lr_scheduler.OneCycleLR` below.)

# %%
# The original's settings (flags.py: single_img_mask_lr, single_img_mask_epochs, single_img_mask_schedule;
# train_single_img_masks.py: steps_per_epoch=200, one scheduler step per iteration).
orig = dict(max_lr=0.2, epochs=20000, steps_per_epoch=200, pct_start=0.1)
trace = report.onecycle_lr_trace(orig["max_lr"], epochs=orig["epochs"], steps_per_epoch=orig["steps_per_epoch"],
                                 pct_start=orig["pct_start"], steps_taken=orig["epochs"])
warmup_steps = orig["pct_start"] * orig["epochs"] * orig["steps_per_epoch"]
glue("orig_lr", f"{orig['max_lr']}", display=False)
glue("orig_epochs", f"{orig['epochs']:,}", display=False)
glue("orig_spe", f"{orig['steps_per_epoch']:,}", display=False)
glue("lr_first", f"{trace[0]:.4f}", display=False)
glue("lr_last", f"{trace[-1]:.4f}", display=False)
glue("lr_ratio", f"{100 * max(trace) / orig['max_lr']:.1f}%", display=False)
glue("warmup_share", f"{100 * orig['epochs'] / warmup_steps:.0f}%", display=False)
print(f"lr over the first {len(trace)} steps: {trace[0]:.5f} -> {trace[-1]:.5f} (nominal {orig['max_lr']})")

# %% [markdown]
# **3. In-place binarisation.** The original notebook computed the complement of a mask with a function
# that binarised the mask *in place*; every later use of the "mask" (notably M(X_A) in Table 2) therefore
# used the binarised mask. Our `fmask.mask.complement` returns a new tensor. With the continuous masks,
# M(X_A) is {glue:text}`mxa_cont` (vanilla model); with binarised masks, as the original effectively
# computed it, {glue:text}`mxa_bin`.

# %%
mxa = get("table2", "vanilla", "masked_adversarial")
mxa_b = get("table2", "vanilla", "masked_adversarial_binary")
glue("mxa_cont", fmt(None if mxa is None else 100 * mxa, 1, "%"), display=False)
glue("mxa_bin", fmt(None if mxa_b is None else 100 * mxa_b, 1, "%"), display=False)

# %% [markdown]
# **4. The random-label control.** The original's control dataset drew a new random label every time an
# item was accessed, so the "random labels" changed every epoch and between train and test evaluation;
# that measures an unlearnable, moving target rather than memorisation of a fixed labelling. We use one
# fixed random permutation of the labels. With it, the linear classifier on the masks reaches
# {glue:text}`rl_train` train and {glue:text}`rl_test` test accuracy (true labels: {glue:text}`tl_train` /
# {glue:text}`tl_test`; chance is {glue:text}`chance`).

# %%
for key, row in (("tl", "true_labels"), ("rl", "random_labels")):
    for col in ("train", "test"):
        v = get("table3", row, col)
        glue(f"{key}_{col}", fmt(None if v is None else 100 * v, 1, "%"), display=False)
n_classes = len(get("data", "subsets", "paper", "classes") or []) or None
glue("chance", fmt(None if n_classes is None else 100 / n_classes, 0, "%"), display=False)

# %% [markdown]
# **5. The input of UMAP.** The paper shows UMAP embeddings of the masks, but the original `3_Umap.ipynb`
# feeds UMAP the five-dimensional *outputs of the linear classifier* (its logits), computed over all masks
# (training and test split together). Chapter 7 embeds both the masks themselves and the classifier's
# outputs, and says which is which.
#
# **6. What the mask filters.** The original normalised images in its data loader (mean 0.449, std 0.226) and
# learned masks on the *normalised* images. Here images stay in $[0, 1]$ and the normalisation is the first
# layer of the network, so masks, filters and attacks act on pixels. Since normalisation is affine, the two
# differ only at DC (the image mean): the mask's DC entry scales the mean of the pixels instead of the mean
# of the normalised pixels.
#
# ## This profile vs the paper's settings
#
# Every setting of the profile used for this build that differs from the `paper` profile (the original's
# `flags.py` values), read from the two profile files ("-": not set in that profile; "null": the default,
# e.g. $\epsilon/8$ for a PGD step size, all images for a count):

# %%
from fmask.profiles import load_profile


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


_ours = _flatten(load_profile(profile))
_paper = _flatten(load_profile("paper"))
_absent = object()


def _show(v):
    """Settings as written in the YAML files: '-' = not set in that profile, 'null' = default/automatic."""
    return "-" if v is _absent else "null" if v is None else str(v)


setting_rows = [
    {"setting": k, "this profile": _show(_ours.get(k, _absent)), "paper": _show(_paper.get(k, _absent))}
    for k in sorted(set(_ours) | set(_paper))
    if k != "name" and _ours.get(k, _absent) != _paper.get(k, _absent)
]
glue("n_setting_diffs", len(setting_rows), display=False)
display(Markdown(report.table_markdown(setting_rows, columns=["setting", "this profile", "paper"])
                 if setting_rows else "*None: this build used the paper's settings.*"))

# %% [markdown]
# ## Runtime of every stage
#
# Wall-clock seconds of each notebook of this build (and of finer stages the chapters recorded), and the
# training time of each network (which may come from an earlier run: trained models are reused from the
# artifact store). This page's own runtime and the book build are recorded after it has run, so they appear
# in the next build.

# %%
import re

rt = report.runtime_rows(results_dir)
rt_rows = rt.to_dict("records") if hasattr(rt, "to_dict") else rt
for _r, _v in sorted((get("training") or {}).items()):
    if isinstance(_v, dict) and _v.get("seconds") is not None:
        rt_rows.append({"stage": f"training {_r}",
                        "seconds": float(_v["seconds"]), "minutes": float(_v["seconds"]) / 60,
                        "ok": True, "profile": profile_name})
display(Markdown(report.table_markdown(rt_rows, columns=["stage", "seconds", "minutes", "ok", "profile"])))
# Totals count each piece of work once: whole notebooks, the book build and the training of each network
# (finer stages such as "04_dataset_masks.learn" are parts of their notebook).
_top = [r for r in rt_rows if re.fullmatch(r"\d\d_[a-z0-9_]+|book_build", r["stage"])]
_train = [r for r in rt_rows if r["stage"].startswith("training ")]
glue("runtime_book_min", f"{sum(r['seconds'] for r in _top) / 60:.1f}", display=False)
glue("runtime_train_min", f"{sum(r['seconds'] for r in _train) / 60:.1f}", display=False)
glue("n_stages", len(rt_rows), display=False)

# %% [markdown]
# Executing the notebooks and building the book took {glue:text}`runtime_book_min` minutes; training the
# networks took {glue:text}`runtime_train_min` minutes (as measured when they were trained, on a machine that
# may have been shared).

# %%
report.save_result(
    results_dir,
    "report",
    {"cells": len(rows), "ours": n_ours, "paper": n_paper, "compared": n_both,
     "single_mask_lr": {"first": trace[0], "last": trace[-1]}},
    profile=profile_name,
)
