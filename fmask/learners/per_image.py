"""One Fourier mask per image (the paper's single-image masks, ``train_single_img_masks.py``).

The original learns one image at a time (batch 1). fmask learns a batch of ``batch_size`` independent masks
at once -- one (B, C, H, W) :class:`~fmask.core.mask.FourierMask` parameter and the *sum* of the per-image losses,
so each mask's gradient is exactly its own image's -- with Adam written out element-wise with **one step
count per mask** (torch's Adam keeps one count per parameter tensor). Each mask therefore follows exactly the
trajectory it would follow alone, up to float rounding of the batched network.

**Compaction.** A mask that meets its stopping rule (:mod:`fmask.core.objective`) is frozen on the device at
that exact step; every ``log_every`` steps (the only host syncs of the loop) finished masks leave the batch and
queued images take their slots with a fresh mask of ones, zero Adam moments and step count 0 (for
``schedule="original"`` their lr / β₁ restart at the schedule's step 0, as the original's fresh optimiser
per image). The batch stays full until the queue is empty; then it shrinks to the masks still learning.
``compaction=False`` processes fixed chunks of ``batch_size`` images instead (same masks).

**No extra forward.** The original checks the prediction with an extra forward after each update. Here the
forward of step t+1 (with the mask after step t) provides that prediction, so the check for step t runs at
the start of step t+1; the first forward of a fresh mask (a mask of ones) provides the reference CE and the
initial prediction (the original's ``m_out``, through a mask of ones), and the forward that finds a mask
finished provides its final prediction (same filter as learning).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fmask.core.mask import FourierMask
from fmask.infra.runtime import progress_bar, seeded

from fmask.learners.base import MaskLearner, check_images, check_targets
from fmask.core.objective import (PER_IMAGE_DEFAULTS, TOL_INVARIANCE, TOL_SPARSITY, check_count, per_image_count,
                                  per_sample_objective)
from fmask.learners.result import MaskResult
from fmask.core.schedule import ADAM_BETA1, ADAM_BETA2, ADAM_EPS, ORIGINAL_SINGLE_IMAGE, SCHEDULES_PER_IMAGE, onecycle_tensor

__all__ = ["PerImageMasks"]

_D = PER_IMAGE_DEFAULTS


class PerImageMasks(MaskLearner):
    """One mask per image: ``PerImageMasks(model)(images, targets) -> MaskResult`` (N, C, H, W).

    Defaults: :data:`fmask.core.objective.PER_IMAGE_DEFAULTS` (the paper's).

    Args:
        model: classifier Φ mapping images (B, C, H, W) in [0, 1] to logits (B, K); never modified.
        lam: λ of the sparsity term.
        lr: Adam lr; None → the default lr for ``schedule="constant"``, the original's flag (the one-cycle's
            max lr, :data:`fmask.core.schedule.ORIGINAL_SINGLE_IMAGE`) for ``schedule="original"``.
        steps: max optimisation steps per mask.
        patience: the stopping counter's target.
        batch_size: masks learned at once (memory bound).
        schedule: ``"constant"`` or ``"original"`` (the original's never-finished one-cycle warm-up, per mask;
            see :mod:`fmask.core.schedule`).
        space: ``"auto"`` | ``"normalised"`` | ``"pixel"`` (see :mod:`fmask.learners.base`).
        precision: ``"exact"`` (float32) | ``"fast"`` (bf16 autocast for the network only) | ``"auto"``.
        seed: seeds torch inside the call (nothing in per-image learning is random; kept for uniformity).
        device: None → the model's device; ``"auto"``/``"cpu"``/``"cuda"``.
        progress: a terminal bar of masks done / remaining.
        compile: ``torch.compile`` the private copy of the network.
        channels: mask channels (None → the images' C; 1 shares one mask over colour channels).
        log_every: steps between host syncs (harvest finished masks, refill, progress).
        compaction: refill finished slots from the queue (default) instead of fixed chunks.
        channels_last: run the network on channels_last tensors (default; exact up to float rounding).
        fuse_bn: fold eval-mode BatchNorm into the preceding convolution of the private copy (default; exact up
            to float rounding).
    """

    def __init__(self, model: nn.Module, *, lam: float = _D["lam"], lr: float | None = None, steps: int = _D["steps"],
                 patience: int = _D["patience"], batch_size: int = _D["batch_size"], schedule: str = _D["schedule"],
                 space: str = "auto",
                 precision: str = "exact", seed: int = 0, device: str | torch.device | None = None,
                 progress: bool = True, compile: bool = False, channels: int | None = None,
                 log_every: int = 50, compaction: bool = True, channels_last: bool = True,
                 fuse_bn: bool = True) -> None:
        if schedule not in SCHEDULES_PER_IMAGE:
            raise ValueError(f"per-image schedule must be one of {SCHEDULES_PER_IMAGE}, got {schedule!r}")
        if lr is None:
            lr = ORIGINAL_SINGLE_IMAGE["lr"] if schedule == "original" else _D["lr"]
        super().__init__(model, lam=lam, lr=lr, patience=patience, batch_size=batch_size, space=space,
                         precision=precision, seed=seed, device=device, progress=progress, compile=compile,
                         channels=channels, channels_last=channels_last, fuse_bn=fuse_bn)
        steps, log_every = check_count(steps, "steps"), check_count(log_every, "log_every")
        self.steps, self.schedule, self.log_every, self.compaction = steps, schedule, log_every, bool(compaction)

    def params(self) -> dict[str, Any]:
        """The settings recorded in :attr:`MaskResult.params`."""
        p = {"per_image": True, **self._params(), "steps": self.steps, "schedule": self.schedule,
             "log_every": self.log_every, "compaction": self.compaction,
             "tol_invariance": TOL_INVARIANCE, "tol_sparsity": TOL_SPARSITY}
        if self.schedule == "original":
            p["original_steps_per_epoch"] = ORIGINAL_SINGLE_IMAGE["steps_per_epoch"]
            p["pct_start"] = ORIGINAL_SINGLE_IMAGE["pct_start"]
        return p

    def __call__(self, images: Tensor, targets: Tensor | None = None, *, desc: str | None = None) -> MaskResult:
        """Learn masks for images (N, C, H, W) float in [0, 1]; targets (N,) int or None (the model's own
        predictions on the unfiltered image, as the original). Returns masks (N, C', H, W) float32 on CPU."""
        check_images(images)
        n, c, h, w = images.shape
        cm = self._mask_channels(c)
        net = self._private_model()
        n_classes = self._num_classes(net, images)
        if targets is not None:
            targets = check_targets(targets, n, n_classes)
        with seeded(self.seed, self.device), torch.no_grad():
            out = _Loop(self, net, images, targets, cm, desc).run()
        params = self.params()
        params["channels"] = cm
        return MaskResult(params=params, **out)


class _Loop:
    """The batched, compacting step loop of :class:`PerImageMasks` (all per-mask state lives in slots)."""

    def __init__(self, learner: PerImageMasks, net: nn.Module, images: Tensor, targets: Tensor | None, cm: int,
                 desc: str | None) -> None:
        self.L, self.net, self.images, self.targets = learner, net, images, targets
        n, c, h, w = images.shape
        self.n, self.c, self.h, self.w, self.cm = n, c, h, w, cm
        self.dev = learner.device
        self.offset = learner._offset(c) if learner.resolved_space == "normalised" else None
        self.desc = desc
        b = min(learner.batch_size, n)
        self.mask = FourierMask((h, w), n_masks=b, channels=cm).to(self.dev)
        z = lambda dt=torch.float32: torch.zeros(b, dtype=dt, device=self.dev)  # noqa: E731
        self.spec = torch.zeros(b, c, h, w, dtype=torch.complex64, device=self.dev)
        self.exp_avg = torch.zeros(b, cm, h, w, device=self.dev)
        self.exp_avg_sq = torch.zeros(b, cm, h, w, device=self.dev)
        self.k, self.count = z(torch.long), z(torch.long)
        self.done = torch.ones(b, dtype=torch.bool, device=self.dev)
        self.y, self.init_pred, self.pred_out = z(torch.long), z(torch.long), z(torch.long)
        self.ref_ce, self.inv1, self.inv2, self.sp1, self.sp2, self.loss1 = (z() for _ in range(6))
        self.conv_out, self.steps_out = z(torch.bool), z(torch.long)
        self.last = {k: z() for k in ("loss", "invariance", "sparsity")}
        self.slot_img = [-1] * b            # host: image index held by each slot (-1: empty)
        self.slot_cap = [0] * b             # host: iteration at which the slot reaches the step cap
        # outputs (CPU)
        self.out_masks = torch.empty(n, cm, h, w)
        self.out = {"steps": torch.empty(n, dtype=torch.long), "converged": torch.empty(n, dtype=torch.bool)}
        self.hist = {k: torch.empty(n) for k in ("loss", "invariance", "sparsity")}
        self.hist.update({k: torch.empty(n, dtype=torch.long) for k in ("initial_prediction", "prediction", "target")})
        self.next_img = 0

    # ------------------------------------------------------------------------------------------ slots
    def _fill(self, slots: list[int], it: int) -> None:
        """Put the next len(slots) queued images into ``slots``: fresh masks, zero Adam state, step 0."""
        ids = list(range(self.next_img, self.next_img + len(slots)))
        self.next_img += len(slots)
        s = torch.tensor(slots, dtype=torch.long, device=self.dev)
        x = self.images[ids].to(self.dev, torch.float32)
        self.spec[s] = torch.fft.fft2(x)  # each image's spectrum: once
        self.mask.weight[s] = 1.0
        self.exp_avg[s] = 0.0
        self.exp_avg_sq[s] = 0.0
        for t in (self.k, self.count):
            t[s] = 0
        self.done[s] = False
        if self.targets is not None:
            self.y[s] = self.targets[ids].to(self.dev)
        for i, img in zip(slots, ids):
            self.slot_img[i] = img
            self.slot_cap[i] = it + self.L.steps

    def _harvest(self) -> int:
        """Copy finished slots' results to the outputs and empty those slots (one host sync)."""
        done = self.done.cpu().tolist()
        fin = [i for i, d in enumerate(done) if d and self.slot_img[i] >= 0]
        if not fin:
            return 0
        s = torch.tensor(fin, dtype=torch.long, device=self.dev)
        ids = torch.tensor([self.slot_img[i] for i in fin])
        self.out_masks[ids] = self.mask.weight.detach()[s].float().cpu()
        self.out["steps"][ids] = self.steps_out[s].cpu()
        self.out["converged"][ids] = self.conv_out[s].cpu()
        for k in ("loss", "invariance", "sparsity"):
            self.hist[k][ids] = self.last[k][s].cpu()
        self.hist["initial_prediction"][ids] = self.init_pred[s].cpu()
        self.hist["prediction"][ids] = self.pred_out[s].cpu()
        self.hist["target"][ids] = self.y[s].cpu()
        for i in fin:
            self.slot_img[i] = -1
        return len(fin)

    def _shrink(self) -> None:
        """Drop empty slots (queue empty): every per-slot tensor keeps only the occupied rows."""
        keep = [i for i, img in enumerate(self.slot_img) if img >= 0]
        if len(keep) == len(self.slot_img):
            return
        if not keep:
            return
        s = torch.tensor(keep, dtype=torch.long, device=self.dev)
        self.mask.weight = nn.Parameter(self.mask.weight.detach()[s].clone())
        for name in ("spec", "exp_avg", "exp_avg_sq", "k", "count", "done", "y", "init_pred", "pred_out", "ref_ce",
                     "inv1", "inv2", "sp1", "sp2", "loss1", "conv_out", "steps_out"):
            setattr(self, name, getattr(self, name)[s])
        self.last = {k: v[s] for k, v in self.last.items()}
        self.slot_img = [self.slot_img[i] for i in keep]
        self.slot_cap = [self.slot_cap[i] for i in keep]

    def _sync(self, it: int, bar) -> bool:
        """Host check after iteration ``it``: harvest, refill / shrink, progress. False when all are done."""
        finished = self._harvest()
        bar.update(finished)
        empty = [i for i, img in enumerate(self.slot_img) if img < 0]
        queued = self.n - self.next_img
        if empty and queued and (self.L.compaction or len(empty) == len(self.slot_img)):
            take = empty[:queued]
            self._fill(take, it + 1)
            empty = empty[len(take):]
        if empty and self.next_img >= self.n:
            self._shrink()
        active = sum(img >= 0 for img in self.slot_img)
        bar.set_postfix(learning=active, queued=self.n - self.next_img, refresh=False)
        return active > 0

    # ------------------------------------------------------------------------------------------ step
    def _adam(self, active: Tensor) -> None:
        """Element-wise Adam (torch's single-tensor algorithm) with one step count (and lr, β₁) per mask;
        only ``active`` masks move; then the projection to [0, 1]."""
        L = self.L
        w, g = self.mask.weight, self.mask.weight.grad
        t = self.k + 1  # this update's step number, per mask
        if L.schedule == "original":
            lr, b1 = onecycle_tensor(self.k, L.lr, L.steps * ORIGINAL_SINGLE_IMAGE["steps_per_epoch"],
                                     ORIGINAL_SINGLE_IMAGE["pct_start"])
        else:
            lr = torch.full_like(t, L.lr, dtype=torch.float64)
            b1 = torch.full_like(t, ADAM_BETA1, dtype=torch.float64)
        v4 = lambda v: v.to(torch.float32).view(-1, 1, 1, 1)  # noqa: E731
        bc1 = 1 - b1 ** t
        bc2_sqrt = (1 - ADAM_BETA2 ** t.to(torch.float64)).sqrt()
        a4 = active.view(-1, 1, 1, 1)
        m = torch.lerp(self.exp_avg, g, v4(1 - b1))
        v = self.exp_avg_sq * ADAM_BETA2 + (1 - ADAM_BETA2) * g * g
        denom = v.sqrt() / v4(bc2_sqrt) + ADAM_EPS
        new = w - (v4(lr / bc1) * m) / denom
        self.exp_avg = torch.where(a4, m, self.exp_avg)
        self.exp_avg_sq = torch.where(a4, v, self.exp_avg_sq)
        w.copy_(torch.where(a4, new, w))
        self.mask.project_()
        w.grad = None
        self.k += active.long()

    def run(self) -> dict[str, Any]:
        L = self.L
        bar = progress_bar(total=self.n, progress=L.progress, desc=self.desc or "per-image masks", unit="mask")
        self._fill(list(range(len(self.slot_img))), 0)
        it = 0
        try:
            while True:
                self._step()
                if (it + 1) % L.log_every == 0 or it == min(self._caps()):
                    if not self._sync(it, bar):
                        break
                it += 1
        finally:
            bar.close()
        return {"masks": self.out_masks, "steps": self.out["steps"], "converged": self.out["converged"],
                "history": self.hist}

    def _caps(self) -> list[int]:
        return [cap for cap, img in zip(self.slot_cap, self.slot_img) if img >= 0] or [0]

    def _step(self) -> None:
        """One iteration for every slot: forward with M_k; the stopping check for step k; update to M_{k+1}."""
        L = self.L
        w = self.mask.weight
        with torch.enable_grad():
            logits = L._forward(self.net, self.mask.forward_spectrum(self.spec, self.offset))
        pred = logits.detach().argmax(1)
        fresh = self.k == 0  # mask of ones: this forward is the original's reference (m_out)
        if self.targets is None:
            self.y = torch.where(fresh, pred, self.y)
        self.init_pred = torch.where(fresh, pred, self.init_pred)
        ce0 = F.cross_entropy(logits.detach(), self.y, reduction="none")
        self.ref_ce = torch.where(fresh, ce0, self.ref_ce)  # so inv = 0 exactly at step 1, as in the original
        with torch.enable_grad():
            loss, inv, sp = per_sample_objective(logits, self.y, self.ref_ce, w, L.lam)
        # the stopping rule for step k (prediction with M_k; inv/sp of steps k and k-1)
        live = ~self.done
        self.count = per_image_count(self.count, live & (self.k >= 2), pred == self.init_pred,
                                     self.inv1 - self.inv2, self.sp1 - self.sp2)
        conv = live & (self.k >= 2) & (self.count == L.patience)
        fin = conv | (live & (self.k >= L.steps))
        self.steps_out = torch.where(fin, self.k, self.steps_out)
        self.conv_out = torch.where(fin, conv, self.conv_out)
        self.pred_out = torch.where(fin, pred, self.pred_out)
        for key, val in (("loss", self.loss1), ("invariance", self.inv1), ("sparsity", self.sp1)):
            self.last[key] = torch.where(fin, val, self.last[key])
        self.done = self.done | fin
        active = ~self.done
        self.inv2 = torch.where(active, self.inv1, self.inv2)
        self.sp2 = torch.where(active, self.sp1, self.sp2)
        self.inv1 = torch.where(active, inv.detach(), self.inv1)
        self.sp1 = torch.where(active, sp.detach(), self.sp1)
        self.loss1 = torch.where(active, loss.detach(), self.loss1)
        with torch.enable_grad():
            loss.sum().backward()
        self._adam(active)
