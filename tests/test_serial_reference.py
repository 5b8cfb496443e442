"""The serial reference (the original's one-image-at-a-time loop) and the batched learner agree.

This is what makes the speed comparison in benchmarks/bench_learn.py honest: both solve the same problem,
so the batched learner's speed-up is not bought with a different result. Also checks, by counting tensor
calls, that the batched learner computes each image's spectrum once and does no host syncs per step.

Both mask where the original does: on the normalised image for fmask's ``Normalized`` models (the serial
reference normalises first and calls the bare ``net`` on the filtered image; fmask filters the pixel image with
the offset (1 − M[c,0,0])·μ_c), and on the pixel image with ``space="pixel"`` (fmask's old behaviour).
"""
from __future__ import annotations

import collections
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

from fmask.learners import learn_masks
from fmask.models.zoo import build_model

ROOT = Path(__file__).resolve().parents[1]


def _load_serial():
    spec = importlib.util.spec_from_file_location("fmask_bench_serial_reference",
                                                  ROOT / "benchmarks" / "serial_reference.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


serial = _load_serial()


@pytest.fixture(scope="module")
def tiny():
    """A tiny frozen vgg_small (widths 4..32), 5 images 32×32 in [0, 1], targets = its predictions."""
    torch.manual_seed(0)
    model = build_model("vgg_small", in_channels=1, num_classes=5, width_div=16).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(5, 1, 32, 32, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def _serial(model, x, y, **kw):
    factory, path = serial.checkpoint_factory(model)
    try:
        return serial.learn_masks_serial(factory, x, y, **kw)
    finally:
        os.remove(path)


# Agreement bound: after 10 Adam steps the masks of the batched, channels_last learner and of the batch-1 serial
# loop differ only by float rounding of the network (different conv algorithms / batch sizes), which Adam's
# normalisation can lift to ~lr·1e-3 on an entry whose gradient is near a sign change: |ΔM| ≤ 1e-5 here.
BOUND = 1e-5


@pytest.mark.parametrize("space", ["auto", "pixel"])
@pytest.mark.parametrize("schedule", [None, "original"])
def test_serial_and_batched_give_the_same_masks(tiny, schedule, space):
    model, x, y = tiny
    steps = 10
    lr = 0.01 if schedule is None else 0.2
    # batch_size 3 over 5 images: a refill after the first 3 finish, so slot re-use is exercised too
    b = learn_masks(model, x, y, per_image=True, lam=0.07, steps=steps, lr=lr, batch_size=3, seed=5,
                    patience=1000, schedule=schedule, progress=False, space=space)
    s = _serial(model, x, y, lam=0.07, steps=steps, lr=lr, seed=5, patience=None,
                schedule=None if schedule is None else 0.1,
                schedule_total_steps=None if schedule is None else steps * 200, space=space)
    assert b.params["space"] == ("normalised" if space == "auto" else "pixel")
    assert b.masks.shape == s.masks.shape == x.shape
    moved = (1 - s.masks).abs().mean().item()
    assert moved > 1e-3, "masks did not move: the comparison would be vacuous"
    torch.testing.assert_close(b.masks, s.masks, atol=BOUND, rtol=0)
    assert torch.equal(b.steps, s.steps)
    assert torch.equal(b.history["prediction"], s.predictions)


def test_normalised_space_matches_serial_and_differs_from_pixel():
    """A linear classifier behind fmask's Normalized wrapper (strong invariance term, the DC entry matters):
    fmask's pixel-offset filter reproduces the serial loop that normalises first and filters the normalised
    image, and this is a different problem from filtering pixels (so the agreement above is not vacuous)."""
    from fmask.models.zoo import Normalized

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 5))
    with torch.no_grad():
        net[1].weight.normal_(0.0, 0.05)
    model = Normalized(net, (0.449,), (0.226,)).eval()
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x).argmax(1)
    kw = dict(lam=0.07, steps=15, lr=0.05, seed=1)
    b = learn_masks(model, x, y, per_image=True, batch_size=4, patience=1000, progress=False, **kw)
    s = _serial(model, x, y, patience=None, **kw)
    p = learn_masks(model, x, y, per_image=True, batch_size=4, patience=1000, progress=False, space="pixel", **kw)
    assert b.params["space"] == "normalised" and p.params["space"] == "pixel"
    diff = (b.masks - s.masks).abs()
    # float rounding: the two filters order the arithmetic differently (normalise-then-FFT vs FFT-then-offset);
    # measured max 2.7e-5, mean 1.3e-6 after 15 steps at lr 0.05 (masks move by ~0.5)
    assert diff.max().item() < 1e-4 and diff.mean().item() < 1e-5
    assert (b.masks - p.masks).abs().max().item() > 1e-2


def test_stopping_rule_and_freezing_match():
    """Mixed chunk: on all-zero images only the sparsity term acts, the masks reach 0 and stop changing, so
    they converge after `patience` further steps; on the others the invariance term keeps the masks moving.
    Frozen masks, step counts and converged flags must match the serial loop (a linear classifier on the
    pixels, so that the invariance term is strong)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 5))
    with torch.no_grad():
        model[1].weight.normal_(0.0, 0.2)
    x = torch.rand(5, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    x[[0, 3]] = 0.0
    with torch.no_grad():
        y = model(x).argmax(1)
    kw = dict(lam=0.07, steps=20, lr=0.1, seed=2, patience=3)
    b = learn_masks(model, x, y, per_image=True, batch_size=5, progress=False, log_every=2, **kw)
    s = _serial(model, x, y, **kw)
    assert s.converged.tolist() == [True, False, False, True, False]
    assert int(s.steps[0]) < kw["steps"] and s.steps[[1, 2, 4]].tolist() == [kw["steps"]] * 3
    assert torch.equal(b.converged, s.converged)
    assert torch.equal(b.steps, s.steps)
    # lr 0.1 and 20 steps: a batched matmul rounds differently from batch 1 and Adam turns a ~1e-7 gradient
    # difference near a sign change into a visible step, so allow a few lr·1e-3 on rare entries
    diff = (b.masks - s.masks).abs()
    assert diff.max().item() < 5e-4 and diff.mean().item() < 1e-6
    assert torch.equal(b.masks[[0, 3]], s.masks[[0, 3]])  # frozen masks: identical


def test_serial_reference_rejects_bad_input(tiny):
    model, x, y = tiny
    with pytest.raises(ValueError, match="images"):
        _serial(model, x[0], y, steps=1)
    with pytest.raises(ValueError, match="targets"):
        _serial(model, x, y[:2], steps=1)
    with pytest.raises(ValueError, match="steps"):
        _serial(model, x, y, steps=0)


LEARN_DIR = ROOT / "fmask" / "learners"
LEARNER_CORE = {ROOT / "fmask" / "core" / f for f in ("mask.py", "objective.py", "schedule.py")}


def _learner_file(path: str) -> str | None:
    """'learner' for a file of the learner (the fmask.learners package, and the filter, objective and schedules
    in fmask/core), the file name for the serial reference, None otherwise."""
    p = Path(path).resolve()
    if p.parent == LEARN_DIR.resolve() or p in {f.resolve() for f in LEARNER_CORE}:
        return "learner"
    return p.name


class _CallCounter(TorchFunctionMode):
    """Counts torch calls by (name, calling file: "learner" for the learner's files, else its name)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        self.calls[(name, _learner_file(sys._getframe(1).f_code.co_filename))] += 1
        return func(*args, **(kwargs or {}))

    def count(self, names: set[str], filename: str) -> int:
        return sum(v for (n, f), v in self.calls.items() if n in names and f == filename)


SYNCS = {"item", "__bool__", "__int__", "__float__", "__index__", "tolist", "cpu", "numpy"}


def _learn_counting(model, x, steps: int, log_every: int, batch_size: int) -> _CallCounter:
    with _CallCounter() as c:
        learn_masks(model, x, None, per_image=True, steps=steps, batch_size=batch_size, patience=1000,
                    log_every=log_every, progress=False)
    return c


def test_no_host_sync_per_step_and_spectra_once(tiny):
    model, x, _ = tiny
    short = _learn_counting(model, x, steps=3, log_every=100, batch_size=5)
    long = _learn_counting(model, x, steps=7, log_every=100, batch_size=5)
    # host syncs issued by the learner do not grow with the number of steps ...
    assert short.count(SYNCS, "learner") == long.count(SYNCS, "learner")
    # ... while the counter does see per-step work (so it could detect a per-step .item())
    assert long.count({"fft_ifft2"}, "learner") - short.count({"fft_ifft2"}, "learner") == 4
    every = _learn_counting(model, x, steps=7, log_every=1, batch_size=5)
    assert every.count(SYNCS, "learner") > long.count(SYNCS, "learner")
    # each image's spectrum is computed once, when it enters the batch (one call per fill), not once per step
    assert long.count({"fft_fft2"}, "learner") == 1
    refilled = _learn_counting(model, x, steps=7, log_every=100, batch_size=3)
    assert refilled.count({"fft_fft2"}, "learner") == 2


def test_serial_reference_syncs_every_step(tiny):
    """The reference really is the original's loop: ≥ 3 host syncs per step (2 logs + prediction)."""
    model, x, y = tiny
    factory, path = serial.checkpoint_factory(model)
    try:
        with _CallCounter() as c:
            serial.learn_masks_serial(factory, x[:2], y[:2], steps=4, patience=None)
    finally:
        os.remove(path)
    assert c.count({"item"}, "serial_reference.py") >= 2 * 4 * 3
