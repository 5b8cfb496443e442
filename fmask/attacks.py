"""L∞ PGD in pixel units on images in [0, 1] (torchattacks 3.5 underneath).

The original code attacked normalised inputs with ε = 0.06; in pixel units (std 0.226) that is
0.06 × 0.226 ≈ 0.0136, the default here. The model given must take [0, 1] inputs (e.g. a
:class:`fmask.models.Normalized` network), so ε, α and the clamp to [0, 1] are all in pixel units.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["PGD", "DEFAULT_EPS", "robust_accuracy"]

DEFAULT_EPS = 0.0136  # = 0.06 (original, normalised units) × 0.226 (std)


class PGD:
    """Untargeted L∞ PGD: ``steps`` sign-gradient steps of size ``alpha`` (default ``eps / 8``), projected to
    the ε-ball and to [0, 1], from a uniform random start in the ball when ``random_start``.

    Call on ``(images, labels)``: images float (N, C, H, W) in [0, 1], labels int64 (N,); returns adversarial
    images (N, C, H, W) in [0, 1] on the images' device, detached. The model is put in eval mode during the
    attack and restored afterwards (torchattacks' default). Random starts use the global torch RNG.
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
        adv = self._atk(images.float(), labels.long())
        return adv.detach()


@torch.no_grad()
def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    return int((model(x).argmax(1) == y).sum())


def robust_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    eps: float = DEFAULT_EPS,
    steps: int = 10,
    alpha: float | None = None,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """Clean and PGD accuracy (fractions in [0, 1]) of ``model`` on ``images`` (N, C, H, W) in [0, 1].

    The random starts are seeded with ``seed`` (global torch RNG state is saved and restored).
    Returns ``{"clean_acc", "robust_acc", "n", "eps", "steps", "alpha"}``.
    """
    from tqdm.auto import tqdm

    if len(images) == 0:
        raise ValueError("robust_accuracy needs at least one image")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    atk = PGD(model, eps=eps, alpha=alpha, steps=steps)
    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    torch.manual_seed(seed)
    clean = rob = 0
    try:
        for s in tqdm(range(0, len(images), batch_size), desc="PGD eval", disable=None if progress else True, leave=False):
            x = images[s : s + batch_size].to(device)
            y = labels[s : s + batch_size].to(device)
            clean += _correct(model, x, y)
            rob += _correct(model, atk(x, y), y)
    finally:
        torch.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
        model.train(was_training)
    n = len(images)
    return {"clean_acc": clean / n, "robust_acc": rob / n, "n": n, "eps": float(eps), "steps": int(steps), "alpha": atk.alpha}
