"""Old import paths that keep working, each through one re-export that warns.

fmask's modules were regrouped by concept (:doc:`ARCHITECTURE`). The import paths that the README and
users' code used before keep working for now: each old module is a stub whose attributes are looked up in
the new home on first access, with a :class:`DeprecationWarning` naming the new path.
"""
from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable

__all__ = ["MOVED", "moved_module"]

#: old module -> new home of its public names (the table the deprecation test walks)
MOVED: dict[str, str] = {
    "fmask.learn": "fmask.learners",
    "fmask.mask": "fmask.core.mask",
    "fmask.spectral": "fmask.core.spectral",
    "fmask.ownmodel": "fmask.learners.own",
    "fmask.claims.rules": "fmask.claims",
}


def moved_module(old: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the stub module ``old``: an attribute is fetched from
    ``MOVED[old]`` and a :class:`DeprecationWarning` says where it lives now; a missing name raises
    :class:`AttributeError` as usual."""
    new = MOVED[old]

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        target = importlib.import_module(new)
        try:
            value = getattr(target, name)
        except AttributeError:
            raise AttributeError(f"module {old!r} has no attribute {name!r}") from None
        warnings.warn(f"{old}.{name} moved to {new}.{name}; import it from there", DeprecationWarning,
                      stacklevel=2)
        return value

    def __dir__() -> list[str]:
        return sorted(getattr(importlib.import_module(new), "__all__", []))

    return __getattr__, __dir__
