"""Fig. 4 (Sec. 3.1): where the dataset masks of the regimes B-E put their energy relative to the vanilla
network's A, radially (low vs high frequencies) and by direction, over training-seed replicates."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from fmask.analysis import stats
from fmask.analysis.density import TOP_FRACTION
from fmask.claims.base import (CONFIDENCE, FIG4_EQUIVALENCE_MARGIN, INCONCLUSIVE, MIN_REPLICATES, NOT_REPRODUCED,
                               REPRODUCED, Results, equivalence_verdict,
                               as_interval, combine, hull, outcome, sign_verdict, spec)

__all__ = ["specs"]


def _shares(R: Results, kind: str, regime: str) -> np.ndarray | None:
    return R.array("energies", f"{kind}_share", regime)


def _replicates(R: Results, key: str, regime: str) -> np.ndarray | None:
    return R.array("energies", "replicates", regime, key, ndim=2)


def _low_share(share: np.ndarray) -> np.ndarray:
    """Energy share in the lower half of the radial bands (last axis), low = near DC."""
    half = share.shape[-1] // 2
    return share[..., :half].sum(axis=-1)


def _vector(R: Results, key: str, regime: str) -> np.ndarray | None:
    return R.array("energies", "replicates", regime, key)


def _radial_shift(R: Results, regime: str) -> tuple[float | None, Any, int | None, list[str], dict]:
    """Δ_top = low-half share of the top entries (regime) - (vanilla), per seed: mean, t interval over seeds,
    n seeds, missing, details (with the paper's unit-norm energy difference Δ_low per seed beside it)."""
    missing, details = [], {}
    ra, rb = _replicates(R, "radial_share", "vanilla"), _replicates(R, "radial_share", regime)
    if ra is not None and rb is not None and ra.shape == rb.shape:
        details["energy_share_delta_per_seed"] = (_low_share(rb) - _low_share(ra)).tolist()
    ma, mb = _vector(R, "mask_mean", "vanilla"), _vector(R, "mask_mean", regime)
    if ma is not None and mb is not None:
        details["mask_mean_per_seed"] = {"vanilla": ma.tolist(), regime: mb.tolist()}
    ta, tb = _vector(R, "top_low_share", "vanilla"), _vector(R, "top_low_share", regime)
    if ta is None or tb is None or ta.shape != tb.shape:
        missing.append(f"energies.replicates.{{vanilla,{regime}}}.top_low_share (seeds,): the low-half share of "
                       f"each dataset mask's top {100 * TOP_FRACTION:g}% entries, >= {MIN_REPLICATES} seeds")
        return None, None, None, missing, details
    deltas = tb - ta
    summ = stats.replicate_summary(deltas, CONFIDENCE)
    details["per_seed"] = deltas.tolist()
    if summ["n"] < MIN_REPLICATES:
        missing.append(f"energies.replicates: {summ['n']} seeds, need >= {MIN_REPLICATES}")
        return summ["mean"], None, summ["n"], missing, details
    return summ["mean"], summ["interval"], summ["n"], missing, details


def _make_radial(regime: str, sign: int, mode: str = "sign") -> Callable[[Results], dict[str, Any]]:
    """sign +1: the paper reports a low-frequency bias (Δ_top > 0); -1: a high-frequency bias (Δ_top < 0).
    mode "equivalent": the paper reports no clear bias (equivalence within ±FIG4_EQUIVALENCE_MARGIN)."""

    def evaluate(R: Results) -> dict[str, Any]:
        point, iv, n, missing, details = _radial_shift(R, regime)
        if mode == "sign":
            verdict = sign_verdict(iv, sign)
        else:
            verdict = equivalence_verdict(iv, FIG4_EQUIVALENCE_MARGIN)
        return outcome(ours=point, interval=iv, n=n, verdict=verdict, missing=missing, details=details)

    return evaluate


def _tv(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Total-variation distance between share vectors (last axis): the share of energy moved."""
    return 0.5 * np.abs(x - y).sum(axis=-1)


def _anisotropy_one(R: Results, regime: str) -> tuple[Any, Any, Any, str, list[str], dict]:
    """Direction dependence of the angular redistribution regime - vanilla (see the rule text)."""
    missing, details = [], {}
    a, b = _shares(R, "angular", "vanilla"), _shares(R, "angular", regime)
    point = float(_tv(b, a)) if a is not None and b is not None and a.shape == b.shape else None
    if point is not None:
        details["uncorrected_single_seed_tv"] = point
    ra, rb = _replicates(R, "angular_share", "vanilla"), _replicates(R, "angular_share", regime)
    ia, ib = (_replicates(R, "angular_share_isotropic", "vanilla"),
              _replicates(R, "angular_share_isotropic", regime))
    if any(v is None for v in (ra, rb, ia, ib)) or not (ra.shape == rb.shape == ia.shape == ib.shape):
        missing.append(f"energies.replicates.{{vanilla,{regime}}}.angular_share and angular_share_isotropic "
                       f"(seeds, n_bands), >= {MIN_REPLICATES} seeds")
        return point, None, None if point is None else 1, INCONCLUSIVE, missing, details
    k = ra.shape[0]
    if k < MIN_REPLICATES:
        missing.append(f"energies.replicates: {k} seeds, need >= {MIN_REPLICATES}")
        return point, None, k, INCONCLUSIVE, missing, details
    ca, cb = ra - ia, rb - ib  # direction-dependent part of each mask's angular shares
    observed = _tv(cb, ca)  # per seed
    null = [float(_tv(c[i], c[j])) for c in (ca, cb) for i in range(k) for j in range(i + 1, k)]
    summ = stats.replicate_summary(observed, CONFIDENCE)
    bound = float(np.mean(null))  # the typical seed-to-seed distance: does not grow with the number of pairs
    details.update({"per_seed": observed.tolist(), "seed_to_seed_mean": bound})
    iv = summ["interval"]
    verdict = REPRODUCED if iv[0] > bound else NOT_REPRODUCED if iv[1] <= bound else INCONCLUSIVE
    return summ["mean"], iv, k, verdict, missing, details


def _make_anisotropy(regimes: Sequence[str]) -> Callable[[Results], dict[str, Any]]:
    def evaluate(R: Results) -> dict[str, Any]:
        ours, ivs, ns, parts, missing, details = {}, {}, {}, [], [], {}
        for r in regimes:
            point, iv, n, verdict, miss, det = _anisotropy_one(R, r)
            if point is not None:
                ours[r] = point
            if iv is not None:
                ivs[r] = iv
            if n is not None:
                ns[r] = n
            parts.append(verdict)
            missing += miss
            details[r] = {"interval": as_interval(iv), "verdict": verdict, **det}
        one = len(regimes) == 1
        r0 = regimes[0]
        return outcome(ours=(ours.get(r0) if one else ours or None),
                       interval=(ivs.get(r0) if one else hull(list(ivs.values()))),
                       n=(ns.get(r0) if one else ns or None), verdict=combine(parts), missing=missing,
                       details=details)

    return evaluate


def specs() -> list[dict[str, Any]]:
    """The claims of this group, in the paper's order (static text and rule; see :func:`fmask.claims.base.spec`)."""
    top = f"{100 * TOP_FRACTION:g}%"
    half = (f"lower half of the radial bands, read density-fair: Δ_top = the share of the mask's top {top} entries "
            "(by value) that lie in the lower half of the radial bands, minus the vanilla mask's (every mask is "
            "read at the same number of entries, so a denser mask does not gain high frequencies by covering more "
            "of the spectrum; the paper's unit-norm energy difference Δ_low is reported beside it)")
    rep = (f"95% Student-t interval over >= {MIN_REPLICATES} seed replicates (seeds paired across regimes) of "
           f"Δ_top")
    return [
        spec("fig4.adversarial_low_frequency",
             "Adversarial training gives the dataset mask a net bias toward low frequencies (Sec. 3.1, Fig. 3 B-A, "
             "Fig. 4 (B-A) radial).",
             "Fig. 4 (B-A)-radial: net low-frequency bias",
             f"Δ_top for B (adversarial), over the {half}. {rep} excludes 0 and is positive -> "
             "reproduced; excludes 0 and is negative -> not reproduced; otherwise inconclusive.",
             "05_energies", _make_radial("adversarial", +1)),
        spec("fig4.adversarial_direction_dependent",
             "The adversarial redistribution of mask energy is anisotropic, i.e. depends on the direction in "
             "frequency space (Sec. 3.1, Fig. 4 (B-A) angular; abstract).",
             "Fig. 4 (B-A)-angular: anisotropic redistribution",
             "Per seed, the total-variation distance between the direction-dependent angular shares (angular "
             "shares minus those of the ring-averaged, isotropic mask) of B and A. Reproduced if its 95% t "
             f"interval over >= {MIN_REPLICATES} seeds lies above the mean seed-to-seed distance within A and "
             "within B (a null that does not grow with the number of seed pairs); not reproduced if the "
             "interval's upper end is at or below it; otherwise inconclusive.",
             "05_energies", _make_anisotropy(["adversarial"])),
        spec("fig4.scale_low_frequency",
             "Only scale augmentation endows the network with a bias toward low frequencies (Sec. 3.1, "
             "Fig. 4 (C-A) radial; Sec. 1: scale-augmented models show a low-frequency bias).",
             "Fig. 4 (C-A)-radial: low-frequency bias",
             f"Δ_top for C (scale). {rep} excludes 0 and is positive -> reproduced; excludes 0 and is negative "
             "-> not reproduced; otherwise inconclusive.",
             "05_energies", _make_radial("scale", +1)),
        spec("fig4.translate_no_clear_bias",
             "Translation augmentation gives a less clear effect, mixed for mid and low frequencies, i.e. no clear "
             "low-frequency bias (Sec. 3.1, Fig. 4 (D-A) radial).",
             "Fig. 4 (D-A)-radial: mixed behaviour for mid and low frequencies",
             f"Δ_top for D (translate), an equivalence test with a margin fixed in advance: {rep} inside "
             f"[-{FIG4_EQUIVALENCE_MARGIN:g}, +{FIG4_EQUIVALENCE_MARGIN:g}] -> reproduced (no clear bias); entirely "
             "outside it (a clear bias) -> not reproduced; otherwise inconclusive.",
             "05_energies", _make_radial("translate", +1, mode="equivalent")),
        spec("fig4.rotate_high_frequency",
             "Rotation augmentation gives the dataset mask a HIGH-frequency bias (Sec. 3.1: 'Figure 4(E-A)-radial "
             "shows a high frequency bias'; Sec. 1: 'mid-high' frequency bias).",
             "Fig. 4 (E-A)-radial: high-frequency bias",
             f"Δ_top for E (rotate); a high-frequency bias is Δ_top < 0. {rep} excludes 0 "
             "and is negative -> reproduced; excludes 0 and is positive -> not reproduced; otherwise inconclusive.",
             "05_energies", _make_radial("rotate", -1)),
        spec("fig4.augmentation_direction_dependent",
             "For scale, translation and rotation augmentation the redistribution of mask frequencies is "
             "direction dependent (Sec. 3.1, Fig. 4 (C-A), (D-A), (E-A) angular).",
             "Fig. 4 (C-A), (D-A), (E-A)-angular: directionally dependent redistribution",
             "The rule of fig4.adversarial_direction_dependent for each of C, D and E against A; reproduced if "
             "all three are, not reproduced if any is not, otherwise inconclusive.",
             "05_energies", _make_anisotropy(["scale", "translate", "rotate"])),
    ]
