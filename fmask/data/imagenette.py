"""Imagenette on disk: the class subsets, locating / downloading the data, listing a split's files.

Class subsets (folders sorted by WordNet id, as ``torchvision.datasets.ImageFolder`` orders them):

* ``"paper"`` (default): folder indices [1, 3, 4, 5, 6] = English springer, chain saw, church, French horn,
  garbage truck; 4,671 train / 1,973 val images. This is what the original code selects
  (``loaddata.ImagenetSubset``) and what every accuracy it reports is measured on.
* ``"first5"``: folder indices [0, 1, 2, 3, 4]; 4,710 train / 1,934 val images, the counts printed in the
  paper's text.
* an explicit list of WordNet ids or folder indices.

Either way the chosen classes are relabelled 0..K-1 in the given order. Nothing here decodes an image
(see :mod:`fmask.data.datasets`).
"""
from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

import torch

from fmask.infra.runtime import progress_bar

__all__ = [
    "IMAGENETTE_WNIDS", "CLASS_NAMES", "PAPER_CLASSES", "FIRST5_CLASSES", "IMAGENETTE_URLS", "IMAGE_EXTENSIONS",
    "ImagenetteUnavailable", "CorruptImageError", "resolve_classes", "find_data_root", "download_imagenette",
    "list_split",
]

IMAGENETTE_WNIDS: tuple[str, ...] = (
    "n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
    "n03394916", "n03417042", "n03425413", "n03445777", "n03888257",
)
CLASS_NAMES: dict[str, str] = dict(zip(IMAGENETTE_WNIDS, (
    "tench", "English springer", "cassette player", "chain saw", "church",
    "French horn", "garbage truck", "gas pump", "golf ball", "parachute",
)))
PAPER_CLASSES: tuple[int, ...] = (1, 3, 4, 5, 6)
FIRST5_CLASSES: tuple[int, ...] = (0, 1, 2, 3, 4)
IMAGENETTE_URLS: dict[str, str] = {
    "imagenette2-160": "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz",
    "imagenette2-320": "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz",
    "imagenette2": "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2.tgz",
}
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff")

class ImagenetteUnavailable(RuntimeError):
    """Imagenette is neither where we were told to look nor downloadable."""


class CorruptImageError(ValueError):
    """An image file could not be decoded; the message names the file."""

# ----------------------------------------------------------------------------------------------- classes
def resolve_classes(classes: str | Sequence[int | str] = "paper") -> list[str]:
    """WordNet ids for ``"paper"``, ``"first5"`` or an explicit list of wnids / folder indices (0..9)."""
    if isinstance(classes, str):
        if classes == "paper":
            return [IMAGENETTE_WNIDS[i] for i in PAPER_CLASSES]
        if classes == "first5":
            return [IMAGENETTE_WNIDS[i] for i in FIRST5_CLASSES]
        raise ValueError(f"classes must be 'paper', 'first5' or a list of wnids/indices, got {classes!r}")
    out: list[str] = []
    for c in classes:
        if isinstance(c, bool):
            raise ValueError(f"bad class entry {c!r}")
        if isinstance(c, int):
            if not 0 <= c < len(IMAGENETTE_WNIDS):
                raise ValueError(f"class index {c} out of range 0..{len(IMAGENETTE_WNIDS) - 1}")
            out.append(IMAGENETTE_WNIDS[c])
        elif isinstance(c, str) and c.startswith("n") and c[1:].isdigit():
            out.append(c)
        else:
            raise ValueError(f"class entry {c!r} is neither a folder index nor a WordNet id like 'n02102040'")
    if len(out) < 2:
        raise ValueError(f"need at least two classes, got {out}")
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate classes in {out}")
    return out


# ------------------------------------------------------------------------------------------- locating
def _default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fmask"


def _check_layout(root: Path, origin: str) -> Path:
    if not root.exists():
        raise ImagenetteUnavailable(f"Imagenette folder {root} (from {origin}) does not exist")
    missing = [s for s in ("train", "val") if not (root / s).is_dir()]
    if missing:
        raise ImagenetteUnavailable(
            f"Imagenette folder {root} (from {origin}) lacks {', '.join(s + '/' for s in missing)}; expected the "
            "standard layout train/<wnid>/*.JPEG and val/<wnid>/*.JPEG"
        )
    return root


def find_data_root(
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    variant: str = "imagenette2-160",
    cache_dir: str | os.PathLike | None = None,
    timeout: float = 30.0,
) -> Path:
    """Locate Imagenette: ``root`` if given, else ``$FMASK_DATA``, else ``<cache>/<variant>`` (downloaded there
    with :func:`download_imagenette` when missing and ``download`` is true).

    An explicit ``root`` or ``$FMASK_DATA`` that does not exist is an error (never silently replaced by a
    download). Raises :class:`ImagenetteUnavailable` with what was tried.
    """
    if root is not None and str(root) != "":
        return _check_layout(Path(root).expanduser(), "the data_root parameter")
    env = os.environ.get("FMASK_DATA")
    if env:
        return _check_layout(Path(env).expanduser(), "$FMASK_DATA")
    if variant not in IMAGENETTE_URLS:
        raise ValueError(f"unknown Imagenette variant {variant!r}; choose one of {sorted(IMAGENETTE_URLS)}")
    cache = Path(cache_dir) if cache_dir is not None else _default_cache()
    target = cache / variant
    if target.exists():
        return _check_layout(target, "the download cache")
    if not download:
        raise ImagenetteUnavailable(
            f"no Imagenette: no data_root given, $FMASK_DATA unset, and {target} missing (download disabled)"
        )
    return download_imagenette(cache, url=IMAGENETTE_URLS[variant], timeout=timeout)


def download_imagenette(
    dest: str | os.PathLike,
    url: str = IMAGENETTE_URLS["imagenette2-160"],
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download and unpack the official Imagenette archive ``url`` into ``dest``; returns the unpacked folder.

    Unpacks into a temporary folder and renames it into place, so an interrupted download leaves nothing
    half-written. Raises :class:`ImagenetteUnavailable` naming the URL and the cause when it fails (e.g. no
    network) and telling how to point ``FMASK_DATA`` at a local copy instead.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    name = Path(url.rsplit("/", 1)[-1]).name
    folder = name[: -len(".tgz")] if name.endswith(".tgz") else name.split(".")[0]
    final = dest / folder
    if final.exists():
        return _check_layout(final, f"a previous download of {url}")
    hint = "Set FMASK_DATA (or pass data_root) to a local Imagenette copy in the layout train/<wnid>/*.JPEG."
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        archive = Path(tmp) / name
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(archive, "wb") as fh:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with progress_bar(progress=progress, total=total, unit="B", unit_scale=True, desc=f"download {name}") as bar:
                    while chunk := resp.read(1 << 20):
                        fh.write(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
            raise ImagenetteUnavailable(f"could not download Imagenette from {url}: {exc!r}. {hint}") from exc
        try:
            with tarfile.open(archive) as tf:
                try:
                    tf.extractall(Path(tmp) / "x", filter="data")
                except TypeError:  # Python < 3.11.4 without extraction filters
                    tf.extractall(Path(tmp) / "x")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ImagenetteUnavailable(f"downloaded {url} but could not unpack it: {exc!r}. {hint}") from exc
        unpacked = Path(tmp) / "x" / folder
        if not unpacked.is_dir():
            raise ImagenetteUnavailable(f"archive {url} did not contain the folder {folder!r}. {hint}")
        os.replace(unpacked, final)
    return _check_layout(final, f"the download of {url}")


def _select(paths: list[Path], n: int | None, seed: int, tag: str) -> list[Path]:
    """Deterministic choice of ``n`` of the sorted ``paths`` (seeded permutation, result kept sorted)."""
    if n is None or n >= len(paths):
        return paths
    h = int(hashlib.sha256(f"{seed}:{tag}".encode()).hexdigest()[:8], 16)
    g = torch.Generator().manual_seed(h)
    idx = torch.randperm(len(paths), generator=g)[:n].sort().values.tolist()
    return [paths[i] for i in idx]


def list_split(
    root: str | os.PathLike,
    split: str,
    classes: str | Sequence[int | str] = "paper",
    max_per_class: int | None = None,
    seed: int = 0,
) -> tuple[list[Path], list[int]]:
    """Image paths and labels of ``split`` (``"train"``/``"val"``) for the chosen classes, without decoding.

    Files are sorted by name within each class; labels are 0..K-1 in the order of ``classes``.
    ``max_per_class`` keeps a deterministic (``seed``-dependent) choice of that many files per class.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if max_per_class is not None and int(max_per_class) < 1:
        raise ValueError(f"max_per_class must be >= 1 or None, got {max_per_class}")
    root = Path(root)
    wnids = resolve_classes(classes)
    paths: list[Path] = []
    labels: list[int] = []
    for label, wnid in enumerate(wnids):
        folder = root / split / wnid
        if not folder.is_dir():
            raise ImagenetteUnavailable(f"class folder {folder} is missing (classes={list(wnids)})")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not files:
            raise ImagenetteUnavailable(f"class folder {folder} holds no images")
        files = _select(files, max_per_class, seed, f"{split}/{wnid}")
        paths += files
        labels += [label] * len(files)
    return paths, labels

