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
# # 1. Blue shift
#
# *Profile: **{glue:text}`profile`**.*
#
# **Overview.** The paper's Fig. 1 illustrates the *blue shift* described by Christian et al. (2021), the
# paper's motivation rather than one of its findings (Sec. 2.1): pointwise nonlinearities of a network move
# signal energy towards higher frequencies: a pure sinusoid keeps all its energy at its own frequency,
# but after softplus, tanh, ReLU or hardtanh its spectrum gains harmonics. With two input frequencies, the
# output also contains *intermodulation* products (sums and differences of the input frequencies).

# %% tags=["parameters"]
from typing import Optional  # the annotations below are what `papermill --help-notebook` shows

profile: str = "smoke"            # smoke (minutes; the default), cpu (the book), paper, or a YAML path
data_root: Optional[str] = None      # Imagenette root; None -> the profile's data.root, else $FMASK_DATA
artifacts_dir: Optional[str] = None  # trained models and masks; None -> $FMASK_ARTIFACTS or ./artifacts
results_dir: str = "results"      # result files of this chapter (fmask.experiment.results), relative to the book folder
device: Optional[str] = None         # auto | cpu | cuda; None -> the profile's device
n_samples: int = 128              # samples per window
base_freq: int = 4                # cycles per window of the single sinusoid
f1: int = 5                       # intermodulation example: first frequency (cycles per window)
f2: int = 12                      # second frequency

# %% tags=["remove-cell"]
from fmask.book import chapter
ch = chapter.open(profile=profile, data_root=data_root, artifacts_dir=artifacts_dir, results_dir=results_dir, device=device)

# %%
from fmask import plots
from fmask.analysis import blueshift

# %% [markdown]
# ## A sinusoid through four nonlinearities
#
# We sample $s(t) = \sin(2\pi f t)$ with an integer number of periods per window (so the discrete spectrum
# has no leakage: the original notebook used a non-integer number of periods and plotted against sample
# positions rather than frequency) and take the magnitude of its Fourier transform after each activation.

# %%
spec = blueshift.activation_spectra(n=n_samples, base=base_freq)
ch.figure(plots.signals.activation_spectra(spec), "fig-blue-shift",
          "Magnitude spectra of a sinusoid after each activation; the dashed line marks the input frequency.",
          alt="Five stem plots of magnitude against frequency: the identity has one peak at the input "
              "frequency, the nonlinear activations add peaks at its multiples.")

# %%
for name, frac in spec.shifted.items():
    ch.glue_pct(f"shift_{name}", frac, digits=2)
ch.table([{"activation": k, "energy above the input frequency (%)": 100 * v} for k, v in spec.shifted.items()],
         digits=2)

# %% [markdown]
# **What it shows.** The identity keeps {glue:text}`shift_identity` of the energy above the input frequency;
# ReLU moves {glue:text}`shift_relu`, hardtanh (clipped at ±0.3 as in the original)
# {glue:text}`shift_hardtanh`, softplus {glue:text}`shift_softplus` and tanh {glue:text}`shift_tanh`.
# Odd-symmetric activations (tanh, hardtanh) create only odd harmonics; ReLU and softplus also even ones.
#
# ## Intermodulation
#
# For a sum of two sinusoids the nonlinearity mixes them: new components appear at $|f_2 - f_1|$,
# $f_1 + f_2$, $2f_1$, $2f_2$, ... Some of these lie *above* both input frequencies.

# %%
im = blueshift.intermodulation(n=2 * n_samples, f1=f1, f2=f2, activation="relu")
ch.figure(plots.signals.intermodulation(im), "fig-intermodulation",
          "Spectrum of a two-tone signal before and after ReLU; dashed lines mark the low-order "
          "intermodulation frequencies.",
          alt="Two stem plots: the input has two peaks, the ReLU output has additional peaks at the sum, "
              "the difference and the doubles of the input frequencies.")
present = {k: v["present"] for k, v in im["products"].items()}
ch.glue("im_new_count", len(im["new"]))
ch.glue_pct("im_shift", im["shifted"])
ch.glue("im_f1", f1)
ch.glue("im_f2", f2)
ch.save("blue_shift", {
    "n_samples": n_samples, "base_freq": base_freq, "shifted_fraction": spec.shifted,
    "intermodulation": {"f1": f1, "f2": f2, "new_frequencies": im["new"], "products_present": present,
                        "shifted_fraction": im["shifted"]},
})

# %% [markdown]
# **What it shows.** After ReLU the two-tone input with frequencies {glue:text}`im_f1` and
# {glue:text}`im_f2` has {glue:text}`im_new_count` frequency components it did not have before, and
# {glue:text}`im_shift` of its non-DC energy lies above the higher input frequency.
