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
# **Overview.** The paper uses five classes of [Imagenette](https://github.com/fastai/imagenette) (a ten-class
# subset of ImageNet), converted to grayscale. This chapter counts the images of the subset the original
# code actually used and of the subset the paper's text describes, and shows samples and their Fourier
# spectra.

# %% tags=["parameters"]
from typing import Optional  # the annotations below are what `papermill --help-notebook` shows

profile: str = "smoke"            # smoke (minutes; the default), cpu (the book), paper, or a YAML path
data_root: Optional[str] = None      # Imagenette root; None -> the profile's data.root, else $FMASK_DATA
artifacts_dir: Optional[str] = None  # trained models and masks; None -> $FMASK_ARTIFACTS or ./artifacts
results_dir: str = "results"      # result files of this chapter (fmask.experiment.results), relative to the book folder
device: Optional[str] = None         # auto | cpu | cuda; None -> the profile's device
seed: int = 0                     # choice of the sample images
n_spectrum: int = 64              # validation images per class averaged for the mean spectrum
image_size: Optional[int] = None     # None -> the profile's data.image_size

# %% tags=["remove-cell"]
from fmask.book import chapter
ch = chapter.open(profile=profile, data_root=data_root, artifacts_dir=artifacts_dir, results_dir=results_dir, device=device)

# %%
from fmask import data, plots
from fmask.analysis import datastats

classes = ch.setting("data", "classes", "paper")
size = int(image_size or ch.setting("data", "image_size"))
root = data.find_data_root(data_root or ch.setting("data", "root"), download=True)

# %% [markdown]
# ## Which five classes?
#
# Imagenette's folders, sorted by WordNet id, are numbered 0-9. The original code selects folders
# `[1, 3, 4, 5, 6]`; the counts printed in the paper's text are those of the *first five* folders instead.
# Both subsets, counted from the files (nothing decoded):

# %%
counts = datastats.subset_counts(root)
ch.table([{"subset": s, "class": name, **n} for s, c in counts.items() for name, n in c["per_class"].items()],
         columns=["subset", "class", "train", "val"])
for subset, c in counts.items():
    for split in ("train", "val"):
        ch.glue(f"n_{subset}_{split}", c[split], ",")
    ch.glue(f"{subset}_classes", ", ".join(c["classes"]))

# %% [markdown]
# **What it shows.** The code's subset ({glue:text}`paper_classes`) has {glue:text}`n_paper_train` training
# and {glue:text}`n_paper_val` validation images; every accuracy the original code reports is a fraction of
# those validation images. The paper's text reports the counts of the first five folders
# ({glue:text}`first5_classes`): {glue:text}`n_first5_train` / {glue:text}`n_first5_val`. This book follows
# the code (`classes="paper"`).
#
# ## Samples and their spectra

# %%
imgs, names = datastats.sample_images(root, classes, size, seed=seed)
ch.figure(plots.data.samples_and_spectra(imgs, datastats.log_spectra(imgs), names), "fig-samples",
          "One validation image per class after the evaluation transform (resize, centre crop, grayscale) "
          "and the logarithm of the magnitude of its 2-D FFT, centred (DC in the middle).",
          alt="Top row: five grayscale photographs, one per class. Bottom row: their log spectra, bright at "
              "the centre (low frequencies) and darker towards the edges.")

# %% [markdown]
# Natural images concentrate their energy at low frequencies. The mean power spectrum over
# {glue:text}`n_spectrum_used` validation images, averaged over rings of equal radius, falls off roughly
# as a power law $1/f^{\alpha}$:

# %%
batch = datastats.spectrum_images(root, classes, size, per_class=n_spectrum, seed=seed)
radial = datastats.radial_power_spectrum(batch)
alpha = datastats.power_law_exponent(radial)
ch.glue("n_spectrum_used", len(batch))
ch.glue("alpha", alpha, ".2f")
ch.figure(plots.data.radial_power(radial, alpha), "fig-power-spectrum",
          "Radially averaged power spectrum of the validation images (log-log) with the fitted power law.",
          alt="A falling, nearly straight line on log-log axes with a dashed fitted line on top of it.")
ch.save("data", {"image_size": size, "subsets": counts, "code_folders": list(data.PAPER_CLASSES),
                 "text_folders": list(data.FIRST5_CLASSES), "spectrum_alpha": alpha,
                 "n_spectrum_images": int(len(batch))})

# %% [markdown]
# **What it shows.** A straight-line fit in log-log coordinates gives $\alpha \approx$ {glue:text}`alpha`.
