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
# # 2. Data
#
# *Profile: **{glue:text}`profile`**.*
#
# The paper uses five classes of [Imagenette](https://github.com/fastai/imagenette) (a ten-class subset of
# ImageNet), converted to grayscale. This chapter counts the images of the subset the original code
# actually used and of the subset the paper's text describes, shows samples and their Fourier spectra.

# %% tags=["parameters"]
profile = "cpu"          # parameter profile (smoke, cpu, paper or a YAML path)
data_root = None         # Imagenette root; None -> $FMASK_DATA (or the download cache)
artifacts_dir = None     # unused here
results_dir = "results"  # where fmask.report writes this chapter's numbers
seed = 0                 # choice of the sample images
n_spectrum = 64          # validation images per class averaged for the mean spectrum
image_size = None        # None -> the profile's data.image_size

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display
import torch
from myst_nb import glue

from fmask import data, report, spectral
from fmask.profiles import load_profile

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets

cfg = load_profile(profile)
profile_name = report.profile_name(profile)
glue("profile", profile_name, display=False)
size = int(image_size or cfg["data"]["image_size"])
root = data.find_data_root(data_root or cfg["data"].get("root"), download=True)
print(f"profile: {profile_name}; data: {root}; image size {size}")

# %% [markdown]
# ## Which five classes?
#
# Imagenette's folders, sorted by WordNet id, are numbered 0-9. The original code selects folders
# `[1, 3, 4, 5, 6]`; the counts printed in the paper's text are those of the *first five* folders instead.
# Both subsets, counted from the files (nothing decoded):

# %%
counts = {}
rows = []
for subset in ("paper", "first5"):
    wnids = data.resolve_classes(subset)
    counts[subset] = {"classes": [data.CLASS_NAMES[w] for w in wnids], "train": 0, "val": 0, "per_class": {}}
    for split in ("train", "val"):
        _, labels = data.list_split(root, split, subset)
        per = np.bincount(labels, minlength=len(wnids))
        counts[subset][split] = int(per.sum())
        for w, c in zip(wnids, per):
            counts[subset]["per_class"].setdefault(data.CLASS_NAMES[w], {})[split] = int(c)
    for w in wnids:
        name = data.CLASS_NAMES[w]
        rows.append({"subset": subset, "wnid": w, "class": name, **counts[subset]["per_class"][name]})
display(Markdown(report.table_markdown(rows, columns=["subset", "wnid", "class", "train", "val"])))

# %%
for subset in ("paper", "first5"):
    for split in ("train", "val"):
        glue(f"n_{subset}_{split}", f"{counts[subset][split]:,}", display=False)
glue("paper_classes", ", ".join(counts["paper"]["classes"]), display=False)
glue("first5_classes", ", ".join(counts["first5"]["classes"]), display=False)

# %% [markdown]
# The code's subset ({glue:text}`paper_classes`) has {glue:text}`n_paper_train` training and
# {glue:text}`n_paper_val` validation images; every accuracy the original code reports is a fraction of
# those validation images. The paper's text reports the counts of the first five folders
# ({glue:text}`first5_classes`): {glue:text}`n_first5_train` / {glue:text}`n_first5_val`. This book follows
# the code (`classes="paper"`).
#
# ## Samples and their spectra
#
# One validation image per class after the evaluation transform (resize, centre crop, grayscale), and the
# logarithm of the magnitude of its 2-D FFT, centred (DC in the middle).

# %%
wnids = data.resolve_classes(cfg["data"].get("classes", "paper"))
paths, labels = data.list_split(root, "val", cfg["data"].get("classes", "paper"))
labels = np.asarray(labels)
rng = np.random.default_rng(seed)
tf = data.eval_transform(size)
chosen = [int(rng.choice(np.flatnonzero(labels == k))) for k in range(len(wnids))]
imgs = torch.stack([tf(data.decode_image(paths[i], size)) for i in chosen])  # (K, 1, S, S) in [0, 1]
spec = spectral.centered(torch.fft.fft2(imgs).abs()).clamp_min(1e-6).log()

fig, axes = plt.subplots(2, len(wnids), figsize=(2.2 * len(wnids), 4.6))
for k, w in enumerate(wnids):
    axes[0, k].imshow(imgs[k, 0], cmap="gray", vmin=0, vmax=1)
    axes[0, k].set_title(data.CLASS_NAMES[w], fontsize=9)
    axes[1, k].imshow(spec[k, 0], cmap="magma")
for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
axes[0, 0].set_ylabel("image")
axes[1, 0].set_ylabel("log |FFT|")
fig.tight_layout()
plt.show()

# %% [markdown]
# Natural images concentrate their energy at low frequencies. The mean power spectrum over
# {glue:text}`n_spectrum_used` validation images, averaged over rings of equal radius, falls off roughly
# as a power law $1/f^{\alpha}$:

# %%
pick = []
for k in range(len(wnids)):
    idx = np.flatnonzero(labels == k)
    pick += [int(i) for i in rng.choice(idx, size=min(n_spectrum, len(idx)), replace=False)]
batch = torch.stack([tf(data.decode_image(paths[i], size)) for i in pick])
power = (torch.fft.fft2(batch - batch.mean(dim=(-2, -1), keepdim=True)).abs() ** 2).mean(dim=(0, 1))
n_bands = size // 2
bands = spectral.radial_bands(size, size, n_bands)
radial = torch.zeros(n_bands, dtype=torch.float64).index_add_(0, bands.flatten(), spectral.centered(power).flatten().double())
counts_per_band = torch.bincount(bands.flatten(), minlength=n_bands).clamp_min(1)
radial = (radial / counts_per_band).numpy()
freq = np.arange(1, n_bands + 1)
valid = radial > 0
slope = np.polyfit(np.log(freq[valid][1:]), np.log(radial[valid][1:]), 1)[0]
glue("n_spectrum_used", len(pick), display=False)
glue("alpha", f"{-slope:.2f}", display=False)

fig, ax = plt.subplots(figsize=(4.5, 3.2))
ax.loglog(freq, radial)
ax.set_xlabel("radial band (low → high frequency)")
ax.set_ylabel("mean power")
ax.set_title("radially averaged power spectrum")
fig.tight_layout()
plt.show()

# %% [markdown]
# A straight-line fit in log-log coordinates gives $\alpha \approx$ {glue:text}`alpha`.

# %%
report.save_result(
    results_dir,
    "data",
    {
        "root": str(root),
        "image_size": size,
        "subsets": counts,
        "code_folders": list(data.PAPER_CLASSES),
        "text_folders": list(data.FIRST5_CLASSES),
        "spectrum_alpha": float(-slope),
        "n_spectrum_images": len(pick),
    },
    profile=profile_name,
)
