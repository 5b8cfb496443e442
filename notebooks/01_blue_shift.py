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
# The paper's Fig. 1 argues that the pointwise nonlinearities of a network move signal energy towards
# higher frequencies (a *blue shift*): a pure sinusoid keeps all its energy at its own frequency, but after
# softplus, tanh, ReLU or hardtanh its spectrum gains harmonics. With two input frequencies, the output
# also contains *intermodulation* products (sums and differences of the input frequencies).

# %% tags=["parameters"]
profile = "cpu"          # parameter profile (smoke, cpu, paper or a YAML path); this chapter only records it
data_root = None         # unused here
artifacts_dir = None     # unused here
results_dir = "results"  # where fmask.report writes this chapter's numbers
n_samples = 128          # samples per window
base_freq = 4            # cycles per window of the single sinusoid
f1 = 5                   # intermodulation example: first frequency (cycles per window)
f2 = 12                  # second frequency

# %%
import matplotlib.pyplot as plt
from myst_nb import glue

from fmask import blueshift, report

profile_name = report.profile_name(profile)
glue("profile", profile_name, display=False)
print(f"profile: {profile_name}")

# %% [markdown]
# ## A sinusoid through four nonlinearities
#
# We sample $s(t) = \sin(2\pi f t)$ with an integer number of periods per window (so the discrete spectrum
# has no leakage: the original notebook used a non-integer number of periods and plotted against sample
# positions rather than frequency) and plot the magnitude of its Fourier transform after each activation.
# The dashed line marks the input frequency.

# %%
spec = blueshift.activation_spectra(n=n_samples, base=base_freq)
fig = blueshift.plot_activation_spectra(spec)
plt.show()

# %% [markdown]
# The share of (non-DC) energy above the input frequency:

# %%
for name, frac in spec.shifted.items():
    glue(f"shift_{name}", f"{100 * frac:.2f}%", display=False)
    print(f"{name:>9}: {100 * frac:6.2f}% of the energy above f = {base_freq}")

# %% [markdown]
# The identity keeps {glue:text}`shift_identity` of the energy above the input frequency; ReLU moves
# {glue:text}`shift_relu`, hardtanh (clipped at ±0.3 as in the original) {glue:text}`shift_hardtanh`,
# softplus {glue:text}`shift_softplus` and tanh {glue:text}`shift_tanh`. Odd-symmetric activations (tanh,
# hardtanh) create only odd harmonics; ReLU and softplus also even ones.
#
# ## Intermodulation
#
# For a sum of two sinusoids the nonlinearity mixes them: new components appear at $|f_2 - f_1|$,
# $f_1 + f_2$, $2f_1$, $2f_2$, ... Some of these lie *above* both input frequencies.

# %%
im = blueshift.intermodulation(n=2 * n_samples, f1=f1, f2=f2, activation="relu")
fig = blueshift.plot_intermodulation(im)
plt.show()
present = {k: v["present"] for k, v in im["products"].items()}
print("intermodulation products present after ReLU:", present)
glue("im_new_count", len(im["new"]), display=False)
glue("im_shift", f"{100 * im['shifted']:.1f}%", display=False)
glue("im_f1", f1, display=False)
glue("im_f2", f2, display=False)

# %% [markdown]
# After ReLU the two-tone input with frequencies {glue:text}`im_f1` and {glue:text}`im_f2` has
# {glue:text}`im_new_count` frequency components it did not have before, and {glue:text}`im_shift` of its
# non-DC energy lies above the higher input frequency.

# %%
report.save_result(
    results_dir,
    "blue_shift",
    {
        "n_samples": n_samples,
        "base_freq": base_freq,
        "shifted_fraction": spec.shifted,
        "intermodulation": {
            "f1": f1,
            "f2": f2,
            "new_frequencies": im["new"],
            "products_present": present,
            "shifted_fraction": im["shifted"],
        },
    },
    profile=profile_name,
)
