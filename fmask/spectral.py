"""Deprecated import path: ``fmask.spectral`` is now :mod:`fmask.core.spectral`. Its names still resolve here, with a warning."""
from fmask.infra.deprecation import moved_module

__getattr__, __dir__ = moved_module("fmask.spectral")
