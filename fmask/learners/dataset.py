"""One Fourier mask for a whole data set (the paper's dataset masks, ``train_masks.py``).

One optimiser step per batch (the original: batch size 1 over the validation set, ≤ 100 epochs); loss = the
batch mean of the per-sample objective (:mod:`fmask.core.objective`); Adam with the original's one-cycle
schedule (:func:`fmask.core.schedule.make_onecycle`); projection to [0, 1] after every step; the epoch
stopping rule :class:`~fmask.core.objective.DatasetStopping`. The returned mask is the last snapshot (the
rule's); if there is none, the final mask with ``converged=False``. Data order is shuffled every epoch with a
``torch.Generator`` seeded from ``seed`` (tensor input); a DataLoader is used as given.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Iterator

import torch
from torch import Tensor, nn

from fmask.core.mask import FourierMask
from fmask.infra.runtime import progress_bar, seeded

from fmask.learners.base import MaskLearner, check_images, check_targets
from fmask.core.objective import (ACCURACY_RATIO, DATASET_DEFAULTS, TOL_SPARSITY, DatasetStopping, check_count,
                                  per_sample_objective)
from fmask.learners.result import MaskResult
from fmask.core.schedule import SCHEDULES_DATASET, make_onecycle

__all__ = ["DatasetMask"]

_D = DATASET_DEFAULTS
_EVAL_BATCH = 256


class DatasetMask(MaskLearner):
    """One mask for a data set: ``DatasetMask(model)(images, targets) -> MaskResult`` (1, C, H, W).

    Defaults: :data:`fmask.core.objective.DATASET_DEFAULTS` (the paper's and the original's).
    Args (besides those of :class:`~fmask.learners.PerImageMasks`): ``epochs`` (max epochs), ``patience``
    (epochs), ``batch_size``, ``schedule`` ``"onecycle"`` (the original's OneCycleLR, max lr ``lr``, its
    pct_start, over epochs × batches) or ``"constant"``.
    ``images`` may also be a DataLoader/iterable of (images, targets) batches with ``len()`` (targets None).
    """

    def __init__(self, model: nn.Module, *, lam: float = _D["lam"], lr: float = _D["lr"], epochs: int = _D["epochs"],
                 patience: int = _D["patience"], batch_size: int = _D["batch_size"], schedule: str = _D["schedule"],
                 space: str = "auto",
                 precision: str = "exact", seed: int = 0, device: str | torch.device | None = None,
                 progress: bool = True, compile: bool = False, channels: int | None = None,
                 channels_last: bool = True, fuse_bn: bool = True) -> None:
        if schedule not in SCHEDULES_DATASET:
            raise ValueError(f"dataset-mask schedule must be one of {SCHEDULES_DATASET}, got {schedule!r}")
        check_count(epochs, "epochs")
        super().__init__(model, lam=lam, lr=lr, patience=patience, batch_size=batch_size, space=space,
                         precision=precision, seed=seed, device=device, progress=progress, compile=compile,
                         channels=channels, channels_last=channels_last, fuse_bn=fuse_bn)
        self.epochs, self.schedule = epochs, schedule

    def params(self) -> dict[str, Any]:
        return {"per_image": False, **self._params(), "epochs": self.epochs,
                "schedule": self.schedule, "pct_start": _D["pct_start"], "accuracy_ratio": ACCURACY_RATIO,
                "tol_sparsity": TOL_SPARSITY}

    # ------------------------------------------------------------------------------------------ data
    def _batches(self, images, targets, gen: torch.Generator | None) -> Iterator[tuple[Tensor | None, Tensor, Tensor]]:
        if isinstance(images, Tensor):
            n = images.shape[0]
            order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
            bs = self.batch_size if gen is not None else _EVAL_BATCH
            for s in range(0, n, bs):
                idx = order[s:s + bs]
                yield idx, images[idx], targets[idx]
        else:
            for i, batch in enumerate(images):
                if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                    raise ValueError("the DataLoader must yield (images, targets) batches")
                xb = check_images(batch[0], f"images (batch {i})")
                yield None, xb, check_targets(batch[1], xb.shape[0], name=f"targets (batch {i})")

    def __call__(self, images: Tensor | Iterable, targets: Tensor | None = None, *,
                 desc: str | None = None) -> MaskResult:
        """Learn one mask for images (N, C, H, W) in [0, 1] and targets (N,) int (None: the model's own
        predictions), or for a DataLoader of (images, targets) batches. Returns masks (1, C', H, W) on CPU."""
        is_tensor = isinstance(images, Tensor)
        net = self._private_model()
        if is_tensor:
            check_images(images)
            n_batches = math.ceil(images.shape[0] / self.batch_size)
            first = images
        else:
            if targets is not None:
                raise ValueError("targets must be None when images is a DataLoader/iterable of (images, targets)")
            try:
                n_batches = len(images)
            except TypeError as e:
                raise ValueError("a DataLoader/iterable of batches must define len() (batches per epoch)") from e
            first = next(iter(images), None)
            if first is None:
                raise ValueError("no images to learn a dataset mask from")
            first = check_images(first[0], "images (batch 0)")
        _, c, h, w = first.shape
        cm = self._mask_channels(c)
        n_classes = self._num_classes(net, first)
        offset = self._offset(c) if self.resolved_space == "normalised" else None
        dev = self.device
        ones = FourierMask((h, w), 1, cm).to(dev)  # the reference filter: a mask of ones, like the original
        with seeded(self.seed, dev):
            if is_tensor:
                if targets is None:
                    with torch.no_grad():
                        targets = torch.cat([self._forward(net, ones.forward_spectrum(
                            torch.fft.fft2(images[s:s + _EVAL_BATCH].to(dev, torch.float32)), offset)).argmax(1).cpu()
                            for s in range(0, images.shape[0], _EVAL_BATCH)])
                targets = check_targets(targets, images.shape[0], n_classes)
            mask = FourierMask((h, w), 1, cm).to(dev)
            opt = torch.optim.Adam(mask.parameters(), lr=self.lr, fused=dev.type == "cuda")
            sched = make_onecycle(opt, self.schedule, self.lr, self.epochs * n_batches, _D["pct_start"])

            def prepare(xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
                if tuple(xb.shape[1:]) != (c, h, w):
                    raise ValueError(f"batch shape {tuple(xb.shape)} differs from (…, {c}, {h}, {w})")
                if not is_tensor and yb.numel() and int(yb.max()) >= n_classes:
                    raise ValueError(f"targets must lie in [0, {n_classes}) (the model's classes)")
                return torch.fft.fft2(xb.to(dev, torch.float32)), yb.to(dev)

            def accuracy(layer: FourierMask) -> float:
                correct = torch.zeros((), dtype=torch.long, device=dev)
                total = 0
                with torch.no_grad():
                    for _, xb, yb in self._batches(images, targets, None):
                        spec, yb = prepare(xb, yb)
                        correct += (self._forward(net, layer.forward_spectrum(spec, offset)).argmax(1) == yb).sum()
                        total += xb.shape[0]
                if total == 0:
                    raise ValueError("no images to learn a dataset mask from")
                return 100.0 * float(correct) / total

            ref_all = None
            if is_tensor:  # reference CE of every image, once
                with torch.no_grad():
                    ref_all = torch.empty(images.shape[0], device=dev)
                    for idx, xb, yb in self._batches(images, targets, None):
                        spec, yb = prepare(xb, yb)
                        lg = self._forward(net, ones.forward_spectrum(spec, offset))
                        ref_all[idx.to(dev)] = torch.nn.functional.cross_entropy(lg, yb, reduction="none")
            init_acc = accuracy(ones)
            rule = DatasetStopping(init_acc, self.patience)
            gen = torch.Generator().manual_seed(self.seed)
            hist: dict[str, list[float]] = {"loss": [], "invariance": [], "sparsity": [], "accuracy": []}
            snapshot, snapshot_epoch, snapshot_steps, total_steps, stopped = None, 0, 0, 0, False
            bar = progress_bar(range(1, self.epochs + 1), progress=self.progress, desc=desc or "dataset mask",
                               unit="epoch")
            for epoch in bar:
                acc_l = torch.zeros((), device=dev)
                acc_i = torch.zeros((), device=dev)
                acc_s = torch.zeros((), device=dev)
                nb = 0
                for idx, xb, yb in self._batches(images, targets, gen):
                    spec, yb = prepare(xb, yb)
                    if ref_all is not None:
                        ref = ref_all[idx.to(dev)]
                    else:
                        with torch.no_grad():
                            ref = torch.nn.functional.cross_entropy(
                                self._forward(net, ones.forward_spectrum(spec, offset)), yb, reduction="none")
                    logits = self._forward(net, mask.forward_spectrum(spec, offset))
                    loss_i, inv, sp = per_sample_objective(logits, yb, ref, mask.weight, self.lam)
                    loss = loss_i.mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    if sched is not None:
                        sched.step()
                    mask.project_()
                    acc_l += loss.detach()
                    acc_i += inv.detach().mean()
                    acc_s += sp.detach().mean()
                    nb += 1
                    total_steps += 1
                if nb == 0:
                    raise ValueError("no images to learn a dataset mask from")
                for k, v in (("loss", acc_l), ("invariance", acc_i), ("sparsity", acc_s)):
                    hist[k].append(float(v) / nb)
                acc = accuracy(mask)
                hist["accuracy"].append(acc)
                snap, stop = rule.update(acc, hist["sparsity"][-1])
                if snap:
                    snapshot, snapshot_epoch, snapshot_steps = mask.masks, epoch, total_steps
                bar.set_postfix(inv=f"{hist['invariance'][-1]:.3g}", sparsity=f"{hist['sparsity'][-1]:.3f}",
                                acc=f"{acc:.1f}/{init_acc:.1f}", count=rule.count, refresh=False)
                if stop:
                    stopped = True
                    break
            bar.close()
        final, nsteps = (mask.masks, total_steps) if snapshot is None else (snapshot, snapshot_steps)
        history = {k: torch.tensor(v, dtype=torch.float32) for k, v in hist.items()}
        history["initial_accuracy"] = torch.tensor([init_acc], dtype=torch.float32)
        history["snapshot_epoch"] = torch.tensor([float(snapshot_epoch)])
        params = self.params()
        params["channels"] = cm
        return MaskResult(masks=final.float().cpu(), steps=torch.tensor([nsteps], dtype=torch.long),
                          converged=torch.tensor([stopped and snapshot is not None]), history=history,
                          params=params)
