"""Imagenette for fmask: locating/downloading it, the paper's class subsets, transforms, decoded datasets.

The package has one module per concern (the Imagenette modules' public names are re-exported here, so ``from
fmask.data import load_split`` works):

* :mod:`fmask.data.imagenette`: class subsets (``"paper"`` = folders [1, 3, 4, 5, 6] as the original code,
  ``"first5"`` = the counts in the paper's text), :func:`find_data_root` (``root`` → ``$FMASK_DATA`` → download
  cache), :func:`download_imagenette`, :func:`list_split` (paths and labels, nothing decoded);
* :mod:`fmask.data.augment`: the original's train/eval transforms and :class:`BatchTrainTransform`, the same
  random train augmentation done batch-wise; the regimes' ``RandomAffine`` settings come from
  :data:`fmask.data.regimes.AFFINE` (re-exported as ``REGIME_AFFINE``);
* :mod:`fmask.data.datasets`: :func:`decode_image`, :class:`TensorImageDataset` (packed uint8 images in
  memory) and :func:`load_split`, whose disk cache is keyed by the files' content;
* :mod:`fmask.data.fake`: :func:`write_fake_imagenette`, a tiny fake Imagenette folder for tests and demos;
* :mod:`fmask.data.images`: a user's images (a folder, class sub-folders or a ``.pt`` file) for masks of their own
  model; import from there (``from fmask.data.images import load_images``).

Conventions: images are float32 tensors in [0, 1] shaped (C, S, S) (C = 1 grayscale by default, 3 with
``channels=3``); labels are int64 in 0..K-1 in the order of the chosen classes. Normalisation (mean 0.449,
std 0.226) is NOT applied here; it lives in :class:`fmask.models.zoo.Normalized`.
"""
from __future__ import annotations

import importlib
from typing import Any

#: each public name -> the module that defines it; looked up on first use, so that importing a light module
#: of this package (``fmask.data.regimes``) does not import torch through the package
_HOMES: dict[str, str] = {
    **{n: "augment" for n in ("REGIME_AFFINE", "BatchTrainTransform", "eval_transform", "pil_transform",
                              "train_transform")},
    **{n: "datasets" for n in ("CACHE_VERSION", "TensorImageDataset", "content_key", "decode_image", "load_split")},
    **{n: "imagenette" for n in ("CLASS_NAMES", "FIRST5_CLASSES", "IMAGE_EXTENSIONS", "IMAGENETTE_URLS",
                                 "IMAGENETTE_WNIDS", "PAPER_CLASSES", "CorruptImageError", "ImagenetteUnavailable",
                                 "download_imagenette", "find_data_root", "list_split", "resolve_classes")},
    "planted_frequency_dataset": "synthetic",
    "write_fake_imagenette": "fake",
}

__all__ = [
    "IMAGENETTE_WNIDS",
    "CLASS_NAMES",
    "PAPER_CLASSES",
    "FIRST5_CLASSES",
    "IMAGENETTE_URLS",
    "IMAGE_EXTENSIONS",
    "REGIME_AFFINE",
    "CACHE_VERSION",
    "ImagenetteUnavailable",
    "CorruptImageError",
    "resolve_classes",
    "find_data_root",
    "download_imagenette",
    "list_split",
    "decode_image",
    "train_transform",
    "eval_transform",
    "pil_transform",
    "TensorImageDataset",
    "BatchTrainTransform",
    "content_key",
    "load_split",
    "planted_frequency_dataset",
    "write_fake_imagenette",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'fmask.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fmask.data.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
