"""The five training regimes of the paper: one home for their names, order, letters and augmentations.

The paper (Sec. 3, Figs. 3-4, Table 1) compares five VGG11-bn models, lettered in this order:

====  ===============  ==============================================================================
 A    ``vanilla``      standard training (random resized crop + horizontal flip only)
 B    ``adversarial``  PGD adversarial training (L_inf, see :mod:`fmask.training.attacks`)
 C    ``scale``        + ``RandomAffine(degrees=0, scale=(0.5, 1.5))``  (original ``train.py``)
 D    ``translate``    + ``RandomAffine(degrees=0, translate=(0.4, 0.4))``
 E    ``rotate``       + ``RandomAffine(degrees=180)``
====  ===============  ==============================================================================

Every module that needs a regime name, the paper's order or a letter imports it from here.
"""
from __future__ import annotations

from typing import Any, Iterable

__all__ = ["REGIMES", "PAPER_LETTERS", "AFFINE", "check_regime", "in_paper_order", "letter"]

#: The five regimes in the paper's order (A-E).
REGIMES: tuple[str, ...] = ("vanilla", "adversarial", "scale", "translate", "rotate")
#: regime -> the paper's letter (Figs. 3-4, Table 1).
PAPER_LETTERS: dict[str, str] = dict(zip(REGIMES, "ABCDE"))
#: regime -> keyword arguments of torchvision's ``RandomAffine`` (None: no affine augmentation).
AFFINE: dict[str, dict[str, Any] | None] = {
    "vanilla": None,
    "adversarial": None,
    "scale": {"degrees": 0.0, "scale": (0.5, 1.5)},
    "translate": {"degrees": 0.0, "translate": (0.4, 0.4)},
    "rotate": {"degrees": 180.0},
}


def check_regime(regime: str) -> str:
    """``regime`` if it is one of :data:`REGIMES`, else ``ValueError`` naming the choices."""
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; choose one of {list(REGIMES)}")
    return regime


def in_paper_order(regimes: Iterable[str]) -> list[str]:
    """The given regimes, checked, de-duplicated and sorted into the paper's order A-E."""
    given = [check_regime(r) for r in regimes]
    return [r for r in REGIMES if r in given]


def letter(regime: str) -> str:
    """The paper's letter of a regime (``vanilla`` -> ``A``)."""
    return PAPER_LETTERS[check_regime(regime)]
