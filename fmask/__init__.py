"""fmask: learn Fourier masks that reveal which input frequencies a trained classifier needs.

Conventions used throughout the package:

* images are float tensors in [0, 1], shaped (N, C, H, W); normalisation lives inside the model wrapper;
* masks are real tensors shaped (N, C, H, W) in ``torch.fft.fft2`` layout (DC at [0, 0]);
  use :func:`fmask.core.spectral.centered` to move DC to the centre for display.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
