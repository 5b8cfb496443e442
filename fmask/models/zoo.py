"""Classifiers used in the paper, wrapped so that they take images in [0, 1].

* ``vgg11_bn``: torchvision's VGG11 with batch norm, first conv taking ``in_channels`` (the paper's network).
* ``resnet18``: torchvision's ResNet18 with ``conv1`` taking ``in_channels`` (the paper's second architecture).
* ``vgg_small``: NOT from the paper. The VGG11-bn layout (8 conv-bn-relu layers, 5 max-pools) with every
  width divided by ``width_div``, global average pooling and a one-hidden-layer classifier; a fast stand-in
  for CPU profiles.
* ``resnet_small``: NOT from the paper. ResNet18's body (BasicBlock x [2, 2, 2, 2]) with every width divided
  by ``width_div`` and a stem for 64 px inputs (one 3x3 stride-2 conv, no max-pool); the CPU profiles'
  stand-in for the paper's second architecture (see :class:`ResNetSmall`).

:func:`build_model` returns the bare network wrapped in :class:`Normalized`, which normalises with
mean 0.449 / std 0.226 (grayscale; ImageNet mean/std for RGB) so that inputs, masks and attacks live in
pixel units [0, 1].
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["Normalized", "build_model", "vgg11_bn", "resnet18", "vgg_small", "resnet_small", "ResNetSmall", "ARCHS", "WIDTH_ARCHS", "default_stats"]

GRAY_MEAN, GRAY_STD = (0.449,), (0.226,)
RGB_MEAN, RGB_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

VGG11_CFG: tuple = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def default_stats(in_channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel: the original's (0.449,), (0.226,) for 1 channel, ImageNet's for 3."""
    if in_channels == 1:
        return GRAY_MEAN, GRAY_STD
    if in_channels == 3:
        return RGB_MEAN, RGB_STD
    raise ValueError(f"no default normalisation for in_channels={in_channels}; pass mean and std")


class Normalized(nn.Module):
    """``net((x - mean) / std)`` for x of shape (N, C, H, W) in [0, 1]; mean/std are per-channel buffers."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_l, std_l = [float(v) for v in mean], [float(v) for v in std]
        if not mean_l or len(mean_l) != len(std_l):
            raise ValueError(f"mean and std must be equal-length sequences, got {mean_l} and {std_l}")
        if any(v <= 0 for v in std_l):
            raise ValueError(f"std must be positive, got {std_l}")
        mean_t = torch.tensor(mean_l, dtype=torch.float32)
        std_t = torch.tensor(std_l, dtype=torch.float32)
        self.net = net
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
        self.register_buffer("std", std_t.view(1, -1, 1, 1))

    @property
    def in_channels(self) -> int:
        return int(self.mean.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(f"expected input (N, {self.mean.shape[1]}, H, W), got {tuple(x.shape)}")
        return self.net((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))


def vgg11_bn(in_channels: int = 1, num_classes: int = 5) -> nn.Module:
    """torchvision ``vgg11_bn`` (random init) with the first conv taking ``in_channels`` (as the original)."""
    from torchvision.models import vgg11_bn as tv_vgg11_bn

    net = tv_vgg11_bn(weights=None, num_classes=num_classes)
    net.features[0] = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1)
    return net


def resnet18(in_channels: int = 1, num_classes: int = 5) -> nn.Module:
    """torchvision ``resnet18`` (random init) with ``conv1`` taking ``in_channels`` (as the original)."""
    from torchvision.models import resnet18 as tv_resnet18

    net = tv_resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return net


class VGGSmall(nn.Module):
    """VGG11-bn layout with widths divided by ``width_div``; global average pooling; small MLP head.

    Input (N, in_channels, H, W) with H, W >= 32 (five 2× poolings); output logits (N, num_classes).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 5,
        width_div: int = 4,
        hidden: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if width_div < 1 or 64 % width_div:
            raise ValueError(f"width_div must be a divisor of 64, got {width_div}")
        layers: list[nn.Module] = []
        c = in_channels
        for v in VGG11_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                w = int(v) // width_div
                layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        hidden = hidden or c
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


def vgg_small(in_channels: int = 1, num_classes: int = 5, width_div: int = 4, **kw) -> nn.Module:
    """Narrow VGG11-bn-like network for CPU runs (see :class:`VGGSmall`); not the paper's network."""
    return VGGSmall(in_channels=in_channels, num_classes=num_classes, width_div=width_div, **kw)


class _Subsample2(nn.Module):
    """``x[:, :, ::2, ::2]``: with a 1x1 stride-1 conv after it, exactly torchvision's 1x1 stride-2 shortcut conv."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::2, ::2]


class ResNetSmall(nn.Module):
    """ResNet18's layout (torchvision ``BasicBlock`` x [2, 2, 2, 2]) narrowed and with a small-image stem.

    Input (N, in_channels, H, W), H and W >= 16 (the stem and three stride-2 stages halve them four times);
    output logits (N, num_classes). What differs from torchvision's ``resnet18``:

    * **widths**: 64/128/256/512 divided by ``width_div`` (8 -> 8/16/32/64 channels, like ``vgg_small/8``);
    * **stem**: one 3x3 conv with stride 2 (+ BN + ReLU) instead of the 7x7 stride-2 conv and the 3x3
      stride-2 max-pool. At 64 px the four stages then see 32, 16, 8 and 4 px feature maps, exactly the sizes
      torchvision's ResNet18 sees at the paper's 128 px (its stem divides by 4); the paper's stem on 64 px
      would leave 2x2 maps in the last stage;
    * **head**: global average pooling and one linear layer, as ResNet18 (no hidden layer, no dropout).

    Blocks, shortcuts (1x1 conv + BN where the shape changes; the stride-2 shortcut is written as taking every
    second pixel, then a 1x1 conv -- the same function and parameters as torchvision's 1x1 stride-2 conv, whose
    CPU backward in channels_last crashed torch 2.14.1 here for some batch sizes, e.g. 63, the last batch of
    a cpu-profile epoch: "double free or corruption" / segmentation fault), the initialisation (Kaiming-normal fan-out
    for convs, BN weight 1 / bias 0, torchvision's default linear init) and ``zero_init_residual=False`` are
    torchvision's. Seed the global torch RNG before construction for reproducible weights.
    """

    STAGES: tuple[int, ...] = (2, 2, 2, 2)
    WIDTHS: tuple[int, ...] = (64, 128, 256, 512)

    def __init__(self, in_channels: int = 1, num_classes: int = 5, width_div: int = 8) -> None:
        super().__init__()
        from torchvision.models.resnet import BasicBlock

        if isinstance(width_div, bool) or not isinstance(width_div, int) or width_div < 1 or 64 % width_div:
            raise ValueError(f"width_div must be a divisor of 64, got {width_div!r}")
        if in_channels < 1 or num_classes < 2:
            raise ValueError(f"need in_channels >= 1 and num_classes >= 2, got {in_channels}, {num_classes}")
        widths = [w // width_div for w in self.WIDTHS]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        c = widths[0]
        for i, (n_blocks, w) in enumerate(zip(self.STAGES, widths)):
            stride = 1 if i == 0 else 2
            blocks: list[nn.Module] = []
            for b in range(n_blocks):
                s = stride if b == 0 else 1
                down = None
                if s != 1 or c != w:
                    sub = [_Subsample2()] if s == 2 else []
                    down = nn.Sequential(*sub, nn.Conv2d(c, w, kernel_size=1, stride=1, bias=False),
                                         nn.BatchNorm2d(w))
                blocks.append(BasicBlock(c, w, stride=s, downsample=down))
                c = w
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():  # torchvision ResNet's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or min(x.shape[-2:]) < 16:
            raise ValueError(f"expected input (N, C, H, W) with H, W >= 16, got {tuple(x.shape)}")
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def resnet_small(in_channels: int = 1, num_classes: int = 5, width_div: int = 8) -> nn.Module:
    """Narrow ResNet18-style network for CPU runs (see :class:`ResNetSmall`); not the paper's network."""
    return ResNetSmall(in_channels=in_channels, num_classes=num_classes, width_div=width_div)


ARCHS = {"vgg11_bn": vgg11_bn, "resnet18": resnet18, "vgg_small": vgg_small, "resnet_small": resnet_small}
#: architectures that take a ``width_div`` option (the others take no extra options)
WIDTH_ARCHS: tuple[str, ...] = ("vgg_small", "resnet_small")


def build_model(
    arch: str,
    in_channels: int = 1,
    num_classes: int = 5,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **kw,
) -> Normalized:
    """Build ``arch`` (one of :data:`ARCHS`) with random weights, wrapped in :class:`Normalized`.

    Extra keyword arguments go to the architecture (``width_div`` for ``vgg_small`` and ``resnet_small``). Seed the global
    torch RNG before calling for reproducible initial weights.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(ARCHS)}")
    if in_channels not in (1, 3) and (mean is None or std is None):
        raise ValueError(f"in_channels={in_channels}: pass mean and std explicitly")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if kw and arch not in WIDTH_ARCHS:
        raise ValueError(f"arch {arch!r} takes no extra options, got {sorted(kw)}")
    if arch == "resnet_small" and set(kw) - {"width_div"}:
        raise ValueError(f"arch 'resnet_small' takes only width_div, got {sorted(kw)}")
    net = ARCHS[arch](in_channels=in_channels, num_classes=num_classes, **kw)
    if mean is None or std is None:
        mean, std = default_stats(in_channels)
    return Normalized(net, mean, std)
