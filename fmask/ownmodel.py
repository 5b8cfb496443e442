"""Deprecated import path: ``fmask.ownmodel`` is now :mod:`fmask.learners.own`. Its names still resolve here, with a warning."""
from fmask.infra.deprecation import moved_module

__getattr__, __dir__ = moved_module("fmask.ownmodel")
