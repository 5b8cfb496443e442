"""One cached stage: load the artifact if it exists, else compute, save, and record the run time.

This is the one load-or-compute path of the experiment: every stage of :class:`fmask.experiment.run.Run`
(dataset masks, robust accuracy, single-image selection and masks) and the stages of
:mod:`fmask.experiment.variants` and :mod:`fmask.experiment.compare` go through it, via
:meth:`fmask.experiment.run.Run.stage`::

    value, status = cached_stage(store, "dataset_mask", key, compute, **MASK_RESULT_IO,
                                 runtime=("results", "cpu", "dataset_mask.vanilla"))

* ``key``: the artifact parameters (everything that shapes the result; :class:`fmask.infra.store.ArtifactStore`
  hashes them). Same key: the stored artifact is loaded and ``compute`` never runs.
* concurrency: the compute runs under ``store.claim(kind, key)`` and the artifact is looked for again once the
  claim is held, so two books / runs on one store compute each stage once (the second waits and loads it);
  :meth:`~fmask.infra.store.ArtifactStore.check_writable` runs before the first compute, so a read-only store fails
  before any time is spent.
* the wall-clock seconds of ``compute`` go to the artifact's metadata (``seconds``, so they are known when it
  is loaded later) and, given ``runtime=(results_dir, profile, stage)``, to
  :func:`fmask.experiment.results.record_runtime`.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Mapping, TypeVar

from fmask.infra.store import ArtifactStore
from fmask.learners import MaskResult

__all__ = ["cached_stage", "LOADED", "COMPUTED", "MASK_RESULT_IO"]

T = TypeVar("T")
LOADED, COMPUTED = "loaded", "computed"
#: ``serialise`` / ``deserialise`` of a stage whose value is a :class:`fmask.learners.MaskResult`
MASK_RESULT_IO: dict[str, Callable] = {"serialise": MaskResult.to_payload, "deserialise": MaskResult.from_payload}


def _identity_payload(value: Any) -> Any:
    return value


def _identity_value(payload: Any, metadata: Mapping[str, Any]) -> Any:
    return payload


def cached_stage(
    store: ArtifactStore,
    kind: str,
    key: Mapping[str, Any],
    compute: Callable[[], T],
    *,
    serialise: Callable[[T], Any] = _identity_payload,
    deserialise: Callable[[Any, Mapping[str, Any]], T] = _identity_value,
    metadata: Mapping[str, Any] | None = None,
    runtime: tuple[str | os.PathLike, str, str] | None = None,
) -> tuple[T, str]:
    """Load ``kind``/``key`` from ``store`` or compute, save and time it; returns ``(value, status)``.

    Args:
        store: the artifact store.
        kind: artifact kind (a folder of the store, e.g. ``"dataset_mask"``).
        key: artifact parameters (JSON-able).
        compute: makes the value when no artifact exists (called at most once).
        serialise: value -> payload for :meth:`ArtifactStore.save` (tensors / plain data); default: the value.
        deserialise: ``(payload, metadata)`` -> value; default: the payload.
        metadata: extra metadata saved with a computed artifact (``seconds`` is added). If the value has a
            ``metadata`` dict attribute (e.g. :class:`fmask.learners.MaskResult`) it is updated with the same.
        runtime: ``(results_dir, profile, stage)``: record the seconds with :func:`fmask.experiment.results.record_runtime`.

    Returns:
        ``(value, "loaded")`` or ``(value, "computed")``. ``"loaded"`` also when another process computed it
        while this one waited for the claim.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string, got {kind!r}")
    if not isinstance(key, Mapping):
        raise ValueError(f"key must be a mapping of parameters, got {type(key).__name__}")
    hit = store.load(kind, key)  # fast path without the lock
    if hit is not None:
        return deserialise(*hit), LOADED
    store.check_writable(kind)
    with store.claim(kind, key):
        hit = store.load(kind, key)  # computed by another process while we waited
        if hit is not None:
            return deserialise(*hit), LOADED
        t0 = time.perf_counter()
        value = compute()
        secs = time.perf_counter() - t0
        meta = {**dict(metadata or {}), "seconds": secs}
        own = getattr(value, "metadata", None)
        if isinstance(own, dict):
            own.update(meta)
            meta = dict(own)
        store.save(kind, key, serialise(value), meta)
    if runtime is not None:
        from fmask.experiment import results as report

        results_dir, profile, stage = runtime
        report.record_runtime(results_dir, stage, secs, profile=profile)
    return value, COMPUTED
