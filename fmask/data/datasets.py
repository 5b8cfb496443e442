"""Decoded datasets: every image decoded once into packed uint8 tensors, cached on disk by file content.

Conventions: items are float32 (C, S, S) in [0, 1] (C = 1 grayscale by default, 3 with ``channels=3``);
labels are int64 in 0..K-1 in the order of the chosen classes. Normalisation (mean 0.449, std 0.226) is NOT
applied here; it lives in :class:`fmask.models.zoo.Normalized`.

:func:`load_split` decodes every file once with PIL, applying the deterministic ``Resize(S)`` (shorter side)
and ``Grayscale`` exactly as the original, and keeps the uint8 results *packed* (one flat buffer, no padding:
a single panorama does not inflate the whole split to its width). Eval items are then the PIL pipeline's
uint8 levels exactly; train items go through :mod:`fmask.data.augment`.

The disk cache (kind ``"imagecache"`` of an :class:`fmask.infra.store.ArtifactStore`) is keyed by the *content* of
the files: their relative paths, byte sizes and a BLAKE2b hash of their bytes (measured on the shared
6,644-image copy, 76 MB, warm file cache: 0.85 s for both splits, vs. ~13 s for decoding them), plus the
decoding parameters. Editing or
replacing an image in place therefore yields a new key, new pixels and (through :func:`fmask.training.fit.data_id`)
new models; an unchanged folder is never decoded twice.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from fmask.data.regimes import check_regime
from fmask.infra.runtime import progress_bar
from fmask.data.augment import BatchTrainTransform, eval_transform, train_transform
from fmask.data.imagenette import CorruptImageError, ImagenetteUnavailable, find_data_root, list_split, resolve_classes

__all__ = ["decode_image", "TensorImageDataset", "load_split", "content_key", "CACHE_VERSION"]

#: bump when decoding or the cache layout changes (2: packed storage, content key, 16-bit PNGs)
CACHE_VERSION = 2


# ------------------------------------------------------------------------------------------- decoding
def _to_8bit(im):
    """16-bit grayscale (PIL modes ``I;16*``, or ``I`` with values above 255) scaled to 8-bit ``L``.

    PIL's own ``convert("RGB")`` clips such images at 255 (a saturated, nearly white image); the original's
    ``ImageFolder`` loader did the same, but Imagenette holds no 16-bit files, so this only matters for
    other data. The scale is 255 / 65535 (= 1/257), rounded.
    """
    import numpy as np
    from PIL import Image

    if im.mode.startswith("I;16") or im.mode == "I":
        a = np.asarray(im).astype(np.float64)
        if im.mode.startswith("I;16") or (a.size and a.max() > 255):
            a = a / 257.0
        return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), mode="L")
    return im


def decode_image(path: str | os.PathLike, image_size: int, channels: int = 1) -> torch.Tensor:
    """Open ``path`` with PIL, ``Resize(image_size)`` (shorter side, bilinear, antialiased, as the original)
    and convert to grayscale (``channels=1``) or RGB; returns uint8 (C, H', W').

    16-bit grayscale files are scaled to 8 bits first (:func:`_to_8bit`). Raises :class:`CorruptImageError`
    naming the file when it cannot be decoded.
    """
    from PIL import Image
    from torchvision.transforms import functional as F

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    try:
        with Image.open(path) as im:
            im = _to_8bit(im).convert("RGB")  # as ImageFolder's loader
            im = F.resize(im, image_size)
            if channels == 1:
                im = im.convert("L")  # == transforms.Grayscale()
            t = F.pil_to_tensor(im)
    except Exception as exc:  # PIL raises several types (UnidentifiedImageError, OSError, SyntaxError...)
        raise CorruptImageError(f"cannot decode image file {path}: {exc}") from exc
    return t


# ------------------------------------------------------------------------------------------- datasets
def _pack(images: Sequence[torch.Tensor] | torch.Tensor, sizes: torch.Tensor | None = None):
    """(flat uint8 buffer, sizes (N, 2)) of uint8 (C, h, w) images, or of a padded (N, C, H, W) batch + sizes."""
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        if sizes is None:
            sizes = torch.tensor([list(images.shape[-2:])] * len(images), dtype=torch.long)
        imgs = [images[k, :, :h, :w] for k, (h, w) in enumerate(torch.as_tensor(sizes).tolist())]
    else:
        imgs = list(images)
        sizes = torch.tensor([[t.shape[1], t.shape[2]] for t in imgs], dtype=torch.long).view(-1, 2)
    flat = torch.cat([t.contiguous().reshape(-1) for t in imgs]) if imgs else torch.zeros(0, dtype=torch.uint8)
    return flat, torch.as_tensor(sizes, dtype=torch.long)


@dataclass
class TensorImageDataset(Dataset):
    """Decoded images kept as packed uint8 in memory; items are float (C, S, S) in [0, 1] and int64 labels.

    ``images``: uint8, either packed (1-D: image k's C·h·w values, row-major, one after the other) or a
    (N, C, H, W) batch, top-left aligned and zero padded (packed on construction); each image is resized to
    shorter side S. ``sizes``: int64 (N, 2) true (h, w) of each; ``channels``: C (needed for packed input).
    ``train=False``: items are ``CenterCrop(S)`` (exactly the original eval pipeline).
    ``train=True``: items go through the torchvision v2 train transform one by one (reference path);
    training uses :meth:`batches`, the same augmentation done batch-wise (fast; see :class:`BatchTrainTransform`),
    where a batch is zero padded only to its own largest image.
    ``skipped`` lists ``(path, reason)`` of files dropped by ``skip_corrupt``.
    """

    images: torch.Tensor
    sizes: torch.Tensor
    labels: torch.Tensor
    image_size: int
    train: bool = False
    regime: str = "vanilla"
    paths: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    channels: int | None = None

    def __post_init__(self) -> None:
        self.labels = torch.as_tensor(self.labels, dtype=torch.long)
        if not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8:
            raise ValueError(f"images must be a uint8 tensor, got {getattr(self.images, 'dtype', type(self.images))}")
        if self.images.ndim == 4:
            c = int(self.images.shape[1])
            if self.channels not in (None, c):
                raise ValueError(f"channels={self.channels} but images have {c}")
            self.channels = c
            self.images, self.sizes = _pack(self.images, None if self.sizes is None else self.sizes)
        elif self.images.ndim != 1:
            raise ValueError(f"images must be packed (1-D) or (N, C, H, W); got shape {tuple(self.images.shape)}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3 (give it for packed images), got {self.channels}")
        self.sizes = torch.as_tensor(self.sizes, dtype=torch.long).view(-1, 2)
        if not (len(self.labels) == len(self.sizes)):
            raise ValueError(f"{len(self.sizes)} sizes but {len(self.labels)} labels")
        numel = self.channels * self.sizes[:, 0] * self.sizes[:, 1]
        self._offsets = torch.cat([torch.zeros(1, dtype=torch.long), numel.cumsum(0)])
        if int(self._offsets[-1]) != self.images.numel():
            raise ValueError(f"packed images hold {self.images.numel()} values, sizes need {int(self._offsets[-1])}")
        check_regime(self.regime)
        self._item_tf = train_transform(self.image_size, self.regime) if self.train else eval_transform(self.image_size)
        self.batch_transform = BatchTrainTransform(self.image_size, self.regime)

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the decoded content: packed pixels, sizes, labels, S and C (names the data a model
        or mask saw; the train flag and regime are views, not content)."""
        if getattr(self, "_fingerprint", None) is None:
            h = hashlib.sha256(f"{self.image_size}:{self.channels}:{len(self)}".encode())
            for t in (self.images, self.sizes, self.labels):
                h.update(t.contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else int(self.labels.max()) + 1

    @property
    def square(self) -> bool:
        """All images are exactly S×S (then the packed buffer is an (N, C, S, S) batch)."""
        return bool((self.sizes == self.image_size).all())

    def __len__(self) -> int:
        return len(self.labels)

    def _raw(self, i: int) -> torch.Tensor:
        h, w = self.sizes[i].tolist()
        o = int(self._offsets[i])
        return self.images[o : o + self.channels * h * w].view(self.channels, h, w)

    def padded(self, idx: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """uint8 (B, C, H, W) of the images ``idx``, top-left aligned, zero padded to *their* largest h, w."""
        idx = [int(i) for i in torch.as_tensor(idx).reshape(-1).tolist()]
        if self.square:
            s = self.image_size
            return self.images.view(len(self), self.channels, s, s)[idx]
        sz = self.sizes[idx]
        H, W = (int(sz[:, 0].max()), int(sz[:, 1].max())) if idx else (self.image_size, self.image_size)
        out = torch.zeros(len(idx), self.channels, H, W, dtype=torch.uint8)
        for k, i in enumerate(idx):
            t = self._raw(i)
            out[k, :, : t.shape[1], : t.shape[2]] = t
        return out

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._item_tf(self._raw(i)), self.labels[i]

    def with_options(self, *, train: bool | None = None, regime: str | None = None) -> "TensorImageDataset":
        """The same images (shared, not copied) with another train flag / regime."""
        return TensorImageDataset(
            self.images, self.sizes, self.labels, self.image_size,
            self.train if train is None else train, self.regime if regime is None else regime,
            self.paths, self.classes, self.skipped, self.channels,
        )

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval view of every image stacked: float (N, C, S, S) in [0, 1], labels int64 (N,)."""
        if self.square:
            s = self.image_size
            return self.images.view(len(self), self.channels, s, s).float() / 255.0, self.labels.clone()
        ev = eval_transform(self.image_size)
        return torch.stack([ev(self._raw(i)) for i in range(len(self))]), self.labels.clone()

    def batches(
        self, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu", shuffle: bool = True
    ):
        """Yield ``(images, labels)`` batches on ``device``: float (B, C, S, S) in [0, 1], int64 (B,).

        With ``train=True`` images get the random train augmentation (drawn from ``generator``), otherwise
        the eval centre crop. ``shuffle`` draws a permutation from ``generator`` first.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        square = self.square
        for s in range(0, n, batch_size):
            idx = order[s : s + batch_size]
            y = self.labels[idx].to(device)
            if self.train:
                x = self.padded(idx).to(device)
                yield self.batch_transform(x, self.sizes[idx], generator), y
            elif square:
                yield self.padded(idx).to(device).float() / 255.0, y
            else:
                yield torch.stack([self[int(i)][0] for i in idx]).to(device), y


def _decode_all(paths: list[Path], image_size: int, channels: int, skip_corrupt: bool, progress: bool):
    def work(p: Path):
        try:
            return decode_image(p, image_size, channels), None
        except CorruptImageError as exc:
            if not skip_corrupt:
                raise
            return None, str(exc)

    out: list[tuple[torch.Tensor | None, str | None]] = []
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for r in progress_bar(pool.map(work, paths), progress=progress, total=len(paths), desc="decode images"):
            out.append(r)
    return out


def content_key(paths: Sequence[Path], root: Path) -> dict[str, Any]:
    """What identifies a list of image files by content: count, and one BLAKE2b over every file's relative
    path, byte size and bytes (0.85 s for the 6,644 images of the paper's subset, warm file cache)."""
    h = hashlib.blake2b(digest_size=32)
    for p in paths:
        rel = Path(p).relative_to(root).as_posix()
        with open(p, "rb") as fh:
            data = fh.read()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(hashlib.blake2b(data, digest_size=32).digest())
    return {"n": len(paths), "content_blake2b": h.hexdigest()}


def load_split(
    split: str,
    *,
    root: str | os.PathLike | None = None,
    classes: str | Sequence[int | str] = "paper",
    image_size: int = 128,
    channels: int = 1,
    max_per_class: int | None = None,
    seed: int = 0,
    train: bool | None = None,
    regime: str = "vanilla",
    skip_corrupt: bool = False,
    store: Any = None,
    progress: bool = True,
) -> TensorImageDataset:
    """Decode ``split`` once into an in-memory uint8 cache and return a :class:`TensorImageDataset`.

    ``root``/``$FMASK_DATA`` locate the data (see :func:`fmask.data.find_data_root`). ``train`` (default:
    ``split == "train"``) selects the random train augmentation for ``regime`` or the eval centre crop.
    ``store`` (an :class:`fmask.infra.store.ArtifactStore`) caches the decoded tensors on disk under kind
    ``"imagecache"``, keyed by the files' content (:func:`content_key`), size and channels. Corrupt files raise
    :class:`CorruptImageError` naming the file, unless ``skip_corrupt=True``, which drops them, warns, and
    lists them in ``dataset.skipped``.
    """
    if int(image_size) < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    check_regime(regime)
    data_root = find_data_root(root)
    paths, labels = list_split(data_root, split, classes, max_per_class, seed)
    wnids = resolve_classes(classes)
    rel = [p.relative_to(data_root).as_posix() for p in paths]
    cached = None
    if store is not None:
        params = {
            **content_key(paths, data_root),
            "image_size": int(image_size),
            "channels": int(channels),
            "skip_corrupt": bool(skip_corrupt),
            "version": CACHE_VERSION,
        }
        cached = store.load("imagecache", params)
    if cached is not None:
        payload, _ = cached
        images, sizes, labels_t = payload["images"], payload["sizes"], payload["labels"]
        kept, skipped = list(payload["paths"]), [tuple(s) for s in payload["skipped"]]
    else:
        decoded = _decode_all(paths, int(image_size), channels, skip_corrupt, progress)
        imgs, lab, kept, skipped = [], [], [], []
        for (img, err), y, r in zip(decoded, labels, rel):
            if img is None:
                skipped.append((r, str(err)))
            else:
                imgs.append(img)
                lab.append(y)
                kept.append(r)
        if not imgs:
            raise ImagenetteUnavailable(f"no decodable images in {data_root}/{split}")
        images, sizes = _pack(imgs)
        labels_t = torch.tensor(lab, dtype=torch.long)
        if store is not None:
            store.save(
                "imagecache",
                params,
                {"images": images, "sizes": sizes, "labels": labels_t, "paths": kept, "skipped": [list(s) for s in skipped]},
                {"split": split, "classes": wnids, "root": str(data_root)},
            )
    if skipped:
        warnings.warn(
            f"skip_corrupt=True: skipped {len(skipped)} unreadable file(s) in {data_root}/{split}: "
            + "; ".join(s[0] for s in skipped[:10]) + (" ..." if len(skipped) > 10 else ""),
            stacklevel=2,
        )
    is_train = split == "train" if train is None else bool(train)
    return TensorImageDataset(images, sizes, labels_t, int(image_size), is_train, regime, kept, wnids, skipped,
                              channels)
