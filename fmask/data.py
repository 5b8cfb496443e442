"""Imagenette: locating/downloading it, the paper's class subsets, transforms and cached tensor datasets.

Conventions: images are float32 tensors in [0, 1] shaped (C, S, S) (C = 1 grayscale by default, 3 with
``channels=3``); labels are int64 in 0..K-1 in the order of the chosen classes. Normalisation (mean 0.449,
std 0.226) is NOT applied here; it lives in :class:`fmask.models.Normalized`.

Class subsets (folders sorted by WordNet id, as ``torchvision.datasets.ImageFolder`` orders them):

* ``"paper"`` (default): folder indices [1, 3, 4, 5, 6] = English springer, chain saw, church, French horn,
  garbage truck; 4,671 train / 1,973 val images. This is what the original code selects
  (``loaddata.ImagenetSubset``) and what every accuracy it reports is measured on.
* ``"first5"``: folder indices [0, 1, 2, 3, 4]; 4,710 train / 1,934 val images, the counts printed in the
  paper's text.
* an explicit list of WordNet ids or folder indices.

Either way the chosen classes are relabelled 0..K-1 in the given order.

Transforms follow the original ``loaddata.py`` (S = 128 in the paper):

* train: ``Resize(S)``, ``RandomResizedCrop(S)``, ``RandomHorizontalFlip``, ``Grayscale``, the regime's
  ``RandomAffine``, ``ToTensor``;
* eval: ``Resize(S)``, ``CenterCrop(S)``, ``Grayscale``, ``ToTensor``.

Speed: :func:`load_split` decodes every JPEG once, applies the deterministic ``Resize(S)`` and ``Grayscale``
with PIL exactly as the original, and keeps uint8 tensors in memory (optionally cached on disk through an
:class:`fmask.store.ArtifactStore`). The random train transforms then run on those uint8 tensors with
``torchvision.transforms.v2`` (per item) or, for training, batch-wise with the same parameter
distributions (:class:`BatchTrainTransform`). Eval images are therefore the PIL pipeline's uint8 levels
exactly; train images differ from it only by rounding order (grayscale conversion and uint8 rounding happen
before the random crop's interpolation instead of after). One more difference for non-square source images
only: a crop wider than S is downscaled without antialiasing in the batched path.
"""
from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import Dataset

__all__ = [
    "IMAGENETTE_WNIDS",
    "CLASS_NAMES",
    "PAPER_CLASSES",
    "FIRST5_CLASSES",
    "IMAGENETTE_URLS",
    "REGIME_AFFINE",
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
    "load_split",
    "planted_frequency_dataset",
    "write_fake_imagenette",
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

#: ``RandomAffine`` keyword arguments per training regime (None: no affine; the original's vanilla
#: ``RandomAffine(degrees=0)`` is the identity). ``adversarial`` uses vanilla data augmentation.
REGIME_AFFINE: dict[str, dict[str, Any] | None] = {
    "vanilla": None,
    "adversarial": None,
    "scale": {"degrees": 0.0, "scale": (0.5, 1.5)},
    "translate": {"degrees": 0.0, "translate": (0.4, 0.4)},
    "rotate": {"degrees": 180.0},
}


class ImagenetteUnavailable(RuntimeError):
    """Imagenette is neither where we were told to look nor downloadable."""


class CorruptImageError(ValueError):
    """An image file could not be decoded; the message names the file."""


def planted_frequency_dataset(*args, **kwargs):
    """Re-export of :func:`fmask.synthetic.planted_frequency_dataset` (imported lazily)."""
    from .synthetic import planted_frequency_dataset as _pfd

    return _pfd(*args, **kwargs)


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
    from tqdm.auto import tqdm

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
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {name}", disable=not progress or None) as bar:
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


# ------------------------------------------------------------------------------------------- decoding
def decode_image(path: str | os.PathLike, image_size: int, channels: int = 1) -> torch.Tensor:
    """Open ``path`` with PIL, ``Resize(image_size)`` (shorter side, bilinear, antialiased, as the original)
    and convert to grayscale (``channels=1``) or RGB; returns uint8 (C, H', W').

    Raises :class:`CorruptImageError` naming the file when it cannot be decoded.
    """
    from PIL import Image
    from torchvision.transforms import functional as F

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")  # as ImageFolder's loader
            im = F.resize(im, image_size)
            if channels == 1:
                im = im.convert("L")  # == transforms.Grayscale()
            t = F.pil_to_tensor(im)
    except Exception as exc:  # PIL raises several types (UnidentifiedImageError, OSError, SyntaxError...)
        raise CorruptImageError(f"cannot decode image file {path}: {exc}") from exc
    return t


def _affine(regime: str):
    from torchvision.transforms import v2

    if regime not in REGIME_AFFINE:
        raise ValueError(f"unknown regime {regime!r}; choose one of {sorted(REGIME_AFFINE)}")
    kw = REGIME_AFFINE[regime]
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
    kw = REGIME_AFFINE.get(regime, "missing")
    if kw == "missing":
        raise ValueError(f"unknown regime {regime!r}")
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
        if regime not in REGIME_AFFINE:
            raise ValueError(f"unknown regime {regime!r}; choose one of {sorted(REGIME_AFFINE)}")
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


# ------------------------------------------------------------------------------------------- datasets
@dataclass
class TensorImageDataset(Dataset):
    """Decoded images kept as uint8 in memory; items are float (C, S, S) in [0, 1] and int64 labels.

    ``images``: uint8 (N, C, H, W), each image resized to shorter side S and stored top-left aligned
    (zero-padded to the largest H, W when sizes differ); ``sizes``: int64 (N, 2) true (h, w) of each.
    ``train=False``: items are ``CenterCrop(S)`` (exactly the original eval pipeline).
    ``train=True``: items go through the torchvision v2 train transform one by one (reference path);
    training uses :meth:`batches`, the same augmentation done batch-wise (fast; see :class:`BatchTrainTransform`).
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

    def __post_init__(self) -> None:
        self.labels = torch.as_tensor(self.labels, dtype=torch.long)
        self.sizes = torch.as_tensor(self.sizes, dtype=torch.long)
        if self.images.ndim != 4 or self.images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if not (len(self.images) == len(self.labels) == len(self.sizes)):
            raise ValueError(f"{len(self.images)} images, {len(self.sizes)} sizes, {len(self.labels)} labels")
        if self.regime not in REGIME_AFFINE:
            raise ValueError(f"unknown regime {self.regime!r}; choose one of {sorted(REGIME_AFFINE)}")
        self._item_tf = train_transform(self.image_size, self.regime) if self.train else eval_transform(self.image_size)
        self.batch_transform = BatchTrainTransform(self.image_size, self.regime)

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else int(self.labels.max()) + 1

    def __len__(self) -> int:
        return len(self.labels)

    def _raw(self, i: int) -> torch.Tensor:
        h, w = self.sizes[i].tolist()
        return self.images[i, :, :h, :w]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._item_tf(self._raw(i)), self.labels[i]

    def with_options(self, *, train: bool | None = None, regime: str | None = None) -> "TensorImageDataset":
        """The same images (shared, not copied) with another train flag / regime."""
        return TensorImageDataset(
            self.images, self.sizes, self.labels, self.image_size,
            self.train if train is None else train, self.regime if regime is None else regime,
            self.paths, self.classes, self.skipped,
        )

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval view of every image stacked: float (N, C, S, S) in [0, 1], labels int64 (N,)."""
        if bool((self.sizes == self.image_size).all()):
            return self.images.float() / 255.0, self.labels.clone()
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
        square = bool((self.sizes == self.image_size).all())
        for s in range(0, n, batch_size):
            idx = order[s : s + batch_size]
            y = self.labels[idx].to(device)
            if self.train:
                x = self.images[idx].to(device)
                yield self.batch_transform(x, self.sizes[idx], generator), y
            elif square:
                yield self.images[idx].to(device).float() / 255.0, y
            else:
                yield torch.stack([self[int(i)][0] for i in idx]).to(device), y


def _decode_all(paths: list[Path], image_size: int, channels: int, skip_corrupt: bool, progress: bool):
    from tqdm.auto import tqdm

    def work(p: Path):
        try:
            return decode_image(p, image_size, channels), None
        except CorruptImageError as exc:
            if not skip_corrupt:
                raise
            return None, str(exc)

    out: list[tuple[torch.Tensor | None, str | None]] = []
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for r in tqdm(pool.map(work, paths), total=len(paths), desc="decode images", disable=None if progress else True):
            out.append(r)
    return out


def _pad_stack(imgs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    sizes = torch.tensor([[t.shape[1], t.shape[2]] for t in imgs], dtype=torch.long)
    H, W = int(sizes[:, 0].max()), int(sizes[:, 1].max())
    out = torch.zeros(len(imgs), imgs[0].shape[0], H, W, dtype=torch.uint8)
    for k, t in enumerate(imgs):
        out[k, :, : t.shape[1], : t.shape[2]] = t
    return out, sizes


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

    ``root``/``$FMASK_DATA`` locate the data (see :func:`find_data_root`). ``train`` (default:
    ``split == "train"``) selects the random train augmentation for ``regime`` or the eval centre crop.
    ``store`` (an :class:`fmask.store.ArtifactStore`) caches the decoded tensors on disk under kind
    ``"imagecache"``, keyed by the data folder's name, the file list, size and channels. Corrupt files raise
    :class:`CorruptImageError` naming the file, unless ``skip_corrupt=True``, which drops them, warns, and
    lists them in ``dataset.skipped``.
    """
    if int(image_size) < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    data_root = find_data_root(root)
    paths, labels = list_split(data_root, split, classes, max_per_class, seed)
    wnids = resolve_classes(classes)
    rel = [p.relative_to(data_root).as_posix() for p in paths]
    params = {
        "data": data_root.resolve().name,
        "files_sha256": hashlib.sha256("\n".join(rel).encode()).hexdigest(),
        "n": len(rel),
        "image_size": int(image_size),
        "channels": int(channels),
        "skip_corrupt": bool(skip_corrupt),
        "version": 1,
    }
    cached = store.load("imagecache", params) if store is not None else None
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
        images, sizes = _pad_stack(imgs)
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
    return TensorImageDataset(images, sizes, labels_t, int(image_size), is_train, regime, kept, wnids, skipped)


def write_fake_imagenette(
    root: str | os.PathLike, n_train: int = 8, n_val: int = 4, size: tuple[int, int] = (40, 48), seed: int = 0
) -> Path:
    """Write a tiny Imagenette-layout folder (all 10 wnids, RGB JPEGs) for tests and demos; returns ``root``.

    Class k (folder index) has mean brightness ``30 + 20 k`` plus noise and a class-dependent stripe
    frequency, so a classifier can learn it quickly. Images are ``size`` = (height, width).
    """
    import numpy as np
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    h, w = size
    yy = np.arange(h)[:, None]
    for split, n in (("train", n_train), ("val", n_val)):
        for k, wnid in enumerate(IMAGENETTE_WNIDS):
            folder = root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                stripes = 25 * np.sin(2 * np.pi * (k + 1) * yy / h) * np.ones((1, w))
                base = 30 + 20 * k + stripes + rng.normal(0, 8, (h, w))
                rgb = np.clip(np.stack([base, base * 0.9, base * 1.1], -1), 0, 255).astype(np.uint8)
                Image.fromarray(rgb).save(folder / f"{wnid}_{i:04d}.JPEG", quality=90)
    return root
