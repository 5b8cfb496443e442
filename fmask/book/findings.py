"""The numbers behind the report chapter's "paper text vs original code" section.

Only the original code's settings are written here, each with the file it comes from; everything shown is
computed from them (e.g. the learning rates its one-cycle schedule actually produced).
"""
from __future__ import annotations

from typing import Any

from fmask.core.schedule import onecycle_lr_trace

__all__ = ["ORIGINAL_SINGLE_MASK_SCHEDULE", "onecycle_lr_trace", "single_mask_lr_summary"]

#: The original's single-image-mask schedule: flags.py (single_img_mask_lr, single_img_mask_epochs,
#: single_img_mask_schedule) and train_single_img_masks.py (steps_per_epoch=200, one scheduler step per
#: iteration, at most ``epochs`` iterations).
ORIGINAL_SINGLE_MASK_SCHEDULE = {"max_lr": 0.2, "epochs": 20000, "steps_per_epoch": 200, "pct_start": 0.1}


def single_mask_lr_summary(settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the original's single-image-mask schedule did: ``{"max_lr", "epochs", "steps_per_epoch",
    "first", "last", "peak_share" (max lr reached / nominal), "warmup_share" (share of the warm-up the run
    covered)}`` computed with :func:`onecycle_lr_trace` for ``settings`` (default
    :data:`ORIGINAL_SINGLE_MASK_SCHEDULE`)."""
    s = dict(ORIGINAL_SINGLE_MASK_SCHEDULE if settings is None else settings)
    trace = onecycle_lr_trace(s["max_lr"], epochs=s["epochs"], steps_per_epoch=s["steps_per_epoch"],
                              pct_start=s["pct_start"], steps_taken=s["epochs"])
    warmup_steps = s["pct_start"] * s["epochs"] * s["steps_per_epoch"]
    return {**s, "first": trace[0], "last": trace[-1], "peak_share": max(trace) / s["max_lr"],
            "warmup_share": s["epochs"] / warmup_steps}
