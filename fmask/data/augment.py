"""The original's image transforms (``loaddata.py``) and their fast batched equivalent.

Transforms follow the original ``loaddata.py`` (S = 128 in the paper):

* train: ``Resize(S)``, ``RandomResizedCrop(S)``, ``RandomHorizontalFlip``, ``Grayscale``, the regime's
  ``RandomAffine`` (:data:`fmask.data.regimes.AFFINE`), ``ToTensor``;
* eval: ``Resize(S)``, ``CenterCrop(S)``, ``Grayscale``, ``ToTensor``.

Here ``Resize(S)`` and ``Grayscale`` happen once at decoding (:mod:`fmask.data.datasets`); the functions below
act on the resulting uint8 (C, H, W) tensors. :class:`BatchTrainTransform` does the random train transform
for a whole batch with the same parameter distributions. Train images differ from the PIL pipeline only by
rounding order (grayscale conversion and uint8 rounding happen before the random crop's interpolation instead
of after); for non-square source images a crop wider than S is downscaled without antialiasing in the
batched path.
"""
from __future__ import annotations

from typing import Callable

import torch

from fmask.data.regimes import AFFINE as REGIME_AFFINE
from fmask.data.regimes import check_regime

__all__ = ["REGIME_AFFINE", "train_transform", "eval_transform", "pil_transform", "BatchTrainTransform"]


def _affine(regime: str):
    from torchvision.transforms import v2

    kw = REGIME_AFFINE[check_regime(regime)]
    return None if kw is None else v2.RandomAffine(**kw)


def train_transform(image_size: int, regime: str = "vanilla") -> Callable[[torch.Tensor], torch.Tensor]:
    """Random train transform on a uint8 (C, H, W) tensor already resized to ``image_size`` (shorter side):
    ``RandomResizedCrop(S)``, ``RandomHorizontalFlip``, the regime's ``RandomAffine``, to float in [0, 1]."""
    from torchvision.transforms import v2

    steps = [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()]
    aff = _affine(regime)
    if aff is not None:
        steps.append(aff)
    steps.append(v2.ToDtype(torch.float32, scale=True))
    return v2.Compose(steps)


def eval_transform(image_size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Deterministic eval transform on a resized uint8 tensor: ``CenterCrop(S)``, to float in [0, 1]."""
    from torchvision.transforms import v2

    return v2.Compose([v2.CenterCrop(image_size), v2.ToDtype(torch.float32, scale=True)])


def pil_transform(image_size: int, regime: str = "vanilla", train: bool = True, channels: int = 1):
    """The original's PIL pipeline (without ``Normalize``), for reference and tests: PIL image → [0, 1] tensor."""
    from torchvision import transforms as T

    gray = [T.Grayscale()] if channels == 1 else []
    if not train:
        return T.Compose([T.Resize(image_size), T.CenterCrop(image_size), *gray, T.ToTensor()])
    kw = REGIME_AFFINE[check_regime(regime)]
    aff = [T.RandomAffine(**kw)] if kw is not None else []
    return T.Compose([T.Resize(image_size), T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(), *gray, *aff, T.ToTensor()])


# ------------------------------------------------------------------------------------ batched augmentation
def _uniform(g: torch.Generator, shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
    return torch.rand(shape, generator=g) * (hi - lo) + lo


class BatchTrainTransform:
    """The train augmentation applied to a whole batch at once (per-sample random parameters).

    Input: uint8 or float batch (N, C, H, W) holding images resized to shorter side S (top-left aligned, zero
    padded when sizes differ), ``sizes`` (N, 2) the true (h, w) of each; output float (N, C, S, S) in [0, 1].
    Steps, each with torchvision's parameter distributions:

    1. ``RandomResizedCrop(S)`` (scale 0.08–1, ratio 3/4–4/3, 10 tries then centre fallback): bilinear with
       clamped borders like ``resize(antialias=True)`` when upsampling (always the case for square inputs),
       rounded to uint8 levels as torchvision does on uint8 tensors;
    2. ``RandomHorizontalFlip(0.5)``;
    3. the regime's ``RandomAffine`` (nearest, zero fill, about the centre) as in ``torchvision``;
    4. scale to [0, 1].

    Random numbers come from the ``generator`` passed to :meth:`__call__` (so a training run's data stream is
    reproducible and resumable). Works on any device.
    """

    def __init__(self, image_size: int, regime: str = "vanilla") -> None:
        check_regime(regime)
        self.size = int(image_size)
        self.regime = regime
        self.affine = REGIME_AFFINE[regime]

    def crop_params(self, sizes: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """(N, 4) float boxes (top, left, height, width) drawn as ``RandomResizedCrop.get_params``."""
        import math

        n = sizes.shape[0]
        h = sizes[:, 0].double()
        w = sizes[:, 1].double()
        area = h * w
        tries = 10
        target = area[:, None] * _uniform(g, (n, tries), 0.08, 1.0).double()
        logr = _uniform(g, (n, tries), math.log(3 / 4), math.log(4 / 3)).double()
        ar = torch.exp(logr)
        cw = torch.round(torch.sqrt(target * ar))
        ch = torch.round(torch.sqrt(target / ar))
        ok = (cw > 0) & (cw <= w[:, None]) & (ch > 0) & (ch <= h[:, None])
        has = ok.any(1)
        first = ok.float().argmax(1)
        rows = torch.arange(n)
        c_h, c_w = ch[rows, first], cw[rows, first]
        u = torch.rand((n, 2), generator=g).double()
        top = torch.floor(u[:, 0] * (h - c_h + 1))
        left = torch.floor(u[:, 1] * (w - c_w + 1))
        # centre fallback, as torchvision (ratio clipped to [3/4, 4/3])
        r = w / h
        fw = torch.where(r < 3 / 4, w, torch.where(r > 4 / 3, torch.round(h * (4 / 3)), w))
        fh = torch.where(r < 3 / 4, torch.round(w / (3 / 4)), h)
        ftop, fleft = torch.div(h - fh, 2, rounding_mode="floor"), torch.div(w - fw, 2, rounding_mode="floor")
        boxes = torch.stack(
            [torch.where(has, top, ftop), torch.where(has, left, fleft), torch.where(has, c_h, fh), torch.where(has, c_w, fw)],
            dim=1,
        )
        return boxes.float()

    def resized_crop(self, x: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor | None = None) -> torch.Tensor:
        """Crop ``boxes`` (N, 4: top, left, h, w) out of float ``x`` (N, C, H, W) and resize to S×S: bilinear at
        torchvision's half-pixel sample positions, clamped to the crop (== ``resize(antialias=True)`` when
        upsampling), one ``grid_sample`` for the batch; ``flip`` (N,) bool mirrors horizontally."""
        import torch.nn.functional as Fn

        n, _, H, W = x.shape
        S = self.size
        b = boxes.to(device=x.device, dtype=torch.float32)
        top, left, h, w = b.unbind(1)
        k = torch.arange(S, dtype=torch.float32, device=x.device) + 0.5
        sx = left[:, None] + (k[None] * w[:, None] / S - 0.5).clamp(min=0).minimum(w[:, None] - 1)
        sy = top[:, None] + (k[None] * h[:, None] / S - 0.5).clamp(min=0).minimum(h[:, None] - 1)
        if flip is not None:
            sx = torch.where(flip.to(x.device)[:, None], sx.flip(1), sx)
        gx = sx / max(W - 1, 1) * 2 - 1
        gy = sy / max(H - 1, 1) * 2 - 1
        grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
        return Fn.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)

    def affine_params(self, n: int, g: torch.Generator) -> torch.Tensor:
        """Per-sample (angle in degrees, tx, ty, scale) as (N, 4) float64, drawn as ``RandomAffine`` does."""
        a = self.affine or {}
        deg = float(a.get("degrees", 0.0))
        angles = _uniform(g, (n,), -deg, deg) if deg else torch.zeros(n)
        if a.get("translate") is not None:
            mdx, mdy = a["translate"][0] * self.size, a["translate"][1] * self.size
            tx = torch.round(_uniform(g, (n,), -mdx, mdx))
            ty = torch.round(_uniform(g, (n,), -mdy, mdy))
        else:
            tx = ty = torch.zeros(n)
        sc = _uniform(g, (n,), float(a["scale"][0]), float(a["scale"][1])) if a.get("scale") is not None else torch.ones(n)
        return torch.stack([angles, tx, ty, sc], dim=1).double()

    def apply_affine(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Affine-warp each image of float ``x`` (N, C, S, S) about its centre (nearest, zero fill) with
        ``params`` (N, 4: angle°, tx, ty, scale); the inverse matrix and sampling grid are those of
        ``torchvision.transforms.v2.functional.affine`` (no shear), computed for the whole batch."""
        import torch.nn.functional as Fn

        n, _, H, W = x.shape
        p = torch.as_tensor(params, dtype=torch.float64).view(n, 4)
        rot = torch.deg2rad(p[:, 0])
        tx, ty, sc = p[:, 1], p[:, 2], p[:, 3]
        m0, m1 = torch.cos(rot) / sc, torch.sin(rot) / sc
        m3, m4 = -torch.sin(rot) / sc, torch.cos(rot) / sc
        m2 = m0 * (-tx) + m1 * (-ty)
        m5 = m3 * (-tx) + m4 * (-ty)
        theta = torch.stack([m0, m1, m2, m3, m4, m5], dim=1).float().view(n, 2, 3).to(x.device)
        d = 0.5
        base = torch.empty(1, H, W, 3, device=x.device)
        base[..., 0].copy_(torch.linspace(-W * 0.5 + d, W * 0.5 + d - 1, steps=W, device=x.device))
        base[..., 1].copy_(torch.linspace(-H * 0.5 + d, H * 0.5 + d - 1, steps=H, device=x.device).unsqueeze(-1))
        base[..., 2].fill_(1)
        rescaled = theta.transpose(1, 2) / torch.tensor([0.5 * W, 0.5 * H], device=x.device)
        grid = base.view(1, H * W, 3).expand(n, -1, -1).bmm(rescaled).view(n, H * W, 2)
        # grid_sample(mode="nearest", align_corners=False, zeros) as a gather: unnormalise, round half-even
        ix = torch.round(((grid[..., 0] + 1) * W - 1) / 2)
        iy = torch.round(((grid[..., 1] + 1) * H - 1) / 2)
        valid = (ix >= 0) & (ix <= W - 1) & (iy >= 0) & (iy <= H - 1)
        flat = (iy.clamp(0, H - 1) * W + ix.clamp(0, W - 1)).long()  # (N, H*W)
        xs = x.reshape(n, x.shape[1], H * W)
        out = torch.gather(xs, 2, flat.unsqueeze(1).expand(-1, x.shape[1], -1)) * valid.unsqueeze(1)
        return out.view_as(x)

    def __call__(self, x: torch.Tensor, sizes: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected a batch (N, C, H, W), got {tuple(x.shape)}")
        n = x.shape[0]
        boxes = self.crop_params(sizes, g)
        flip = torch.rand(n, generator=g) < 0.5
        xf = x.float() if x.dtype == torch.uint8 else x.float() * 255.0
        out = self.resized_crop(xf, boxes, flip).round_().clamp_(0, 255)
        if self.affine is not None:
            out = self.apply_affine(out, self.affine_params(n, g))
        return out / 255.0

