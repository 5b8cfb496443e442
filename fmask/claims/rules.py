"""Deprecated import path: the names of ``fmask.claims.rules`` are :mod:`fmask.claims`'s. They still resolve
here, with a warning."""
from fmask.infra.deprecation import moved_module

__getattr__, __dir__ = moved_module("fmask.claims.rules")
