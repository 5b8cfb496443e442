"""A second architecture beside the main one (chapter 11; the paper's "ResNet18 ... qualitatively similar").

The paper (Sec. 2.2) trained VGG11 and ResNet18, found them "comparable" and "qualitatively similar", and shows
only VGG11.
Here the main profile's :class:`fmask.experiment.run.Run` (the VGG run whose cached artifacts chapters 3-6 compute)
is compared with a second :class:`~fmask.experiment.run.Run` built from the same profile with the ``compare``
section's model and training length (:func:`second_profile`). Both runs share data, regimes, optimiser, PGD,
mask settings and seed, and live in the same artifact store: the store keys contain the model and train
sections, so the two never collide (``tests/test_compare.py`` checks it).

For each run :func:`architecture_summary` computes, from cached stages only:

* ``training``: best validation accuracy per regime and the training-time PGD accuracy (vanilla/adversarial);
* ``table1``: accuracy on X and on M(X) with the network's own dataset mask (:func:`fmask.analysis.accuracy.table1_counts`);
* ``energies``: radial energy shares of the dataset masks, differences to the vanilla mask (Fig. 4, radial),
  and Δ_low = low-half radial share minus the vanilla mask's (the claims ledger's quantity);
* ``table2``: the vanilla network's per-image masks on a seeded class-balanced subset
  (:func:`balanced_subset`) of its Table 2 images: accuracy on M(X), M'(X) (complement), X_A and M(X_A),
  with counts and 95% Wilson intervals.

:func:`similarity_verdict` applies the rule fixed in :data:`VERDICT_RULE` (written before any ResNet was trained).
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from fmask.analysis import accuracy, bands

from fmask.analysis import stats
from fmask.experiment.profile_schema import Profile
from fmask.experiment.profiles import apply_overrides, profile_from_mapping
from fmask.data.regimes import PAPER_LETTERS, REGIMES
from fmask.experiment.selection import balanced_subset  # noqa: F401 - re-exported: the subset chapter 11 uses

__all__ = ["second_profile", "second_run", "balanced_subset", "architecture_summary", "accuracy_gaps", "table2_subset",
           "radial_summary", "similarity_items", "similarity_verdict", "VERDICT_RULE", "SIMILAR", "DIFFERENT",
           "MIXED", "RESULTS_SUBDIR", "CONFIDENCE", "SIGN_TOL"]

#: where the second run records its stage run times (a sub-folder, so the main run's runtimes/ are untouched)
RESULTS_SUBDIR = "architectures"
CONFIDENCE = 0.95
#: |value| below this counts as sign 0 (float rounding of equal band shares must not decide a sign)
SIGN_TOL = 1e-9
SIMILAR, MIXED, DIFFERENT = "qualitatively similar", "mixed", "different"
#: the rule, fixed before looking at any result of the second architecture
VERDICT_RULE = (
    "Items computed the same way for both architectures: (1-4) the sign of Δ_low (low-half radial energy share "
    "of the dataset mask minus the vanilla mask's) for B, C, D and E; (5) Table 1 'masked ≈ clean': every "
    "network's |accuracy on M(X) - accuracy on X| is at most the profile's compare.verdict_margin; (6) the "
    "complement drop direction: sign of accuracy on M(X) minus accuracy on M'(X) (vanilla network, Table 2 "
    "subset); (7) the attack reversal direction: sign of accuracy on M(X_A) minus accuracy on X_A. An item "
    "agrees when both architectures give the same sign (a 0, |value| < 1e-9, is its own sign) or the same yes/no. Verdict: all "
    "items agree -> 'qualitatively similar'; more than half disagree -> 'different'; otherwise 'mixed'."
)


# --------------------------------------------------------------------------------------------- runs
def second_profile(profile: Profile | Mapping[str, Any]) -> Profile:
    """The main profile with the ``compare`` section's model, training epochs and dataset-mask epochs.

    ``model = {arch, width_div}`` and ``train.epochs = compare.epochs`` (``dataset_mask.epochs =
    compare.dataset_mask_epochs`` when set); the name becomes ``<name>+<arch>`` (runtime records only; the
    artifact keys do not contain the name). Everything else is unchanged.
    """
    p = profile_from_mapping(profile, strict=False)
    c = p.compare
    over: dict[str, Any] = {"model": c.model_overrides(), "train.epochs": c.epochs, "name": f"{p.name}+{c.arch}"}
    if c.dataset_mask_epochs is not None:
        over["dataset_mask.epochs"] = c.dataset_mask_epochs
    raw = apply_overrides(p, over)
    raw["model"] = c.model_overrides()  # replace (not merge): no option of the main model leaks over
    return profile_from_mapping(raw, "compare.second_profile")


def second_run(run) -> "Any":
    """The second architecture's :class:`fmask.experiment.run.Run`: same data root, store and device as ``run``;
    its stage run times go to ``<run.results_dir>/architectures/`` (:data:`RESULTS_SUBDIR`)."""
    from fmask.experiment.run import Run

    return Run(second_profile(run.profile), data_root=run.data_root, artifacts=run.store,
               results_dir=Path(run.results_dir) / RESULTS_SUBDIR, device=run.device, progress=run.progress)


# ------------------------------------------------------------------------------------------ summaries
def _low_share(share: np.ndarray) -> float:
    return float(share[: share.shape[-1] // 2].sum())


def radial_summary(masks: Mapping[str, Tensor], n_bands: int, reference: str = "vanilla") -> dict[str, Any]:
    """Fig. 4 (radial) for dataset masks ``{regime: (1, C, H, W)}``: ``radial_share`` (n_bands,) per regime,
    ``radial_difference`` (regime minus ``reference``) and ``delta_low`` (low-half share minus the
    reference's; low = the ``n_bands // 2`` bands nearest DC), as plain lists / floats."""
    if reference not in masks:
        raise ValueError(f"reference {reference!r} not among the masks {sorted(masks)}")
    share = {r: bands.band_energies(m, n_bands, "radial")[0].double().numpy() for r, m in masks.items()}
    return {
        "n_bands": int(n_bands),
        "radial_share": {r: v.tolist() for r, v in share.items()},
        "radial_difference": {r: (v - share[reference]).tolist() for r, v in share.items() if r != reference},
        "delta_low": {r: _low_share(v) - _low_share(share[reference]) for r, v in share.items() if r != reference},
    }


def _wilson(k: int, n: int) -> list[float]:
    return [float(v) for v in stats.wilson_interval(int(k), int(n), CONFIDENCE)]


def table2_subset(run, n_images: int, *, learn: bool) -> dict[str, Any]:
    """Table 2 (vanilla network) on a seeded class-balanced subset of ``run``'s single-image selection.

    ``learn=False``: the masks are the run's cached single-image masks of the whole selection
    (:meth:`fmask.experiment.run.Run.single_image_masks`, chapter 6), indexed; ``learn=True``: per-image masks are
    learned for the subset only (profile's ``single_mask`` section, targets as the pipeline's), cached in the
    run's store under ``compare_single_image_masks``. Returns the :func:`fmask.analysis.accuracy.table2_counts`
    entries (fractions, ``n``, ``correct``, ``discordant``) plus ``wilson`` intervals, ``idx`` (validation
    indices), ``criterion`` and the subset's class counts.
    """
    from fmask.learners import MaskResult, PerImageMasks
    from fmask.experiment.stages import MASK_RESULT_IO

    sel = run.single_image_selection()
    sub = balanced_subset(sel.labels, n_images, run.seed)
    targets = sel.predictions if sel.predictions is not None else sel.labels
    model = run.model("vanilla")
    if learn:
        key = {"stage": "compare_single_image_masks", "version": 1, "model": model.key, "selection": sel.params,
               "subset": sub.tolist(), "settings": run.single_mask_params, "seed": run.seed}

        def compute() -> MaskResult:
            learner = PerImageMasks(model.model, **asdict(run.profile.single_mask), seed=run.seed,
                                    device=run.device, progress=run.progress)
            return learner(sel.images[sub], targets[sub], desc="single-image masks (subset)")

        res = run.stage("compare_single_image_masks", "compare_single_image_masks", key, compute, **MASK_RESULT_IO)
        masks, space = res.masks, res.params.get("space", "auto")
    else:
        res = run.single_image_masks(("vanilla",))["vanilla"]
        masks, space = res.masks[sub], res.params.get("space", "auto")
    c = accuracy.table2_counts(model.model, sel.images[sub], sel.labels[sub], masks, sel.adv_images[sub],
                               space=space)
    c["wilson"] = {k: _wilson(v, c["n"]) for k, v in c["correct"].items()}
    c["idx"] = sel.idx[sub].tolist()
    c["criterion"] = sel.criterion
    c["class_counts"] = torch.bincount(sel.labels[sub].long()).tolist()
    c["mask_mean"] = float(masks.mean())
    return c


def accuracy_gaps(first: Mapping[str, Mapping[str, Any]], second: Mapping[str, Mapping[str, Any]],
                  margin: float) -> dict[str, Any]:
    """The paper's premise for comparing architectures ("the performance of the models on the task was
    comparable"), regime by regime: ``first`` / ``second`` map regime -> training metrics with ``val_acc``
    (:func:`architecture_summary`'s ``training``); ``margin`` is the largest gap (fraction) that counts as
    comparable (``compare.verdict_margin``, the margin the verdict uses for masked vs clean accuracy).

    Returns ``{"gaps": regime -> first − second, "within": regimes with |gap| <= margin, "worst": the regime
    of the largest |gap| (None without common regimes), "holds": every common regime within the margin}``."""
    margin = float(margin)
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    gaps = {r: float(first[r]["val_acc"]) - float(second[r]["val_acc"]) for r in first if r in second}
    within = [r for r, g in gaps.items() if abs(g) <= margin]
    worst = max(gaps, key=lambda r: abs(gaps[r])) if gaps else None
    return {"gaps": gaps, "within": within, "worst": worst, "holds": bool(gaps) and len(within) == len(gaps)}


def architecture_summary(run, n_images: int, *, learn_single: bool) -> dict[str, Any]:
    """Everything chapter 11 compares, for one run (cached stages; see the module docstring).

    ``learn_single``: see :func:`table2_subset` (False for the main run: reuse chapter 6's masks).
    Returns ``{"arch", "width_div", "epochs", "training", "table1", "energies", "table2"}`` (JSON-ready).
    """
    p = run.profile
    models = run.models()
    x, y = run.val_data()
    masks = run.dataset_masks()
    training = {}
    for r, tm in models.items():
        m = tm.metrics
        training[r] = {"val_acc": float(m["val_acc"]), "best_epoch": int(m.get("best_epoch", -1)),
                       "seconds": float(m.get("seconds", float("nan")))}
        if "pgd_robust_acc" in m:
            training[r].update(pgd_clean_acc=float(m["pgd_clean_acc"]), pgd_robust_acc=float(m["pgd_robust_acc"]),
                               pgd_n=int(m["pgd_n"]))
    table1 = {}
    for r, res in masks.items():
        t = accuracy.table1_counts(models[r].model, x, y, res.masks, space=res.params.get("space", "auto"))
        t["mask_mean"] = float(res.masks.mean())
        t["converged"] = bool(res.converged[0])
        table1[r] = t
    return {
        "arch": p.model.arch, "width_div": p.model.width_div, "epochs": p.train.epochs,
        "n_parameters": int(sum(q.numel() for q in models["vanilla"].model.parameters())),
        "training": training,
        "table1": table1,
        "energies": radial_summary({r: res.masks for r, res in masks.items()}, p.analysis.n_bands),
        "table2": table2_subset(run, n_images, learn=learn_single),
    }


# -------------------------------------------------------------------------------------------- verdict
def _sign(v: float | None) -> int | None:
    if v is None or not np.isfinite(v):
        return None
    return 0 if abs(v) < SIGN_TOL else int(np.sign(v))


def _items_of(summary: Mapping[str, Any], margin: float) -> dict[str, Any]:
    """The verdict's items for one architecture (signs as -1/0/+1, booleans; None if not computable)."""
    out: dict[str, Any] = {}
    dl = (summary.get("energies") or {}).get("delta_low") or {}
    for r in REGIMES[1:]:
        out[f"delta_low_sign.{PAPER_LETTERS[r]}"] = _sign(dl.get(r))
    t1 = summary.get("table1") or {}
    out["table1_masked_matches_clean"] = (all(abs(v["masked"] - v["standard"]) <= margin for v in t1.values())
                                          if t1 else None)
    t2 = summary.get("table2") or {}
    out["complement_drop_sign"] = (_sign(t2["masked"] - t2["complement"])
                                   if "masked" in t2 and "complement" in t2 else None)
    out["attack_reversal_sign"] = (_sign(t2["masked_adversarial"] - t2["adversarial"])
                                   if "masked_adversarial" in t2 and "adversarial" in t2 else None)
    return out


def similarity_items(first: Mapping[str, Any], second: Mapping[str, Any], margin: float) -> list[dict[str, Any]]:
    """Per item of :data:`VERDICT_RULE`: ``{"item", "first", "second", "agree"}`` (agree None if either is
    missing)."""
    if not 0 <= float(margin) <= 1:
        raise ValueError(f"margin must be a fraction in [0, 1], got {margin!r}")
    a, b = _items_of(first, margin), _items_of(second, margin)
    return [{"item": k, "first": a[k], "second": b[k],
             "agree": None if a[k] is None or b[k] is None else bool(a[k] == b[k])} for k in a]


def similarity_verdict(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """:data:`VERDICT_RULE` on :func:`similarity_items`: ``{"verdict", "n_items", "n_agree", "n_disagree",
    "n_missing", "disagree"}``. Missing items count neither way; with any missing and none disagreeing the
    verdict is ``mixed`` (not every item could be checked)."""
    if not items:
        raise ValueError("no items to judge")
    agree = [i for i in items if i["agree"] is True]
    disagree = [i for i in items if i["agree"] is False]
    missing = [i for i in items if i["agree"] is None]
    if len(agree) == len(items):
        verdict = SIMILAR
    elif len(disagree) > len(items) / 2:
        verdict = DIFFERENT
    else:
        verdict = MIXED
    return {"verdict": verdict, "n_items": len(items), "n_agree": len(agree), "n_disagree": len(disagree),
            "n_missing": len(missing), "disagree": [i["item"] for i in disagree]}
