"""Floor 1, the method (Karantzas et al., 2022), readable in four short files.

* :mod:`fmask.core.spectral` -- FFT layout, radial and angular bands, band energies;
* :mod:`fmask.core.mask` -- applying a Fourier mask: x̄ = Re F⁻¹(M ⊙ F x), in pixel or normalised space;
* :mod:`fmask.core.objective` -- the loss exp[(CE(Φ(x̄), y) − CE(Φ(x), y))²] + λ·mean(M) and the stopping rules;
* :mod:`fmask.core.schedule` -- the original code's learning-rate schedules.
"""
