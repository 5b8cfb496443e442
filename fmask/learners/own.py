"""Fourier masks for your own classifier: any ``torch.nn.Module`` on [0, 1] images, grayscale or RGB.

Three steps, each usable on its own::

    from fmask.learners.own import prepare_model, load_images, learn_own_masks

    model = prepare_model("torchvision:resnet18", checkpoint="my_resnet.pt", num_classes=10,
                          mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    images, labels = load_images("my_images/", size=224)          # (N, 3, 224, 224) in [0, 1]
    result = learn_own_masks(model, images, targets=labels)        # per-image, per-channel masks
    result.masks                                                    # (N, 3, 224, 224), fft2 layout

* :func:`prepare_model` wraps the network in :class:`fmask.models.zoo.Normalized`, so the model takes images in
  [0, 1] and **declares** its normalisation (``mean``/``std``). fmask needs the declaration because, like the
  original code, masks act on the normalised image by default (``space="auto"``, see
  :func:`fmask.core.mask.pixel_offset`). A network that takes [0, 1] images directly is declared with ``mean=0,
  std=1``. Architectures are built with ``weights=None``: fmask never downloads weights.
* :func:`load_images` (:func:`fmask.data.images.load_images`) reads a folder of images (optionally one
  sub-folder per class: a folder name starting with an integer has that label, else the label is the folder's
  sorted position) or a ``.pt`` file; ``load_images(...).classes`` is the folder → label mapping.
* :func:`learn_own_masks` learns masks with :class:`fmask.learners.PerImageMasks` (one mask per image, the
  paper's λ = 0.07) or :class:`fmask.learners.DatasetMask` (one mask for all images, λ = 0.2); for C-channel
  images the masks have C channels (one per colour channel) unless ``shared_channels=True``.
* :func:`run_own_masks` chains the three and writes the :class:`~fmask.learners.MaskResult` atomically (the
  function behind ``fmask masks --arch ...``).

Images may have any size the network accepts (masks take the images' (H, W)).
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from fmask.data.images import IMAGE_SUFFIXES, load_images
from fmask.models.checkpoint import classifier_out, conv_in, load_strict, read_checkpoint
from fmask.models.zoo import ARCHS, Normalized, default_stats

__all__ = ["prepare_model", "load_images", "learn_own_masks", "run_own_masks", "check_out_path", "write_error",
           "IMAGE_SUFFIXES"]


# --------------------------------------------------------------------------------------------- model
def _first_conv(net: nn.Module) -> tuple[str, nn.Conv2d] | None:
    for name, mod in net.named_modules():
        if isinstance(mod, nn.Conv2d):
            return name, mod
    return None


def _set_submodule(net: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    setattr(parent, attr, new)


def _adapt_in_channels(net: nn.Module, in_channels: int) -> nn.Module:
    """Replace the first registered ``nn.Conv2d`` by a fresh one taking ``in_channels`` (same other settings),
    as fmask's own ``vgg11_bn``/``resnet18`` and the original code do for grayscale input."""
    found = _first_conv(net)
    if found is None:
        raise ValueError("cannot adapt in_channels: the network has no nn.Conv2d")
    name, conv = found
    if conv.in_channels == in_channels:
        return net
    if conv.groups != 1:
        raise ValueError(f"cannot adapt in_channels of the grouped first conv {name!r} (groups={conv.groups})")
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                    dilation=conv.dilation, bias=conv.bias is not None, padding_mode=conv.padding_mode)
    _set_submodule(net, name, new)
    return net


def _as_stats(v, c: int, name: str) -> tuple[float, ...]:
    t = torch.as_tensor(v, dtype=torch.float64).reshape(-1)
    if t.numel() == 1:
        t = t.expand(c)
    if t.numel() != c:
        raise ValueError(f"{name} has {t.numel()} values but the model takes {c} channels")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got {t.tolist()}")
    return tuple(float(x) for x in t)


def _build_arch(arch: str, num_classes: int, in_channels: int) -> nn.Module:
    source, sep, name = arch.partition(":")
    if not sep:
        source, name = "fmask", arch
    if source == "fmask":
        if name not in ARCHS:
            raise ValueError(f"unknown fmask arch {name!r}; choose one of {sorted(ARCHS)}")
        return ARCHS[name](in_channels=in_channels, num_classes=num_classes)
    if source == "torchvision":
        from torchvision import models as tvm

        available = set(tvm.list_models(module=tvm))
        if name not in available:
            raise ValueError(f"unknown torchvision classification model {name!r}; e.g. resnet18, vgg11_bn, "
                             f"mobilenet_v3_small, efficientnet_b0 (see torchvision.models.list_models())")
        net = tvm.get_model(name, weights=None, num_classes=num_classes)  # weights=None: never download
        return _adapt_in_channels(net, in_channels)
    raise ValueError(f"arch must be 'torchvision:<name>', 'fmask:<name>' or an fmask arch name, got {arch!r}")


def prepare_model(
    model_or_arch: nn.Module | str,
    *,
    checkpoint: str | os.PathLike | Mapping[str, Any] | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
) -> Normalized:
    """Turn a classifier into fmask's :class:`~fmask.models.zoo.Normalized` model on [0, 1] images, in eval mode.

    Args:
        model_or_arch: an ``nn.Module`` mapping normalised images (N, C, H, W) to logits (N, K), an fmask
            :class:`~fmask.models.zoo.Normalized` (returned as is, after loading ``checkpoint``), or an
            architecture string: ``"torchvision:<name>"`` (any torchvision classification model, e.g.
            ``torchvision:resnet18``), ``"fmask:<name>"`` or a bare fmask name (``vgg11_bn``, ``resnet18``,
            ``vgg_small``). Architectures are built with random weights (``weights=None``; nothing is ever
            downloaded) and their first ``nn.Conv2d`` is replaced to take ``in_channels`` when needed.
        checkpoint: path (read with ``torch.load(..., map_location="cpu", weights_only=True)``) or an already
            loaded dict, in any layout :func:`fmask.models.checkpoint.read_checkpoint` accepts: a plain
            state_dict, or a dict whose ``"state_dict"`` / ``"model"`` (or fmask artifact ``"payload"``) entry
            is one. Keys may carry a ``net.`` (fmask's wrapper), ``module.`` (DataParallel) or ``_orig_mod.``
            (torch.compile) prefix. A state_dict of a ``Normalized`` model
            also holds ``mean``/``std``: they are used when ``mean``/``std`` are not given, and must agree
            when they are. Loading is strict: missing or unexpected keys raise ValueError.
        num_classes: classes K of an architecture (default: read from the checkpoint's last linear layer,
            else 1000 for torchvision / 5 for fmask archs). Ignored for modules, except as a check.
        in_channels: image channels C (default: from ``mean``/``std`` when they are sequences, else the
            checkpoint's first conv, else the module's first conv, else 3 for architectures).
        mean, std: the normalisation the network expects, per channel (a number is used for every channel).
            For architectures they default to fmask's defaults (grayscale 0.449/0.226, RGB ImageNet stats,
            :func:`fmask.models.zoo.default_stats`); for a module they must be declared (``mean=0, std=1`` for a
            network that takes [0, 1] images directly).

    Returns:
        :class:`fmask.models.zoo.Normalized` in eval mode on the CPU (move it with ``.to(device)``).

    Raises:
        ValueError: unknown architecture, undeclared normalisation, channel/class mismatches, unreadable or
            non-matching checkpoints.
    """
    ck = read_checkpoint(checkpoint) if checkpoint is not None else None
    sd = ck.state_dict if ck is not None else None
    ck_mean, ck_std = (ck.mean, ck.std) if ck is not None else (None, None)
    for name, v in (("num_classes", num_classes), ("in_channels", in_channels)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if num_classes is not None and num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")

    if isinstance(model_or_arch, Normalized):
        if mean is not None or std is not None:
            raise ValueError("the model is already an fmask Normalized wrapper with its own mean/std; "
                             "do not pass mean/std (or pass the bare network)")
        wrapped = model_or_arch
        if sd is not None:
            load_strict(wrapped.net, sd, "the model")
            if ck_mean is not None and not (torch.allclose(ck_mean.float(), wrapped.mean.reshape(-1).cpu()) and
                                            torch.allclose(ck_std.float(), wrapped.std.reshape(-1).cpu())):
                raise ValueError(f"checkpoint declares mean/std {ck_mean.tolist()}/{ck_std.tolist()} but the "
                                 f"model has {wrapped.mean.reshape(-1).tolist()}/{wrapped.std.reshape(-1).tolist()}")
        if in_channels is not None and in_channels != wrapped.in_channels:
            raise ValueError(f"in_channels={in_channels} but the model takes {wrapped.in_channels} channels")
        return wrapped.eval()

    # how many channels?
    c = in_channels
    for v in (mean, std):
        if c is None and v is not None and torch.as_tensor(v).numel() > 1:
            c = int(torch.as_tensor(v).numel())
    if c is None and ck_mean is not None:
        c = int(ck_mean.numel())
    if c is None and sd is not None:
        c = conv_in(sd)

    if isinstance(model_or_arch, str):
        if c is None:
            c = 3
        k = num_classes if num_classes is not None else (classifier_out(sd) if sd is not None else None)
        if k is None:
            k = 1000 if model_or_arch.startswith("torchvision:") else 5
        net = _build_arch(model_or_arch, k, c)
    elif isinstance(model_or_arch, nn.Module):
        net = model_or_arch
        if c is None:
            found = _first_conv(net)
            if found is None:
                raise ValueError("cannot tell how many channels the model takes: pass in_channels")
            c = found[1].in_channels
    else:
        raise ValueError(f"model_or_arch must be an nn.Module or an architecture string, got "
                         f"{type(model_or_arch).__name__}")

    if mean is None and std is None and ck_mean is not None:
        mean_t, std_t = tuple(ck_mean.tolist()), tuple(ck_std.tolist())
    elif mean is None and std is None and isinstance(model_or_arch, str):
        try:
            mean_t, std_t = default_stats(c)
        except ValueError as e:
            raise ValueError(f"no default normalisation for {c} channels: pass mean and std") from e
    elif mean is None or std is None:
        raise ValueError("declare the network's normalisation: pass mean and std (per channel, or one number; "
                         "mean=0, std=1 for a network that takes [0, 1] images directly)")
    else:
        mean_t, std_t = _as_stats(mean, c, "mean"), _as_stats(std, c, "std")
        if ck_mean is not None and not (torch.allclose(ck_mean.double(), torch.tensor(mean_t, dtype=torch.float64),
                                                       atol=1e-6) and
                                        torch.allclose(ck_std.double(), torch.tensor(std_t, dtype=torch.float64),
                                                       atol=1e-6)):
            raise ValueError(f"checkpoint declares mean/std {ck_mean.tolist()}/{ck_std.tolist()} but "
                             f"mean={list(mean_t)}, std={list(std_t)} were passed")
    if len(mean_t) != c:
        raise ValueError(f"the normalisation has {len(mean_t)} channels but the model takes {c}")

    if sd is not None:
        load_strict(net, sd, f"the network {type(net).__name__}")
    try:
        wrapped = Normalized(net, mean_t, std_t)
    except ValueError as e:
        raise ValueError(f"invalid normalisation: {e}") from e
    if num_classes is not None and not isinstance(model_or_arch, str):
        out = _probe_classes(wrapped, c)
        if out is not None and out != num_classes:
            raise ValueError(f"num_classes={num_classes} but the model returns {out} logits")
    return wrapped.eval()


def _probe_classes(model: nn.Module, c: int) -> int | None:
    """Number of logits for a small probe image (None if the model rejects the probe size)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.full((1, c, 64, 64), 0.5))
        return int(out.shape[-1]) if isinstance(out, Tensor) and out.dim() == 2 else None
    except Exception:
        return None
    finally:
        model.train(was)


# --------------------------------------------------------------------------------------------- masks
_LEARNER_ONLY = {"space", "precision"}  # options learn_masks may not accept (the classes do)


def learn_own_masks(
    model: nn.Module,
    images: Tensor,
    *,
    targets: Tensor | None = None,
    per_image: bool = True,
    shared_channels: bool = False,
    desc: str | None = None,
    **learner_kwargs: Any,
):
    """Learn Fourier masks for your classifier on your images → :class:`fmask.learners.MaskResult`.

    Args:
        model: a classifier on [0, 1] images, ideally from :func:`prepare_model` (then masks act on the
            normalised image by default, as in the paper's code; for a model without a declared ``mean`` they
            act on pixels).
        images: float (N, C, H, W) in [0, 1], any size the model accepts.
        targets: int (N,) labels; None → the model's own predictions (the original's choice).
        per_image: True → :class:`fmask.learners.PerImageMasks` (masks (N, C', H, W)); False →
            :class:`fmask.learners.DatasetMask` (one mask (1, C', H, W)).
        shared_channels: False → one mask channel per image channel (C' = C, the default for RGB);
            True → one mask shared by all colour channels (C' = 1).
        desc: progress-bar label.
        **learner_kwargs: the learner's hyper-parameters (``lam``, ``lr``, ``steps`` / ``epochs``,
            ``patience``, ``batch_size``, ``schedule``, ``space``, ``precision``, ``seed``, ``device``,
            ``progress``); defaults are the paper's.

    The learners are used directly when they take a ``channels`` option; otherwise per-channel masks come
    from the classes (their default is one mask channel per image channel)
    and shared masks from :func:`fmask.learners.learn_masks` with ``channels=1`` (there ``space``/``precision``
    are passed on only if ``learn_masks`` accepts them; options it does not take are listed in
    ``result.metadata["own_model"]["options_not_supported"]``).
    """
    from fmask import learners as L

    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a tensor (N, C, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
    c = images.shape[1]
    declared = getattr(model, "mean", None)
    if isinstance(declared, Tensor) and declared.numel() != c:
        raise ValueError(f"the model declares {declared.numel()} channels (mean {declared.reshape(-1).tolist()}) "
                         f"but the images have {c}")
    if not per_image and "steps" in learner_kwargs and "epochs" not in learner_kwargs:
        learner_kwargs["epochs"] = learner_kwargs.pop("steps")  # dataset masks count epochs
    if per_image and "epochs" in learner_kwargs:
        raise ValueError("epochs is for dataset masks (per_image=False); per-image masks take steps=")
    cls = L.PerImageMasks if per_image else L.DatasetMask
    params = inspect.signature(cls.__init__).parameters
    unknown = set(learner_kwargs) - set(params) - {"self"}
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for {cls.__name__}; it takes "
                         f"{sorted(k for k in params if k not in ('self', 'model'))}")
    want = 1 if shared_channels else c
    dropped: list[str] = []
    if "channels" in params:
        res = cls(model, channels=want, **learner_kwargs)(images, targets, desc=desc)
    elif not shared_channels:
        res = cls(model, **learner_kwargs)(images, targets, desc=desc)
    else:
        lm_params = inspect.signature(L.learn_masks).parameters
        kw = {k: v for k, v in learner_kwargs.items() if k in lm_params}
        dropped = sorted(k for k in learner_kwargs if k not in lm_params and k != "epochs")
        if "epochs" in learner_kwargs:
            kw["steps"] = learner_kwargs["epochs"]
            kw.pop("epochs", None)
        if kw.get("schedule") == "constant":
            kw["schedule"] = None
        res = L.learn_masks(model, images, targets, per_image=per_image, channels=1, desc=desc, **kw)
    if res.masks.shape[1] != want:
        raise RuntimeError(f"the learner returned masks with {res.masks.shape[1]} channels, expected {want}")
    res.metadata = {**dict(res.metadata),
                    "own_model": {"shared_channels": bool(shared_channels), "per_image": bool(per_image),
                                  "image_shape": list(images.shape),
                                  "learner": cls.__name__ if not (shared_channels and "channels" not in params)
                                  else "learn_masks",
                                  "options_not_supported": dropped}}
    return res


def _is_mask_file(path: Path) -> bool:
    """True when ``path`` is a file :meth:`fmask.learners.MaskResult.save` / :func:`run_own_masks` wrote."""
    from fmask.learners.result import FORMAT

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            return False
    return isinstance(blob, Mapping) and blob.get("format") == FORMAT


def check_out_path(out: str | os.PathLike, *, inputs: Mapping[str, str | os.PathLike | None] | None = None,
                   force: bool = False) -> Path:
    """Refuse an output path before any work: returns ``out`` as a Path, or raises (one line naming the file).

    ``inputs`` maps a label (e.g. ``"--images"``) to an input path. Refused (ValueError): ``out`` resolves
    (``os.path.realpath``) to an input file, or lies inside an input folder; ``out`` is a folder; ``out`` is an
    existing file fmask did not write (not a :class:`~fmask.learners.MaskResult` file); ``out`` is an existing
    MaskResult file and ``force`` is False. Refused (OSError): ``out``'s folder (or its nearest existing
    ancestor, the missing folders being created on writing) is a file or not writable.
    """
    path = Path(out).expanduser()
    real = os.path.realpath(path)
    for label, given in dict(inputs or {}).items():
        if given is None:
            continue
        src = os.path.realpath(Path(given).expanduser())
        if real == src:
            raise ValueError(f"--out {out} is the {label} input {given}; choose another output file")
        if os.path.isdir(src) and os.path.commonpath([real, src]) == src:
            raise ValueError(f"--out {out} lies inside the {label} folder {given}; write the masks elsewhere")
    if os.path.isdir(real):
        raise ValueError(f"--out {out} is a folder; give a file name (e.g. {Path(out) / 'masks.pt'})")
    folder = os.path.dirname(real)
    while not os.path.exists(folder):  # missing folders are created when the file is written
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise NotADirectoryError(20, "the output file's folder is a file", folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(13, "cannot write the output file's folder", folder)
    if os.path.lexists(path):
        if not os.path.isfile(real) or not _is_mask_file(Path(real)):
            raise ValueError(f"--out {out} exists and is not an fmask mask file; refusing to replace it")
        if not force:
            raise ValueError(f"--out {out} already holds fmask masks; pass --force (force=True) to overwrite it")
    return path


def run_own_masks(
    model_or_arch: nn.Module | str,
    images_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    size: int | Sequence[int] | None = None,
    use_labels: bool = True,
    classes: Mapping[str, int] | Sequence[str] | None = None,
    force: bool = False,
    per_image: bool = True,
    shared_channels: bool = False,
    **learner_kwargs: Any,
):
    """prepare_model → load_images → learn_own_masks → write ``out`` atomically; returns the MaskResult.

    ``out`` is checked first (:func:`check_out_path`, with the images and the checkpoint as inputs): an
    existing mask file is replaced only with ``force=True``. ``images_path``'s channels follow the model
    (``in_channels`` of the prepared model). Labels found with the images are the targets when ``use_labels``
    (else the model's own predictions); ``classes`` is passed to :func:`load_images`. The file is the
    :meth:`fmask.learners.MaskResult.save` format (readable with ``MaskResult.load``), with metadata naming the
    model, checkpoint, images, settings and ``classes`` (the class folder → label mapping, or None), written
    with :func:`fmask.infra.atomic.atomic_torch_save`.
    """
    from fmask.infra.atomic import atomic_torch_save, jsonable
    from fmask.infra.integrity import versions

    check_out_path(out, inputs={"--images": images_path, "--checkpoint": checkpoint}, force=force)
    model = prepare_model(model_or_arch, checkpoint=checkpoint, num_classes=num_classes, in_channels=in_channels,
                          mean=mean, std=std)
    loaded = load_images(images_path, size=size, channels=model.in_channels, classes=classes)
    images, labels = loaded
    res = learn_own_masks(model, images, targets=labels if use_labels else None, per_image=per_image,
                          shared_channels=shared_channels, **learner_kwargs)
    meta = {**res.metadata, "model": model_or_arch if isinstance(model_or_arch, str) else type(model_or_arch).__name__,
            "checkpoint": None if checkpoint is None else str(checkpoint), "images": str(images_path),
            "size": size, "mean": model.mean.reshape(-1).tolist(), "std": model.std.reshape(-1).tolist(),
            "labels": "given" if (labels is not None and use_labels) else "model predictions",
            "classes": loaded.classes}
    res.metadata = jsonable(meta)
    payload = {**res.to_payload(), "metadata": res.metadata, "versions": versions()}  # MaskResult.save's format
    try:
        atomic_torch_save(payload, out)
    except (OSError, RuntimeError) as e:  # e.g. disk full inside torch's writer: name the file being written
        raise write_error(out, e) from e
    return res


def write_error(out: str | os.PathLike, e: BaseException) -> OSError:
    """An ``OSError`` naming ``out`` for a failed atomic write (torch's writer raises bare RuntimeErrors)."""
    import errno as _errno

    code = getattr(e, "errno", None) or _errno.EIO
    why = getattr(e, "strerror", None) or str(e).splitlines()[0] if str(e) else type(e).__name__
    return OSError(code, f"could not write {out}: {why}", str(out))
