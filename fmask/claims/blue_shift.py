"""Fig. 1 (Sec. 2.1): the blue shift of pointwise nonlinearities and their intermodulation products."""
from __future__ import annotations

from typing import Any

from fmask.claims.base import (CHECK, NOT_REPRODUCED, REPRODUCED, SPECTRAL_TOL, Results, outcome, spec)

__all__ = ["specs"]


def _blue_shift(R: Results) -> dict[str, Any]:
    acts = ("softplus", "tanh", "relu", "hardtanh")
    products = ("2f1", "2f2", "f1+f2", "f2-f1")
    shares = {a: R.number("blue_shift", "shifted_fraction", a) for a in acts}
    present = R.get("blue_shift", "intermodulation", "products_present") or {}
    baseline = R.number("blue_shift", "shifted_fraction", "identity") or 0.0
    missing = [f"blue_shift.shifted_fraction.{a}" for a, v in shares.items() if v is None]
    missing += [f"blue_shift.intermodulation.products_present.{p}" for p in products
                if not isinstance(present.get(p), bool)]
    details = {"n_samples": R.count("blue_shift", "n_samples"), "identity_share": baseline}
    if missing:  # deterministic spectra: no sampling, hence no interval and no n
        return outcome(ours={a: v for a, v in shares.items() if v is not None} or None, missing=missing,
                       details=details)
    ok = all(v > baseline + SPECTRAL_TOL for v in shares.values()) and all(present[p] for p in products)
    details["products_present"] = {p: present[p] for p in products}
    return outcome(ours=shares, verdict=REPRODUCED if ok else NOT_REPRODUCED, details=details)


def specs() -> list[dict[str, Any]]:
    """The claims of this group, in the paper's order (static text and rule; see :func:`fmask.claims.base.spec`)."""
    return [
        spec("fig1.blue_shift",
             "Pointwise nonlinearities (softplus, tanh, ReLU, hardtanh) applied to a sinusoid add higher-frequency "
             "components (harmonic distortion, 'blue shift'), and mix two input frequencies (intermodulation) "
             "(Sec. 2.1, Fig. 1).",
             "Fig. 1: spectra gain harmonics; intermodulation products w1±w2, 2w1, 2w2 (Sec. 2.1)",
             "Deterministic: reproduced if each of the four activations leaves more than the identity's share "
             f"(+{SPECTRAL_TOL:g}) of the non-DC energy above the input frequency AND all four intermodulation "
             "products 2f1, 2f2, f1+f2, f2-f1 are present after ReLU; otherwise not reproduced.",
             "01_blue_shift", _blue_shift, kind=CHECK,
             why="mathematics: any pointwise nonlinearity that is not affine adds harmonics and mixes two input "
                 "frequencies, so the computed spectra cannot come out otherwise"),
    ]
