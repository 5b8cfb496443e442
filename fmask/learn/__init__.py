"""Deprecated import path: ``fmask.learn`` is now :mod:`fmask.learners`. Its names still resolve here, with a warning."""
from fmask.infra.deprecation import moved_module

__getattr__, __dir__ = moved_module("fmask.learn")
