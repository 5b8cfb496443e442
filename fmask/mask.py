"""Deprecated import path: ``fmask.mask`` is now :mod:`fmask.core.mask`. Its names still resolve here, with a warning."""
from fmask.infra.deprecation import moved_module

__getattr__, __dir__ = moved_module("fmask.mask")
