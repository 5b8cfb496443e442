"""Reading a user's images: a folder of image files, a folder of class sub-folders, or a ``.pt`` tensor file.

:func:`load_images` is the one reader (used by :func:`fmask.learners.own.load_images` and ``fmask masks
--arch``). It returns :class:`LoadedImages`, a pair ``(images, labels)`` (so ``images, labels =
load_images(...)`` works) that also carries ``.classes``, the class-folder → label mapping, and ``.files``.

Conventions: images are float32 (N, C, H, W) in [0, 1]; labels int64 (N,) or None.

* Class sub-folders: a folder name that starts with an integer (``0_cat``, ``2_dog``, ``7``) has that integer
  as its label, so ``0_a, 2_c, 3_d`` → labels 0, 2, 3; when no folder name starts with an integer the label is
  the folder's position in sorted name order, as ``torchvision.datasets.ImageFolder``. An explicit
  ``classes`` mapping (folder name → label, or a list of folder names, label = index) overrides both.
* ``.pt`` / ``.pth`` files hold a tensor (N, C, H, W) or a dict with ``"images"`` and optionally
  ``"labels"`` (N,) (``"targets"`` is read as the same key; a file with both must hold equal values), or a
  pair ``(images, labels)``. Float images must lie in [0, 1]; uint8 images are divided by 255.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["IMAGE_SUFFIXES", "TINY_SIDE", "LoadedImages", "load_images", "load_tensor_file", "folder_labels"]

#: file suffixes :func:`load_images` reads from a folder (case-insensitive)
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: images with a side shorter than this many pixels are read with a warning naming them
TINY_SIDE = 8
_LEADING_INT = re.compile(r"^(\d+)")


class LoadedImages(tuple):
    """``(images, labels)`` with attributes ``images``, ``labels``, ``classes`` (dict folder name → label for
    class sub-folders, else None) and ``files`` (the paths read, in row order; the ``.pt`` file once)."""

    def __new__(cls, images: Tensor, labels: Tensor | None, classes: dict[str, int] | None = None,
                files: Sequence[str] = ()) -> "LoadedImages":
        self = super().__new__(cls, (images, labels))
        self.classes = None if classes is None else dict(classes)
        self.files = list(files)
        return self

    @property
    def images(self) -> Tensor:
        return self[0]

    @property
    def labels(self) -> Tensor | None:
        return self[1]


def folder_labels(names: Sequence[str], classes: Mapping[str, int] | Sequence[str] | None = None) -> dict[str, int]:
    """Label of each class folder name (see the module docstring for the rule); ValueError naming the culprit."""
    names = sorted(names)
    if classes is not None:
        mapping = dict(classes) if isinstance(classes, Mapping) else {str(n): k for k, n in enumerate(classes)}
        for n, k in mapping.items():
            if isinstance(k, bool) or not isinstance(k, int) or k < 0:
                raise ValueError(f"classes[{n!r}] must be a label >= 0, got {k!r}")
        unknown = [n for n in names if n not in mapping]
        if unknown:
            raise ValueError(f"class folder(s) {unknown[:5]} are not in classes (it names {sorted(mapping)[:10]})")
        return {n: int(mapping[n]) for n in names}
    lead = {n: _LEADING_INT.match(n) for n in names}
    numbered = [n for n in names if lead[n]]
    if not numbered:
        return {n: k for k, n in enumerate(names)}
    if len(numbered) != len(names):
        plain = [n for n in names if not lead[n]]
        raise ValueError(f"class folders {numbered[:3]} start with a label but {plain[:3]} do not; name every "
                         "folder '<label>_<name>' or none of them, or pass classes=")
    labels = {n: int(lead[n].group(1)) for n in names}
    seen: dict[int, str] = {}
    for n, k in labels.items():
        if k in seen:
            raise ValueError(f"class folders {seen[k]!r} and {n!r} both start with label {k}; pass classes=")
        seen[k] = n
    return labels


def _size_hw(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool):
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        return (size, -1)  # -1 marks 'shorter side to size, then centre crop' (see load_images)
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError) as e:
        raise ValueError(f"size must be an int or a pair (H, W), got {size!r}") from e
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return (h, w)


def _convert_channels(x: Tensor, channels: int | None) -> Tensor:
    if channels is None or x.shape[1] == channels:
        return x
    if x.shape[1] == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1).clone()
    if x.shape[1] == 3 and channels == 1:  # ITU-R 601-2 luma, as PIL's convert("L")
        wts = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
        return (x * wts).sum(dim=1, keepdim=True)
    raise ValueError(f"cannot convert {x.shape[1]}-channel images to {channels} channels")


def _resize_tensor(x: Tensor, size: tuple[int, int] | None) -> Tensor:
    if size is None:
        return x
    h, w = x.shape[-2:]
    if size[1] == -1:  # shorter side to size[0], then centre crop
        s = size[0]
        scale = s / min(h, w)
        nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        top, left = (nh - s) // 2, (nw - s) // 2
        return x[..., top:top + s, left:left + s].clamp(0, 1)
    if tuple(size) == (h, w):
        return x
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def _pt_labels(path: Path, blob: Mapping[str, Any]) -> Any:
    """The ``labels`` entry of a dict (``targets`` is the same key; both present must agree)."""
    lab, tgt = blob.get("labels"), blob.get("targets")
    if lab is not None and tgt is not None:
        same = isinstance(lab, Tensor) and isinstance(tgt, Tensor) and lab.shape == tgt.shape and \
            bool(torch.equal(lab.long(), tgt.long()))
        if not same:
            raise ValueError(f"{path}: 'labels' and 'targets' are both present and differ; keep one of them "
                             "('labels' is the key fmask reads)")
    return lab if lab is not None else tgt


def load_tensor_file(path: str | os.PathLike) -> tuple[Tensor, Tensor | None]:
    """``(images, labels)`` from a ``.pt``/``.pth`` file (layouts in the module docstring), unresized."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"could not read {str(path)!r} with torch.load(weights_only=True) "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    labels = None
    if isinstance(blob, Tensor):
        x = blob
    elif isinstance(blob, Mapping):
        if "images" not in blob or not isinstance(blob["images"], Tensor):
            raise ValueError(f"{path}: a dict must hold an 'images' tensor (N, C, H, W); "
                             f"keys: {sorted(map(str, blob))}")
        x, labels = blob["images"], _pt_labels(path, blob)
    elif isinstance(blob, (tuple, list)) and len(blob) == 2 and all(isinstance(t, Tensor) for t in blob):
        x, labels = blob
    else:
        raise ValueError(f"{path} holds a {type(blob).__name__}; expected a tensor (N, C, H, W), a dict with "
                         "'images' (and optionally 'labels') or a pair (images, labels)")
    if labels is not None:
        labels = torch.as_tensor(labels)
        if labels.dim() != 1 or labels.shape[0] != x.shape[0] or labels.is_floating_point():
            raise ValueError(f"{path}: the labels ('labels' or 'targets') must be integer (N,) with N = {x.shape[0]}, got "
                             f"{labels.dtype} {tuple(labels.shape)}")
        labels = labels.long()
    if x.dim() == 3:
        raise ValueError(f"{path}: images have shape {tuple(x.shape)}; expected (N, C, H, W) (add the channel "
                         "dim, e.g. x.unsqueeze(1) for grayscale)")
    if x.dim() != 4 or x.numel() == 0:
        raise ValueError(f"{path}: images must have shape (N, C, H, W), got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    elif x.is_floating_point():
        x = x.float()
        if not bool(torch.isfinite(x).all()) or float(x.min()) < -1e-4 or float(x.max()) > 1 + 1e-4:
            raise ValueError(f"{path}: float images must be finite and lie in [0, 1] (got range "
                             f"[{float(x.min()):.4g}, {float(x.max()):.4g}]); fmask models normalise internally")
        x = x.clamp(0, 1)
    else:
        raise ValueError(f"{path}: images must be float in [0, 1] or uint8, got {x.dtype}")
    return x, labels


def _open_image(path: Path, mode: str | None):
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if mode is None:
                mode = "L" if im.mode in ("1", "L", "I", "I;16", "F") else "RGB"
            return im.convert(mode)
    except Exception as e:
        raise ValueError(f"could not read image {str(path)!r}: {type(e).__name__}: {e}") from e


def _pil_to_tensor(im) -> Tensor:
    import numpy as np

    a = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy())
    a = a.unsqueeze(-1) if a.dim() == 2 else a
    return a.permute(2, 0, 1).float() / 255.0


def _resize_pil(im, size: tuple[int, int] | None):
    from PIL import Image

    if size is None:
        return im
    w0, h0 = im.size
    if size[1] == -1:
        s = size[0]
        scale = s / min(h0, w0)
        nw, nh = max(s, round(w0 * scale)), max(s, round(h0 * scale))
        if (nw, nh) != (w0, h0):
            im = im.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - s) // 2, (nh - s) // 2
        return im.crop((left, top, left + s, top + s))
    h, w = size
    return im if (w0, h0) == (w, h) else im.resize((w, h), Image.BILINEAR)


def _warn_tiny(named_sizes: Sequence[tuple[str, int, int]]) -> None:
    """Warn (naming up to 5 files) about images with a side < :data:`TINY_SIDE` px; ``(name, H, W)`` items."""
    tiny = [f"{n} ({h}x{w})" for n, h, w in named_sizes if min(h, w) < TINY_SIDE]
    if tiny:
        more = f" and {len(tiny) - 5} more" if len(tiny) > 5 else ""
        warnings.warn(f"{len(tiny)} image(s) have a side shorter than {TINY_SIDE} px, too small for a "
                      f"meaningful Fourier mask: {', '.join(tiny[:5])}{more}", UserWarning, stacklevel=3)


def load_images(path: str | os.PathLike, size: int | Sequence[int] | None = None, channels: int | None = None,
                classes: Mapping[str, int] | Sequence[str] | None = None) -> LoadedImages:
    """Load images: returns :class:`LoadedImages` ``(images, labels)`` with ``.classes`` and ``.files``.

    Args:
        path: one of
            * a folder of image files (suffixes :data:`IMAGE_SUFFIXES`), read in sorted file-name order →
              ``labels = None``;
            * a folder of class sub-folders (``torchvision.datasets.ImageFolder`` layout) → labels by the
              folder rule of the module docstring (leading integer, else sorted position), images sorted by
              (folder name, file name);
            * a ``.pt`` / ``.pth`` file (:func:`load_tensor_file`).
        size: ``None`` keeps the size (all images must then share it); an int ``S`` resizes the shorter side
            to S (bilinear) and centre-crops S×S (the usual evaluation transform); a pair ``(H, W)`` resizes
            to exactly H×W.
        channels: 1 or 3 to convert (RGB → luma with ITU-R 601-2 weights as PIL's ``"L"``; gray → RGB by
            repetition); ``None`` keeps the files' channels (folder: 1 if every file is grayscale, else 3).
        classes: class sub-folder name → label (or a list of folder names, label = position) instead of the
            folder rule; every sub-folder read must be named.

    Images with a side shorter than :data:`TINY_SIDE` px (before resizing) are read with a ``UserWarning``
    naming them.
    """
    if channels is not None and channels not in (1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
    hw = _size_hw(size)
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() not in (".pt", ".pth"):
            raise ValueError(f"{str(p)!r} is a file but not a .pt/.pth tensor file; pass a folder of images or a "
                             ".pt file")
        x, labels = load_tensor_file(p)
        _warn_tiny([(p.name, int(x.shape[-2]), int(x.shape[-1]))])
        return LoadedImages(_convert_channels(_resize_tensor(x, hw), channels).contiguous(), labels, None, [str(p)])
    if not p.is_dir():
        raise ValueError(f"{str(p)!r} is neither a folder of images nor a .pt file")
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    subdirs = sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
    entries: list[tuple[Path, int | None]] = []
    mapping: dict[str, int] | None = None
    if files:
        entries = [(f, None) for f in files]
    elif subdirs:
        mapping = folder_labels([d.name for d in subdirs], classes)
        for d in subdirs:
            entries += [(f, mapping[d.name]) for f in sorted(d.iterdir())
                        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
    if not entries:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {str(p)!r} or its class sub-folders")
    mode = None if channels is None else ("L" if channels == 1 else "RGB")
    ims = [_open_image(f, mode) for f, _ in entries]
    _warn_tiny([(str(f.relative_to(p)), im.size[1], im.size[0]) for (f, _), im in zip(entries, ims)])
    if mode is None:
        mode = "L" if all(im.mode == "L" for im in ims) else "RGB"
        ims = [im.convert(mode) for im in ims]
    ims = [_resize_pil(im, hw) for im in ims]
    sizes = {im.size for im in ims}
    if len(sizes) > 1:
        first = {}
        for (f, _), im in zip(entries, ims):
            first.setdefault(im.size, f.relative_to(p))
        shown = ", ".join(f"{f} {w}x{h}" for (w, h), f in list(first.items())[:3])
        raise ValueError(f"images in {str(p)!r} have {len(sizes)} different sizes (W x H: {shown}); pass --size S "
                         "or --size H W (size=S or size=(H, W) in Python)")
    x = torch.stack([_pil_to_tensor(im) for im in ims])
    labels = None if mapping is None else torch.tensor([k for _, k in entries], dtype=torch.long)
    return LoadedImages(x, labels, mapping, [str(f) for f, _ in entries])
