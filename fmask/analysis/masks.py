"""Analysis of learned Fourier masks: differences, band energies, masked accuracies, class specificity.

Conventions (see CONTRIBUTING.md):

* images are float tensors in [0, 1], shaped (N, C, H, W);
* masks are real tensors (N, C, H, W) or (C, H, W) in ``torch.fft.fft2`` layout (DC at [0, 0]);
  :func:`fmask.core.spectral.centered` moves DC to the centre for display and band maps;
* accuracies are returned as *fractions in [0, 1]* (the unit :mod:`fmask.experiment.results` stores);
* nothing here mutates its inputs (the original notebook binarised masks in place, which silently
  changed later numbers; :func:`table2_accuracies` reports both the continuous and the binarised value).

* filtering (masked, complement and Table 2 accuracies) uses the learner's convention: with ``space="auto"``
  (default) a model that declares its normalisation (:class:`fmask.models.zoo.Normalized`) has its masks act on the
  normalised image, ``x̄ = Re F⁻¹(M ⊙ F x) + (1 − M[c,0,0])·μ_c`` (:func:`fmask.core.mask.pixel_offset`), as the
  original code does; ``space="pixel"`` filters the pixel image. Pass the profile's mask section's ``space``;
* labels must be class indices the model can output (0..K-1); others raise ``ValueError``.

Regimes and the paper's letters (``A`` vanilla, ``B`` adversarial, ``C`` scale, ``D`` translate, ``E``
rotate) come from :mod:`fmask.data.regimes` (re-exported here as :data:`REGIMES`, :data:`PAPER_LETTERS`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from fmask.core.mask import complement, filter_images, pixel_offset
from fmask.data.regimes import PAPER_LETTERS, REGIMES
from fmask.infra.runtime import model_device
from fmask.core.spectral import band_energy, centered

__all__ = [
    "PAPER_LETTERS",
    "VANILLA_TARGET",
    "LATE_GAIN_PLATEAU",
    "late_gain",
    "late_gain_summary",
    "REGIMES",
    "COMPLEMENT_THRESHOLD",
    "centered_mask",
    "mask_differences",
    "minmax_normalised_differences",
    "band_energies",
    "band_energy_differences",
    "band_dominance",
    "ring_averaged",
    "replicate_band_energies",
    "band_difference_spread",
    "replicate_spread",
    "spread_text",
    "table1_replicates",
    "predict",
    "accuracy",
    "masked_accuracy",
    "binarize",
    "complement_mask",
    "table1_row",
    "table2_accuracies",
    "correct_predictions",
    "paired_counts",
    "table1_counts",
    "table2_counts",
    "kept_fraction",
    "low_frequency_share",
    "pixel_correlation",
    "fixed_permutation",
    "ProbeResult",
    "mask_features",
    "linear_probe",
    "class_specificity",
    "permutation_null",
    "umap_embedding",
]

#: The original's complement threshold: a mask entry counts as "kept" when it exceeds this value.
COMPLEMENT_THRESHOLD: float = 1e-8


# ----------------------------------------------------------------------------------------- helpers
def _as_4d(x: Tensor, what: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"{what} must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"{what} must have shape (N, C, H, W) or (C, H, W); got {tuple(x.shape)}")
    if x.is_complex():
        raise ValueError(f"{what} must be real; got dtype {x.dtype}")
    return x


def centered_mask(mask: Tensor) -> Tensor:
    """Channel-mean of a mask with DC moved to the centre: (N, C, H, W) -> (N, H, W); (C, H, W) -> (H, W)."""
    single = isinstance(mask, Tensor) and mask.dim() == 3
    m = _as_4d(mask, "mask").detach().float().cpu()
    out = centered(m).mean(dim=1)
    return out[0] if single else out


# ------------------------------------------------------------------------------- mask differences
def mask_differences(
    masks: Mapping[str, Tensor], reference: str = "vanilla", order: Sequence[str] | None = None
) -> dict[str, Tensor]:
    """Centred differences ``centered(M_k) - centered(M_reference)`` for every other mask.

    ``masks`` maps a name (regime) to a mask (C, H, W) or (1, C, H, W) in fft2 layout. Returns
    ``{name: (H, W) tensor}`` in ``order`` (default: the mapping's order), excluding ``reference``.
    Values lie in [-1, 1] and a zero difference stays exactly 0 (no rescaling; compare
    :func:`minmax_normalised_differences`).
    """
    if reference not in masks:
        raise ValueError(f"reference {reference!r} is not among the masks {sorted(masks)}")
    names = list(order) if order is not None else list(masks)
    unknown = [n for n in names if n not in masks]
    if unknown:
        raise ValueError(f"order names {unknown} are not among the masks {sorted(masks)}")
    ref = _single_centered(masks[reference], reference)
    out: dict[str, Tensor] = {}
    for name in names:
        if name == reference:
            continue
        m = _single_centered(masks[name], name)
        if m.shape != ref.shape:
            raise ValueError(f"mask {name!r} has shape {tuple(m.shape)}, reference has {tuple(ref.shape)}")
        out[name] = m - ref
    return out


def _single_centered(mask: Tensor, name: str) -> Tensor:
    m = _as_4d(mask, f"mask {name!r}")
    if m.shape[0] != 1:
        raise ValueError(f"mask {name!r} must be a single mask (C, H, W) or (1, C, H, W); got {tuple(m.shape)}")
    return centered_mask(m)[0]


def minmax_normalised_differences(diffs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The original's display of differences: joint min-max scaling to [0, 1], then ``- 0.5``.

    Kept only to show what it does: unless ``max == -min`` it moves zero difference away from 0, so a
    colormap centred at 0 no longer shows "no change" as white. Returns the rescaled (H, W) tensors.
    """
    if not diffs:
        raise ValueError("diffs is empty")
    stack = torch.stack([d.float() for d in diffs.values()])
    lo, hi = stack.min(), stack.max()
    if float(hi - lo) == 0.0:
        scaled = torch.zeros_like(stack)
    else:
        scaled = (stack - lo) / (hi - lo) - 0.5
    return dict(zip(diffs.keys(), scaled))


# ---------------------------------------------------------------------------------- band energies
def band_energies(masks: Tensor, n_bands: int = 64, kind: str = "radial") -> Tensor:
    """Per-band energy fractions of each mask: (N, C, H, W) -> (N, n_bands); each row sums to 1.

    Bands are the radial (rings around DC) or angular (sectors) partitions of the centred spectrum of
    :mod:`fmask.core.spectral`. Entry ``[i, b]`` is the fraction of mask i's energy (squared values, channels
    summed) inside band b, i.e. ``spectral.band_energy(...) ** 2`` (the paper's band "energy" is its
    square root, the L2 norm of the unit-norm mask in the band; both order masks identically).
    """
    if kind not in ("radial", "angular"):
        raise ValueError(f"kind must be 'radial' or 'angular'; got {kind!r}")
    if not isinstance(n_bands, int) or isinstance(n_bands, bool) or n_bands < 1:
        raise ValueError(f"n_bands must be a positive int; got {n_bands!r}")
    m = _as_4d(masks, "masks").detach().float().cpu()
    return band_energy(m, bands=kind, n_bands=n_bands) ** 2


def band_energy_differences(
    masks: Mapping[str, Tensor], reference: str = "vanilla", n_bands: int = 64, kind: str = "radial"
) -> dict[str, np.ndarray]:
    """Per-band energy difference of each mask against ``reference`` (Fig. 4: B-A, C-A, D-A, E-A).

    Returns ``{name: (n_bands,) array}`` of ``energy(M_name) - energy(M_reference)`` (fractions).
    """
    if reference not in masks:
        raise ValueError(f"reference {reference!r} is not among the masks {sorted(masks)}")
    ref = band_energies(_single(masks[reference], reference), n_bands, kind)[0]
    return {
        name: (band_energies(_single(m, name), n_bands, kind)[0] - ref).numpy()
        for name, m in masks.items()
        if name != reference
    }


def ring_averaged(masks: Tensor) -> Tensor:
    """The isotropic version of masks: every frequency replaced by the mean over its ring of equal radius.

    ``masks``: (N, C, H, W) in fft2 layout (DC at [0, 0]). A ring is the set of frequencies of the centred
    spectrum (:func:`fmask.core.spectral.centered`) with the same exact squared distance ``dy² + dx²`` from DC,
    averaged per mask and channel. The result has the mask's radial profile and no direction dependence
    beyond the square grid's own, so ``band_energies(masks, n, "angular") - band_energies(ring_averaged(
    masks), n, "angular")`` is the direction-dependent part of the angular shares that the claims ledger
    (``fig4.*direction_dependent``, its ``angular_share_isotropic``) compares. Returns (N, C, H, W), fft2 layout.
    """
    from fmask.core.spectral import uncentered

    m = _as_4d(masks, "masks").detach().float().cpu()
    h, w = m.shape[-2:]
    dy = torch.arange(h) - h // 2
    dx = torch.arange(w) - w // 2
    r2 = (dy.view(h, 1) ** 2 + dx.view(1, w) ** 2).reshape(-1)
    _, ring = torch.unique(r2, return_inverse=True)
    n_rings = int(ring.max()) + 1
    flat = centered(m).reshape(m.shape[0] * m.shape[1], h * w)
    sums = torch.zeros(flat.shape[0], n_rings).index_add_(1, ring, flat)
    counts = torch.bincount(ring, minlength=n_rings).to(flat.dtype)
    avg = (sums / counts)[:, ring].reshape(m.shape)
    return uncentered(avg)


def replicate_band_energies(masks: Mapping[str, Sequence[Tensor]], n_bands: int = 64) -> dict[str, dict[str, np.ndarray]]:
    """Band-energy shares of every replicate's dataset mask, the ``energies.json`` ``replicates`` arrays.

    ``masks``: regime -> one (1, C, H, W) mask (fft2 layout) per training-seed replicate, in replicate order
    (row ``i`` = seed ``profile.seed + i`` for every regime, so rows are paired across regimes). Every regime
    must have the same number of replicates. Returns regime -> ``{"radial_share", "angular_share",
    "angular_share_isotropic"}``, each a (replicates, n_bands) float array of :func:`band_energies` rows
    (each row sums to 1); ``angular_share_isotropic`` is the angular share of :func:`ring_averaged` masks.
    This is exactly what :mod:`fmask.claims` reads (``energies.replicates.<regime>.<key>``).
    """
    if not masks:
        raise ValueError("masks is empty")
    counts = {r: len(v) for r, v in masks.items()}
    if min(counts.values()) < 1 or len(set(counts.values())) != 1:
        raise ValueError(f"every regime needs the same number (>= 1) of replicate masks; got {counts}")
    out: dict[str, dict[str, np.ndarray]] = {}
    for r, reps in masks.items():
        stack = torch.cat([_single(m, f"{r}[{i}]") for i, m in enumerate(reps)])
        out[r] = {"radial_share": band_energies(stack, n_bands, "radial").numpy(),
                  "angular_share": band_energies(stack, n_bands, "angular").numpy(),
                  "angular_share_isotropic": band_energies(ring_averaged(stack), n_bands, "angular").numpy()}
    return out


def replicate_spread(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> dict:
    """Mean ± spread over training-seed replicates of one quantity (e.g. a network's accuracy per seed).

    Returns ``{"n", "mean", "sd", "interval", "min", "max", "values"}``: ``interval`` is the Student-t
    interval of the mean over seeds (:func:`fmask.analysis.stats.replicate_summary`; ``None`` with one seed), ``min``
    / ``max`` the range of the seeds, ``values`` the per-seed values as floats.
    """
    from fmask.analysis import stats

    x = np.asarray(values, dtype=float).reshape(-1)
    s = stats.replicate_summary(x, confidence)
    iv = None if s["interval"] is None else [float(s["interval"][0]), float(s["interval"][1])]
    return {"n": s["n"], "mean": s["mean"], "sd": s["sd"], "interval": iv, "min": float(x.min()),
            "max": float(x.max()), "values": [float(v) for v in x]}


def late_gain(val_acc: Sequence[float], window: int = 5) -> float | None:
    """How much a training run still gained at its end: the validation accuracy of the last epoch minus the best
    one up to ``window`` epochs before it (fractions; None when the run has ``window`` epochs or fewer).

    Issue #9 asks that the best epoch not be the last one, as a sign that a network is trained out. With the
    original's one-cycle schedule the learning rate anneals to ~0 at the end, so the last epoch is often the
    best by a hair; a late gain near 0 (a plateau) says the same thing without that artefact, and a large one
    says the network was still learning.
    """
    v = [float(a) for a in val_acc]
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if len(v) <= window:
        return None
    return v[-1] - max(v[: len(v) - window])


#: issue #9's validation-accuracy target for the cpu profile's vanilla network (the paper's VGG11-bn reaches
#: 89.56%, paper Table 1); chapter 3 says whether every seed reaches it
VANILLA_TARGET = 0.80
#: a :func:`late_gain` of at most this much (a fraction: 2 points) counts as a plateau
LATE_GAIN_PLATEAU = 0.02


def late_gain_summary(best_epochs: Sequence[int | None], gains: Sequence[float | None], n_epochs: int,
                      plateau: float = LATE_GAIN_PLATEAU) -> dict[str, Any]:
    """Summary over networks of whether training ran out: ``best_epochs`` and ``gains`` (:func:`late_gain`) are
    per network (None where unknown / too short), ``n_epochs`` the schedule's length.

    Returns ``{"n_networks", "best_is_last": networks whose best epoch is the last, "min_gain", "max_gain"
    (None without any gain), "plateau": max gain <= ``plateau`` (None without any gain)}``."""
    if len(best_epochs) != len(gains):
        raise ValueError(f"best_epochs and gains must have one entry per network: {len(best_epochs)} vs {len(gains)}")
    if int(n_epochs) < 1:
        raise ValueError(f"n_epochs must be >= 1, got {n_epochs}")
    g = [float(x) for x in gains if x is not None]
    return {"n_networks": len(gains), "best_is_last": sum(e == int(n_epochs) for e in best_epochs),
            "min_gain": min(g) if g else None, "max_gain": max(g) if g else None,
            "plateau": (max(g) <= plateau) if g else None}


def spread_text(spread: Mapping, scale: float = 100.0, digits: int = 1) -> str:
    """A :func:`replicate_spread` as table text: ``"mean ± h (min–max)"`` with ``h`` the half-width of the
    95% t interval over seeds, values times ``scale`` (100: percent); one seed: just the value."""
    f = f"{{:.{int(digits)}f}}"
    mean = f.format(scale * spread["mean"])
    if spread.get("interval") is None:
        return mean
    half = scale * (spread["interval"][1] - spread["interval"][0]) / 2
    return f"{mean} ± {f.format(half)} ({f.format(scale * spread['min'])}–{f.format(scale * spread['max'])})"


def band_difference_spread(replicates: Mapping[str, Mapping[str, np.ndarray]], reference: str = "vanilla",
                           kind: str = "radial", confidence: float = 0.95) -> dict[str, dict[str, np.ndarray]]:
    """Fig. 4 with spread: per-seed band-share differences of each regime to ``reference`` and their spread.

    ``replicates``: :func:`replicate_band_energies` output. Seeds are paired (row i of every regime is
    seed ``profile.seed + i``), so the difference of seed i is ``share[regime][i] - share[reference][i]``.
    Returns regime (not the reference) -> ``{"per_seed": (k, n_bands), "mean": (n_bands,), "lo": (n_bands,),
    "hi": (n_bands,)}``; ``lo``/``hi`` is the per-band Student-t interval of the mean over the k seeds
    (:func:`fmask.analysis.stats.replicate_summary`), or ``mean`` itself when k = 1 (no spread can be estimated).
    """
    if kind not in ("radial", "angular"):
        raise ValueError(f"kind must be 'radial' or 'angular'; got {kind!r}")
    if reference not in replicates:
        raise ValueError(f"reference {reference!r} is not among the regimes {sorted(replicates)}")
    from fmask.analysis import stats

    key = f"{kind}_share"
    ref = np.asarray(replicates[reference][key], dtype=float)
    out = {}
    for r, v in replicates.items():
        if r == reference:
            continue
        a = np.asarray(v[key], dtype=float)
        if a.shape != ref.shape:
            raise ValueError(f"{r} {key} has shape {a.shape}, {reference} {ref.shape}: replicates must be paired")
        d = a - ref
        mean = d.mean(axis=0)
        lo, hi = mean.copy(), mean.copy()
        if d.shape[0] > 1:
            for b in range(d.shape[1]):
                lo[b], hi[b] = stats.replicate_summary(d[:, b], confidence)["interval"]
        out[r] = {"per_seed": d, "mean": mean, "lo": lo, "hi": hi}
    return out


def table1_replicates(rows: Sequence[Mapping], seeds: Sequence[int]) -> dict:
    """Per-seed Table 1 arrays of one network from its replicates' :func:`table1_counts` rows (+ ``mask_mean``).

    ``rows[i]`` belongs to seed ``seeds[i]`` (``profile.seed + i``). Returns ``{"seed", "standard", "masked",
    "mask_mean", "n", "correct": {"standard", "masked"}, "discordant": {"standard_only", "masked_only"}}``,
    each a list over the replicates (``mask_mean`` only if every row has it): the ``replicates`` entry that
    chapter 4 writes into ``table1.json`` and :mod:`fmask.claims` reads.
    """
    if len(rows) == 0 or len(rows) != len(seeds):
        raise ValueError(f"need one Table 1 row per seed (>= 1); got {len(rows)} rows and {len(seeds)} seeds")
    out = {"seed": [int(s) for s in seeds],
           "standard": [float(r["standard"]) for r in rows], "masked": [float(r["masked"]) for r in rows],
           "n": [int(r["n"]) for r in rows],
           "correct": {k: [int(r["correct"][k]) for r in rows] for k in ("standard", "masked")},
           "discordant": {k: [int(r["discordant"][k]) for r in rows] for k in ("standard_only", "masked_only")}}
    if all("mask_mean" in r for r in rows):
        out["mask_mean"] = [float(r["mask_mean"]) for r in rows]
    return out


def _single(mask: Tensor, name: str) -> Tensor:
    m = _as_4d(mask, f"mask {name!r}")
    if m.shape[0] != 1:
        raise ValueError(f"mask {name!r} must be a single mask; got {tuple(m.shape)}")
    return m


def band_dominance(masks_a: Tensor, masks_b: Tensor, n_bands: int = 64, kind: str = "radial") -> np.ndarray:
    """Fig. 7: fraction of images whose mask ``a`` has more energy than mask ``b`` in each band.

    ``masks_a``, ``masks_b``: (N, C, H, W) masks of the same N images (e.g. adversarially trained vs
    vanilla model). Each mask is normalised to unit L2 norm first (so the comparison is of spectral
    shape, as in the original), then its per-band energies are compared.
    Returns an (n_bands,) array of fractions of images in [0, 1]. Ties (e.g. both masks empty in a band,
    common for sparse single-image masks) count as "not more", as the original's strict ``> 0`` did.
    """
    a = _as_4d(masks_a, "masks_a")
    b = _as_4d(masks_b, "masks_b")
    if a.shape != b.shape:
        raise ValueError(f"masks_a {tuple(a.shape)} and masks_b {tuple(b.shape)} must have the same shape")
    ea = band_energies(a, n_bands, kind)
    eb = band_energies(b, n_bands, kind)
    return (ea > eb).float().mean(dim=0).numpy()


# ----------------------------------------------------------------------------------------- accuracy
def predict(model: nn.Module, images: Tensor, batch_size: int = 128, device: str | torch.device | None = None) -> Tensor:
    """Arg-max predictions of ``model`` (eval mode) on (N, C, H, W) images in [0, 1]; returns (N,) long, CPU."""
    return _predict_checked(model, images, batch_size, device)[0]


def accuracy(
    model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 128, device: str | torch.device | None = None
) -> float:
    """Fraction of ``images`` (N, C, H, W) that ``model`` classifies as ``labels`` (N,)."""
    labels = _labels(labels, images.shape[0])
    if labels.numel() == 0:
        raise ValueError("accuracy of an empty set is undefined")
    preds, n_out = _predict_checked(model, images, batch_size, device)
    _check_label_range(labels, n_out)
    return float((preds == labels).float().mean())


def _labels(labels: Tensor | Sequence[int], n: int) -> Tensor:
    y = torch.as_tensor(labels)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}")
    y = y.long().cpu().reshape(-1)
    if y.numel() != n:
        raise ValueError(f"expected {n} labels, got {y.numel()}")
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"labels must be class indices >= 0, got {int(y.min())}")
    return y


def _check_label_range(y: Tensor, n_classes: int | None) -> None:
    """ValueError when a label is no class the model can output (e.g. label 7 for a 5-class model)."""
    if n_classes is not None and y.numel() and int(y.max()) >= n_classes:
        raise ValueError(f"label {int(y.max())} is out of range for a model with {n_classes} classes (0..{n_classes - 1})")


@torch.no_grad()
def _predict_checked(model: nn.Module, images: Tensor, batch_size: int, device) -> tuple[Tensor, int | None]:
    """(predictions (N,), number of model outputs K) — K from the logits, to check labels against."""
    x = _as_4d(images, "images")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    dev = torch.device(device) if device is not None else model_device(model)
    was_training = model.training
    model.eval()
    preds, k = [], None
    try:
        for i in range(0, x.shape[0], batch_size):
            out = model(x[i : i + batch_size].to(dev))
            k = int(out.shape[1])
            preds.append(out.argmax(dim=1).cpu())
    finally:
        model.train(was_training)
    return (torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)), k


def masked_accuracy(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    masks: Tensor,
    batch_size: int = 128,
    device: str | torch.device | None = None,
    space: str = "auto",
) -> float:
    """Accuracy on images filtered with ``masks`` ((1, C, H, W) dataset mask or (N, C, H, W) per image).

    ``space``: where the mask acts (see the module docstring and :func:`fmask.core.mask.pixel_offset`); use the
    value the masks were learned with (the profile's ``dataset_mask.space`` / ``single_mask.space``).
    """
    x = _as_4d(images, "images")
    m = _as_4d(masks, "masks").to(x.dtype)
    if m.shape[0] not in (1, x.shape[0]) or m.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"masks {tuple(m.shape)} do not fit images {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("accuracy of an empty set is undefined")
    y = _labels(labels, x.shape[0])
    offset = pixel_offset(model, space, channels=x.shape[1])
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        mi = m if m.shape[0] == 1 else m[i : i + batch_size]
        xb = filter_images(x[i : i + batch_size], mi, offset=offset)
        preds, k = _predict_checked(model, xb, batch_size, device)
        _check_label_range(y[i : i + batch_size], k)
        correct += int((preds == y[i : i + batch_size]).sum())
    return correct / x.shape[0]


def binarize(masks: Tensor, threshold: float = COMPLEMENT_THRESHOLD) -> Tensor:
    """A new tensor with ``1`` where ``masks > threshold`` and the original value elsewhere.

    This is what the original's complement did *in place* (``mask[mask > 1e-8] = 1``); here the input is
    left unchanged.
    """
    m = _as_4d(masks, "masks")
    return torch.where(m > threshold, torch.ones_like(m), m)


def complement_mask(masks: Tensor, threshold: float = COMPLEMENT_THRESHOLD) -> Tensor:
    """M': 1 where ``M <= threshold`` (the frequencies the mask switched off), else 0; a new tensor."""
    return complement(_as_4d(masks, "masks"), threshold=threshold)


def table1_row(
    model: nn.Module, images: Tensor, labels: Tensor, mask: Tensor, batch_size: int = 128, space: str = "auto"
) -> dict[str, float]:
    """Table 1 entries for one network: ``{"standard": acc on X, "masked": acc on M(X)}`` (fractions; the
    fraction part of :func:`table1_counts`)."""
    c = table1_counts(model, images, labels, mask, batch_size, space=space)
    return {"standard": c["standard"], "masked": c["masked"]}


def table2_accuracies(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    masks: Tensor,
    adv_images: Tensor | None = None,
    batch_size: int = 128,
    threshold: float = COMPLEMENT_THRESHOLD,
    space: str = "auto",
) -> dict[str, float]:
    """Table 2 for one model's single-image masks (fractions in [0, 1]; inputs are not modified).

    * ``masked``: accuracy on M(X), each image filtered with its own mask;
    * ``complement``: on M'(X), M' the binary complement of M (:func:`complement_mask`);
    * ``adversarial``: on the PGD images X_A (when ``adv_images`` is given);
    * ``masked_adversarial``: on M(X_A), the PGD image filtered with its clean image's continuous mask;
    * ``masked_adversarial_binary``: the same with binarised masks, as the original notebook computed it
      after its complement had overwritten the masks.

    ``space``: where the masks act (:func:`masked_accuracy`); the learner's value (``single_mask.space``).
    The fraction part of :func:`table2_counts` (which adds ``original``, ``n`` and the counts).
    """
    c = table2_counts(model, images, labels, masks, adv_images, batch_size, threshold, space)
    return {k: c[k] for k in _TABLE2_COLUMNS if k in c}


#: the columns :func:`table2_accuracies` reports, in the paper's order
_TABLE2_COLUMNS = ("masked", "complement", "adversarial", "masked_adversarial", "masked_adversarial_binary")


# ------------------------------------------------------------------ counts for the claims ledger
def correct_predictions(
    model: nn.Module,
    images: Tensor,
    labels: Tensor | Sequence[int],
    masks: Tensor | None = None,
    batch_size: int = 128,
    space: str = "auto",
) -> Tensor:
    """(N,) bool: whether ``model`` classifies each image (filtered with ``masks`` when given) as its label.

    ``masks``: None (the images as they are), a (1, C, H, W) dataset mask or (N, C, H, W) per-image masks,
    applied as in :func:`masked_accuracy` (same ``space`` convention). ``mean()`` of the result is the
    accuracy those functions return; the per-image outcomes are what paired intervals need.
    """
    x = _as_4d(images, "images")
    if x.shape[0] == 0:
        raise ValueError("images is empty")
    y = _labels(labels, x.shape[0])
    if masks is None:
        preds, k = _predict_checked(model, x, batch_size, None)
        _check_label_range(y, k)
        return preds == y
    m = _as_4d(masks, "masks").to(x.dtype)
    if m.shape[0] not in (1, x.shape[0]) or m.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"masks {tuple(m.shape)} do not fit images {tuple(x.shape)}")
    offset = pixel_offset(model, space, channels=x.shape[1])
    out = []
    for i in range(0, x.shape[0], batch_size):
        mi = m if m.shape[0] == 1 else m[i : i + batch_size]
        preds, k = _predict_checked(model, filter_images(x[i : i + batch_size], mi, offset=offset), batch_size, None)
        _check_label_range(y[i : i + batch_size], k)
        out.append(preds == y[i : i + batch_size])
    return torch.cat(out)


def paired_counts(outcomes: Mapping[str, Tensor | np.ndarray], pair: tuple[str, str] | None = None) -> dict:
    """Counts behind accuracies measured on the same images: ``{"n", "correct": {name: k}}`` and, for
    ``pair=(a, b)``, ``"discordant": {"a_only": #right on a only, "b_only": #right on b only}``.

    ``outcomes`` maps names to (N,) bool vectors (:func:`correct_predictions`) of equal length. With the two
    correct counts the discordant counts give the full 2x2 table of a paired (McNemar-type) interval
    (:mod:`fmask.claims`). All values are Python ints (JSON-ready).
    """
    if not outcomes:
        raise ValueError("outcomes is empty")
    vecs = {k: np.asarray(v.cpu().numpy() if isinstance(v, Tensor) else v).astype(bool).reshape(-1)
            for k, v in outcomes.items()}
    sizes = {v.size for v in vecs.values()}
    if len(sizes) != 1:
        raise ValueError(f"outcome vectors differ in length: { {k: v.size for k, v in vecs.items()} }")
    out: dict = {"n": int(sizes.pop()), "correct": {k: int(v.sum()) for k, v in vecs.items()}}
    if pair is not None:
        a, b = pair
        if a not in vecs or b not in vecs:
            raise ValueError(f"pair {pair} names an outcome not in {sorted(vecs)}")
        out["discordant"] = {f"{a}_only": int((vecs[a] & ~vecs[b]).sum()),
                             f"{b}_only": int((vecs[b] & ~vecs[a]).sum())}
    return out


def table1_counts(
    model: nn.Module, images: Tensor, labels: Tensor, mask: Tensor, batch_size: int = 128, space: str = "auto"
) -> dict:
    """Table 1 for one network with its counts: ``{"standard", "masked"}`` (fractions, as :func:`table1_row`)
    plus ``"n"``, ``"correct": {"standard", "masked"}`` and ``"discordant": {"standard_only", "masked_only"}``
    (images right on x only / on M(x) only), the paired 2x2 table the claims ledger needs."""
    std = correct_predictions(model, images, labels, None, batch_size)
    msk = correct_predictions(model, images, labels, mask, batch_size, space=space)
    c = paired_counts({"standard": std, "masked": msk}, pair=("standard", "masked"))
    return {"standard": c["correct"]["standard"] / c["n"], "masked": c["correct"]["masked"] / c["n"], **c}


def table2_counts(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    masks: Tensor,
    adv_images: Tensor | None = None,
    batch_size: int = 128,
    threshold: float = COMPLEMENT_THRESHOLD,
    space: str = "auto",
) -> dict:
    """:func:`table2_accuracies` plus ``"original"`` (accuracy on x), ``"n"``, ``"correct"`` per column
    (``original``, ``masked``, ``complement`` and, with ``adv_images``, ``adversarial``, ``masked_adversarial``,
    ``masked_adversarial_binary``) and ``"discordant": {"masked_only", "complement_only"}`` (M(x) vs M^c(x),
    same images). Fractions equal ``correct / n`` exactly."""
    x = _as_4d(images, "images")
    m = _as_4d(masks, "masks")
    if m.shape[0] != x.shape[0]:
        raise ValueError(f"need one mask per image: masks {tuple(m.shape)}, images {tuple(x.shape)}")
    outcomes = {
        "original": correct_predictions(model, x, labels, None, batch_size),
        "masked": correct_predictions(model, x, labels, m, batch_size, space=space),
        "complement": correct_predictions(model, x, labels, complement_mask(m, threshold), batch_size, space=space),
    }
    if adv_images is not None:
        xa = _as_4d(adv_images, "adv_images")
        if xa.shape != x.shape:
            raise ValueError(f"adv_images {tuple(xa.shape)} must match images {tuple(x.shape)}")
        outcomes["adversarial"] = correct_predictions(model, xa, labels, None, batch_size)
        outcomes["masked_adversarial"] = correct_predictions(model, xa, labels, m, batch_size, space=space)
        outcomes["masked_adversarial_binary"] = correct_predictions(model, xa, labels, binarize(m, threshold),
                                                                    batch_size, space=space)
    c = paired_counts(outcomes, pair=("masked", "complement"))
    return {**{k: v / c["n"] for k, v in c["correct"].items()}, **c}


def kept_fraction(masks: Tensor, threshold: float = COMPLEMENT_THRESHOLD) -> np.ndarray:
    """Per mask, the fraction of entries above ``threshold`` (the paper's "kept" frequencies: M^c = 1 where
    M < 1e-8, Sec. 3.2): (N, C, H, W) -> (N,) float64 in [0, 1]."""
    m = _as_4d(masks, "masks")
    return (m > threshold).reshape(m.shape[0], -1).double().mean(dim=1).numpy()


def low_frequency_share(masks: Tensor, n_bands: int) -> np.ndarray:
    """Per mask, the share of its energy in the lower half (``n_bands // 2``) of the ``n_bands`` radial bands
    of :func:`band_energies`: (N, C, H, W) -> (N,) in [0, 1] (Fig. 7's comparison as one number per mask)."""
    if int(n_bands) < 2:
        raise ValueError(f"n_bands must be >= 2 for a lower half; got {n_bands}")
    e = band_energies(_as_4d(masks, "masks"), int(n_bands), "radial")
    return e[:, : int(n_bands) // 2].sum(dim=1).double().numpy()


def pixel_correlation(images: Tensor, filtered: Tensor) -> np.ndarray:
    """Per image, the Pearson correlation of the pixels of ``images[i]`` and ``filtered[i]`` (all channels
    flattened): (N, C, H, W) twice -> (N,) in [-1, 1]; NaN where either image is constant."""
    x, f = _as_4d(images, "images"), _as_4d(filtered, "filtered")
    if x.shape != f.shape:
        raise ValueError(f"images {tuple(x.shape)} and filtered {tuple(f.shape)} differ in shape")
    a = x.reshape(x.shape[0], -1).double()
    b = f.reshape(f.shape[0], -1).double()
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    den = a.norm(dim=1) * b.norm(dim=1)
    r = (a * b).sum(dim=1) / den
    return torch.where(den > 0, r, torch.full_like(r, float("nan"))).numpy()


# -------------------------------------------------------------------------------- class specificity
def fixed_permutation(labels: Tensor | np.ndarray | Sequence[int], seed: int) -> np.ndarray:
    """A random permutation of ``labels`` that depends only on ``seed`` (the same on every call).

    The original drew a fresh random label on every dataset access, so the "random labels" changed
    from epoch to epoch; a fixed permutation keeps the class balance and is a proper control.
    """
    y = np.asarray(labels).reshape(-1)
    if y.size == 0:
        raise ValueError("labels is empty")
    rng = np.random.default_rng(int(seed))
    return y[rng.permutation(y.size)].copy()


@dataclass
class ProbeResult:
    """Outcome of :func:`linear_probe`; accuracies are fractions in [0, 1].

    ``outputs``: (N, K) decision values of the fitted classifier for *all* N samples (what the original
    fed to UMAP); ``labels``: the (N,) labels it was trained on; ``train_idx``/``test_idx``: the split.
    """

    train_accuracy: float
    test_accuracy: float
    chance: float
    labels: np.ndarray
    outputs: np.ndarray
    train_idx: np.ndarray
    test_idx: np.ndarray
    params: dict = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        """``{"train", "test", "chance"}`` as stored in the ``table3`` result."""
        return {"train": self.train_accuracy, "test": self.test_accuracy, "chance": self.chance}


def mask_features(masks: Tensor) -> np.ndarray:
    """Centred, channel-averaged masks flattened to features: (N, C, H, W) -> (N, H*W) float32 array."""
    m = _as_4d(masks, "masks")
    return centered_mask(m).reshape(m.shape[0], -1).numpy().astype(np.float32)


def linear_probe(
    features: np.ndarray | Tensor,
    labels: np.ndarray | Tensor | Sequence[int],
    *,
    seed: int,
    train_fraction: float = 0.85,
    C: float = 1.0,
    max_iter: int = 2000,
) -> ProbeResult:
    """Fit a multinomial logistic regression (a linear layer + softmax) on ``features`` (N, D).

    The split is a seeded random ``train_fraction`` / rest split (stratification is not used so that
    the permuted-label control sees the same kind of split). Deterministic for a given seed.
    """
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(features.detach().cpu().numpy() if isinstance(features, Tensor) else features, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"features must be (N, D); got shape {X.shape}")
    y = np.asarray(labels.cpu().numpy() if isinstance(labels, Tensor) else labels).reshape(-1)
    n = X.shape[0]
    if y.size != n:
        raise ValueError(f"{n} samples but {y.size} labels")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1); got {train_fraction}")
    n_train = int(n * train_fraction)
    if n_train < 2 or n - n_train < 1:
        raise ValueError(f"too few samples ({n}) for a {train_fraction:.2f} split")
    rng = np.random.default_rng(int(seed))
    perm = rng.permutation(n)
    tr, te = np.sort(perm[:n_train]), np.sort(perm[n_train:])
    if np.unique(y[tr]).size < 2:
        raise ValueError("the training split holds a single class; a classifier cannot be fitted")
    clf = LogisticRegression(C=C, max_iter=max_iter, random_state=int(seed))
    clf.fit(X[tr], y[tr])
    counts = np.bincount(y[te].astype(np.int64)) if y.dtype.kind in "iu" else np.unique(y[te], return_counts=True)[1]
    chance = float(counts.max() / te.size)
    return ProbeResult(
        train_accuracy=float(clf.score(X[tr], y[tr])),
        test_accuracy=float(clf.score(X[te], y[te])),
        chance=chance,
        labels=y.copy(),
        outputs=np.asarray(clf.decision_function(X), dtype=np.float32).reshape(n, -1),
        train_idx=tr,
        test_idx=te,
        params={"seed": int(seed), "train_fraction": train_fraction, "C": C, "max_iter": max_iter},
    )


def class_specificity(
    masks: Tensor,
    labels: Tensor | Sequence[int],
    *,
    seed: int,
    train_fraction: float = 0.85,
    C: float = 1.0,
    split_seed: int | None = None,
) -> dict[str, ProbeResult]:
    """Table 3: the probe on centred masks with true labels and with :func:`fixed_permutation` labels.

    The permutation depends only on ``seed``; the train/test split on ``split_seed`` (default ``seed``),
    so repeating with other ``split_seed`` values re-splits without redrawing the control labels.
    Returns ``{"true_labels": ProbeResult, "random_labels": ProbeResult}`` (same split for both).
    """
    X = mask_features(masks)
    y = np.asarray(torch.as_tensor(labels).cpu().numpy()).reshape(-1)
    s = seed if split_seed is None else split_seed
    return {
        "true_labels": linear_probe(X, y, seed=s, train_fraction=train_fraction, C=C),
        "random_labels": linear_probe(X, fixed_permutation(y, seed), seed=s, train_fraction=train_fraction, C=C),
    }


def _training_span_features(X: np.ndarray, *, seed: int, train_fraction: float) -> np.ndarray:
    """``X`` (N, D) in coordinates of the span of its training rows (the split of :func:`linear_probe` for
    ``seed``): (N, r), r = rank of the training rows <= n_train.

    Exact for the L2-penalised logistic regression of :func:`linear_probe` (representer theorem): the
    optimal weights lie in the span of the training rows, so with an orthonormal basis V of that span,
    ``w = V a`` gives ``X w = (X V) a`` for every row (training and test) and ``|w| = |a|``; the fit on
    ``X V`` has the same decision function. With D = 4,096 mask features and ~100 training masks this makes
    each fit about 40 times cheaper, which is what keeps a permutation null of B >= 200 fits cheap.
    """
    n = X.shape[0]
    n_train = int(n * train_fraction)
    if not 0.0 < train_fraction < 1.0 or n_train < 2 or n - n_train < 1:
        raise ValueError(f"too few samples ({n}) for a {train_fraction} split")
    perm = np.random.default_rng(int(seed)).permutation(n)  # the split of linear_probe
    tr = np.sort(perm[:n_train])
    if n_train >= X.shape[1]:
        return X
    _, s, vt = np.linalg.svd(X[tr], full_matrices=False)
    keep = s > s.max(initial=0.0) * max(X.shape) * np.finfo(np.float64).eps
    return X @ vt[keep].T


def permutation_null(
    features: np.ndarray | Tensor,
    labels: np.ndarray | Tensor | Sequence[int],
    *,
    seed: int,
    n_permutations: int,
    train_fraction: float = 0.85,
    C: float = 1.0,
    max_iter: int = 2000,
) -> dict[str, np.ndarray]:
    """Null distribution of the linear probe: :func:`linear_probe` on ``n_permutations`` (B) independent
    label permutations, each on the same split as the true-label probe (split seed ``seed``).

    Permutation b uses :func:`fixed_permutation` with seed ``seed + 1 + b`` (never ``seed`` itself, which
    is the single permuted-label control of :func:`class_specificity`). Returns
    ``{"train": (B,), "test": (B,)}`` accuracies (float64 fractions); with the true-label test accuracy a
    permutation p-value is ``(1 + #{null >= observed}) / (B + 1)`` (:mod:`fmask.analysis.stats`). The paper's control
    (Sec. 3.2) is one shuffle; B >= 19 shuffles let a p-value reach 0.05 (:data:`fmask.claims.base.MIN_NULL`).
    Deterministic for given arguments.
    """
    if int(n_permutations) < 1:
        raise ValueError(f"n_permutations must be >= 1; got {n_permutations}")
    X = np.asarray(features.detach().cpu().numpy() if isinstance(features, Tensor) else features, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"features must be (N, D); got shape {X.shape}")
    y = np.asarray(labels.cpu().numpy() if isinstance(labels, Tensor) else labels).reshape(-1)
    Z = _training_span_features(X, seed=seed, train_fraction=train_fraction)
    train, test = np.empty(int(n_permutations)), np.empty(int(n_permutations))
    for b in range(int(n_permutations)):
        r = linear_probe(Z, fixed_permutation(y, int(seed) + 1 + b), seed=seed, train_fraction=train_fraction,
                         C=C, max_iter=max_iter)
        train[b], test[b] = r.train_accuracy, r.test_accuracy
    return {"train": train, "test": test}


def umap_embedding(
    x: np.ndarray | Tensor, *, seed: int, n_neighbors: int = 20, n_components: int = 2, min_dist: float = 0.1
) -> np.ndarray:
    """Seeded UMAP of (N, D) features -> (N, n_components) (``n_jobs=1`` so that it is deterministic).

    ``n_neighbors`` is capped at N - 1 for small sets. The original used ``n_neighbors=20``.
    """
    import warnings

    import umap

    X = np.asarray(x.detach().cpu().numpy() if isinstance(x, Tensor) else x, dtype=np.float32)
    if X.ndim != 2:
        X = X.reshape(X.shape[0], -1)
    if X.shape[0] < 4:
        raise ValueError(f"UMAP needs at least 4 samples; got {X.shape[0]}")
    k = max(2, min(int(n_neighbors), X.shape[0] - 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs/random_state notice, small-data spectral warnings
        reducer = umap.UMAP(
            n_components=n_components, n_neighbors=k, min_dist=min_dist, random_state=int(seed), n_jobs=1
        )
        return np.asarray(reducer.fit_transform(X), dtype=np.float32)
