"""L∞ PGD in pixel units on images in [0, 1] (torchattacks 3.5 underneath).

The original code attacked normalised inputs with ε = 0.06; in pixel units (std 0.226) that is
0.06 × 0.226 ≈ 0.0136, the default here. :func:`pgd_settings` is the one rule that reads an attack from a
profile; :func:`robust_accuracy` the one clean-and-PGD accuracy (used by training metrics and the pipeline). The model given must take [0, 1] inputs (e.g. a
:class:`fmask.models.zoo.Normalized` network), so ε, α and the clamp to [0, 1] are all in pixel units.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

__all__ = ["PGD", "DEFAULT_EPS", "PGDSettings", "pgd_settings", "pgd_images", "robust_accuracy",
           "describe_training_attack", "compare_training_attacks"]

DEFAULT_EPS = 0.0136  # = 0.06 (original, normalised units) × 0.226 (std)


class PGD:
    """Untargeted L∞ PGD: ``steps`` sign-gradient steps of size ``alpha`` (default ``eps / 8``), projected to
    the ε-ball and to [0, 1], from a uniform random start in the ball when ``random_start``.

    Call on ``(images, labels)``: images float (N, C, H, W) in [0, 1], labels int64 (N,); returns adversarial
    images (N, C, H, W) in [0, 1] on the images' device, detached. The model is put in eval mode during the
    attack and restored afterwards (torchattacks' default). Random starts use the global torch RNG.

    The attack runs on a channels_last copy of the images (oneDNN's fast layout for the input gradients;
    for grayscale images the layouts coincide, so the result is the same bit for bit); the result
    has the images' layout. The model itself is never converted: a network built by :mod:`fmask.training.fit` is
    channels_last already, and a caller's model stays as the caller made it.
    """

    def __init__(
        self,
        model: nn.Module,
        eps: float = DEFAULT_EPS,
        alpha: float | None = None,
        steps: int = 10,
        random_start: bool = True,
    ) -> None:
        import torchattacks

        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        if int(steps) < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        alpha = eps / 8 if alpha is None else float(alpha)
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.model = model
        self.eps, self.alpha, self.steps, self.random_start = float(eps), alpha, int(steps), bool(random_start)
        self._atk = torchattacks.PGD(model, eps=self.eps, alpha=self.alpha, steps=self.steps, random_start=self.random_start)

    def __repr__(self) -> str:
        return f"PGD(eps={self.eps}, alpha={self.alpha}, steps={self.steps}, random_start={self.random_start})"

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"labels must be (N,) with N={images.shape[0]}, got {tuple(labels.shape)}")
        if images.numel() and (images.min() < 0 or images.max() > 1):
            raise ValueError(
                f"PGD expects images in [0, 1] (pixel units), got range [{images.min().item():.3f}, {images.max().item():.3f}]"
            )
        self._atk.set_device(images.device)
        cl = images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
        adv = self._atk(images.float().contiguous(memory_format=torch.channels_last), labels.long())
        return adv.detach().contiguous(memory_format=torch.channels_last if cl else torch.contiguous_format)


@dataclass(frozen=True)
class PGDSettings:
    """One L∞ PGD attack in pixel units: ``eps``, ``alpha`` (step size), ``steps``."""

    eps: float
    alpha: float
    steps: int

    def as_dict(self) -> dict[str, float | int]:
        return {"eps": float(self.eps), "alpha": float(self.alpha), "steps": int(self.steps)}


def pgd_settings(train: Mapping[str, Any] | None, analysis: Mapping[str, Any] | None = None) -> PGDSettings:
    """The one rule that turns profile sections into a PGD attack (training metrics and analyses alike).

    ``eps``: ``analysis.pgd_eps``, else ``train.adv_eps`` (the original attacked with its training ε), else
    :data:`DEFAULT_EPS`. ``steps`` and ``alpha`` come as a pair from the first level that sets the steps:
    ``analysis.pgd_steps`` / ``pgd_alpha``, else ``train.robust_eval_steps`` / ``robust_eval_alpha``, else the
    training attack ``train.adv_steps`` / ``adv_alpha``, else 10 steps; a null ``alpha`` is ε/8 (the paper's).
    (An ``alpha`` is never borrowed from another level: a 10-step evaluation attack does not inherit the
    larger step of a 5-step training attack.) ``train`` / ``analysis``: the profile sections (mappings or
    :mod:`fmask.experiment.profile_schema` sections, or :meth:`fmask.training.config.FitConfig.as_dict`); None:
    not given.
    """
    t = dict(train or {})
    a = dict(analysis or {})
    eps = a.get("pgd_eps")
    eps = float(eps if eps is not None else (t.get("adv_eps") if t.get("adv_eps") is not None else DEFAULT_EPS))
    for steps_key, alpha_key, src in (("pgd_steps", "pgd_alpha", a), ("robust_eval_steps", "robust_eval_alpha", t),
                                      ("adv_steps", "adv_alpha", t)):
        if src.get(steps_key) is not None:
            steps, alpha = int(src[steps_key]), src.get(alpha_key)
            break
    else:
        steps, alpha = 10, None
    alpha = float(alpha) if alpha is not None else eps / 8.0
    if not eps > 0 or not alpha > 0 or steps < 1:
        raise ValueError(f"PGD needs eps > 0, alpha > 0, steps >= 1; got {eps}, {alpha}, {steps}")
    return PGDSettings(eps=eps, alpha=alpha, steps=steps)


def pgd_images(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: PGDSettings,
    *,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """PGD images (N, C, H, W) on the CPU of ``images`` against ``model``, in batches; the random starts are
    seeded with ``seed`` (the caller's global RNG state is left untouched, :func:`fmask.infra.runtime.seeded`)."""
    from fmask.infra.runtime import model_device, progress_bar, seeded

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = torch.device(device) if device is not None else model_device(model)
    atk = PGD(model, eps=settings.eps, alpha=settings.alpha, steps=settings.steps)
    outs = []
    with seeded(seed, dev):
        for s in progress_bar(range(0, len(images), batch_size), progress=progress, desc="PGD", leave=False):
            outs.append(atk(images[s : s + batch_size].to(dev), labels[s : s + batch_size].to(dev)).cpu())
    return torch.cat(outs) if outs else images[:0].clone()


def robust_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float | PGDSettings = DEFAULT_EPS,
    steps: int = 10,
    alpha: float | None = None,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = False,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Clean and PGD accuracy (fractions in [0, 1]) of ``model`` on ``images`` (N, C, H, W) in [0, 1].

    The one robust-accuracy function of fmask (training metrics and :meth:`fmask.experiment.run.Run.robust_accuracy`).
    ``eps`` may be a :class:`PGDSettings` (then ``steps``/``alpha`` are ignored). The random starts are seeded
    with ``seed`` (the global torch RNG state is saved and restored). Returns ``{"clean_acc", "robust_acc",
    "n", "eps", "steps", "alpha"}``.
    """
    from fmask.infra.runtime import model_device

    if len(images) == 0:
        raise ValueError("robust_accuracy needs at least one image")
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    s = eps if isinstance(eps, PGDSettings) else PGDSettings(
        eps=float(eps), alpha=float(alpha) if alpha is not None else float(eps) / 8.0, steps=int(steps))
    dev = torch.device(device) if device is not None else model_device(model)
    was_training = model.training
    model.eval()
    try:
        xa = pgd_images(model, images, labels, s, batch_size=batch_size, seed=seed, device=dev, progress=progress)
        clean = rob = 0
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                y = labels[i : i + batch_size].to(dev)
                xc = images[i : i + batch_size].to(dev).contiguous(memory_format=torch.channels_last)
                xr = xa[i : i + batch_size].to(dev).contiguous(memory_format=torch.channels_last)
                clean += int((model(xc).argmax(1) == y).sum())
                rob += int((model(xr).argmax(1) == y).sum())
    finally:
        model.train(was_training)
    n = len(images)
    return {"clean_acc": clean / n, "robust_acc": rob / n, "n": n, "eps": s.eps, "steps": s.steps, "alpha": s.alpha}


def describe_training_attack(eps: float, steps: int, alpha: float | None) -> str:
    """One sentence-part naming the adversarial-training attack of a profile (``train.adv_eps``, ``adv_steps``,
    ``adv_alpha``; a null ``alpha`` is ε/8), for the book's prose.

    One step with a random start and α ≥ ε is FGSM with random start ("FGSM-RS", Wong, Rice & Kolter 2020,
    "Fast is better than free"), which the cpu profile uses for its budget; more steps are PGD (the original
    code, ``train_models.py``: 10 steps of ε/8). The string says which, with the numbers.
    """
    eps = float(eps)
    steps = int(steps)
    if not eps > 0 or steps < 1:
        raise ValueError(f"the training attack needs eps > 0 and steps >= 1; got eps={eps}, steps={steps}")
    a = float(alpha) if alpha is not None else eps / 8.0
    if not a > 0:
        raise ValueError(f"the training attack needs alpha > 0, got {alpha}")
    if steps == 1:
        kind = "FGSM with random start (Wong et al. 2020)" if a >= eps else "one PGD step from a random start"
        return f"{kind}: one step of size {a:.4g} = {a / eps:.3g} ε within ε = {eps:g}"
    return f"PGD: {steps} steps of size {a:.4g} = ε/{eps / a:.3g} within ε = {eps:g}"


def compare_training_attacks(runs: Mapping[str, Mapping[str, Any]], first: str, second: str) -> dict[str, Any]:
    """Robust accuracy of two adversarial trainings measured side by side (``fmask train`` metrics, e.g. the
    runs of ``benchmarks/results/adversarial_w4_fgsmrs_vs_pgd5.json``): each run's ``pgd_robust_acc`` on
    ``pgd_n`` validation images under the same attack, and its training ``seconds``.

    Returns ``{"first", "second": {"robust", "n", "seconds"}, "difference": first − second (fraction),
    "interval": Newcombe's 95% interval of that difference (independent proportions; the counts are the
    rounded robust accuracy × n), "speedup": second's seconds / first's}``. KeyError names a missing run or
    metric; ValueError for a non-positive n or time.
    """
    from fmask.analysis import stats

    out: dict[str, Any] = {}
    for tag, name in (("first", first), ("second", second)):
        if name not in runs:
            raise KeyError(f"no run {name!r} among {sorted(runs)}")
        r = runs[name]
        missing = [k for k in ("pgd_robust_acc", "pgd_n", "seconds") if k not in r]
        if missing:
            raise KeyError(f"run {name!r} lacks {missing}")
        n, sec = int(r["pgd_n"]), float(r["seconds"])
        if n < 1 or not sec > 0:
            raise ValueError(f"run {name!r}: pgd_n must be >= 1 and seconds > 0, got {n}, {sec}")
        out[tag] = {"name": name, "robust": float(r["pgd_robust_acc"]), "n": n, "seconds": sec}
    a, b = out["first"], out["second"]
    ka, kb = round(a["robust"] * a["n"]), round(b["robust"] * b["n"])
    out["difference"] = a["robust"] - b["robust"]
    out["interval"] = tuple(float(v) for v in stats.newcombe_interval(ka, a["n"], kb, b["n"]))
    out["speedup"] = b["seconds"] / a["seconds"]
    return out
