"""Sharding per-image mask learning over torch.distributed ranks (gloo, 2 CPU processes, 127.0.0.1 only).

The gathered result must equal a single-process :func:`fmask.learners.learn_masks` run with the same arguments.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fmask.learners.distributed import learn_masks_distributed, load_model_checkpoint
from fmask.learners.distributed_shards import merge_results, shard_bounds
from fmask.learners.distributed_wait import SLACK_S, StoreSync, default_timeout, wait_for_ranks, worst_case_seconds
from fmask.learners import MaskResult, learn_masks
from fmask.models.zoo import build_model

ROOT = Path(__file__).resolve().parents[1]
# 5 images over 2 ranks (3 + 2) with chunks of 2: the chunk composition differs from the single-process
# run (0-1, 2-3, 4 vs 0-1, 2 | 3-4), which the result must not depend on.
KW = dict(per_image=True, lam=0.07, steps=6, lr=0.05, batch_size=2, seed=7, patience=1000, progress=False)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("vgg_small", in_channels=1, num_classes=5, width_div=16).eval()


def _tiny_images() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(5, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1, 2, 3, 4])
    return x, y


def _assert_same_result(a: MaskResult, b: MaskResult) -> None:
    assert a.masks.shape == b.masks.shape
    assert torch.equal(a.masks, b.masks), f"max |ΔM| = {(a.masks - b.masks).abs().max().item():.3g}"
    assert torch.equal(a.steps, b.steps)
    assert torch.equal(a.converged, b.converged)
    assert a.history.keys() == b.history.keys()
    for k in a.history:
        assert torch.equal(a.history[k], b.history[k]), k
    assert a.params == b.params


@pytest.fixture(scope="module")
def reference() -> MaskResult:
    x, y = _tiny_images()
    res = learn_masks(_tiny_model(), x, y, **KW)
    assert (1 - res.masks).abs().mean() > 1e-3, "masks did not move: comparisons would be vacuous"
    return res


# ------------------------------------------------------------------------------------------ pure parts
def test_learners_never_import_the_cli():
    import ast

    offenders = []
    for f in sorted((ROOT / "fmask" / "learners").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{f.name}: {n}" for n in names if n == "fmask.cli" or n.startswith("fmask.cli.")]
    assert not offenders, offenders
    assert not (ROOT / "fmask" / "book" / "__main__.py").exists()  # floor 7 never imports the cli (floor 8)


def test_shard_bounds_cover_contiguously():
    for n in (0, 1, 5, 7, 64):
        for k in (1, 2, 3, 8):
            bounds = [shard_bounds(n, k, r) for r in range(k)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(b0[1] == b1[0] for b0, b1 in zip(bounds, bounds[1:]))
            sizes = [b - a for a, b in bounds]
            assert max(sizes) - min(sizes) <= 1
    assert shard_bounds(5, 2, 0) == (0, 3) and shard_bounds(5, 2, 1) == (3, 5)
    with pytest.raises(ValueError, match="rank"):
        shard_bounds(5, 2, 2)
    with pytest.raises(ValueError, match="world_size"):
        shard_bounds(5, 0, 0)


def test_merge_of_slices_equals_whole(reference):
    parts = []
    for a, b in ((0, 3), (3, 5)):
        parts.append(MaskResult(masks=reference.masks[a:b], steps=reference.steps[a:b],
                                converged=reference.converged[a:b],
                                history={k: v[a:b] for k, v in reference.history.items()},
                                params=dict(reference.params)))
    empty = MaskResult(masks=reference.masks[:1], steps=reference.steps[:1], converged=reference.converged[:1],
                       history={k: v[:1] for k, v in reference.history.items()}, params=dict(reference.params))
    _assert_same_result(merge_results(parts + [empty], [3, 2, 0]), reference)
    with pytest.raises(ValueError):
        merge_results(parts, [3])


def test_world_size_one_is_learn_masks(reference, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    x, y = _tiny_images()
    _assert_same_result(learn_masks_distributed(_tiny_model(), x, y, **KW), reference)
    with pytest.raises(ValueError, match="per-image"):
        learn_masks_distributed(_tiny_model(), x, y, **{**KW, "per_image": False})
    with pytest.raises(ValueError, match="targets"):
        learn_masks_distributed(_tiny_model(), x, y[:3], **KW)


# ------------------------------------------------------------------------------- two gloo processes


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    x, y = _tiny_images()
    # the process group is created (env://, gloo) and destroyed inside the call
    res = learn_masks_distributed(_tiny_model(), x, y, **KW)
    assert not dist.is_initialized()
    res.save(os.path.join(out_dir, f"rank{rank}.pt"))


def test_two_processes_spawned_equal_single_process(reference, tmp_path):
    ctx = mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=False,
                             start_method="spawn")
    for p in ctx.processes:
        p.join(timeout=180)
    alive = [p for p in ctx.processes if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, "distributed workers did not finish within 180 s"
    assert ctx.join(timeout=5)  # re-raises a worker's exception
    for rank in (0, 1):  # every rank returns the full gathered result
        _assert_same_result(MaskResult.load(tmp_path / f"rank{rank}.pt"), reference)


def test_torchrun_cli_writes_the_single_process_result(reference, tmp_path):
    model = _tiny_model()
    x, y = _tiny_images()
    ckpt = tmp_path / "model.pt"
    torch.save({"arch": "vgg_small", "state_dict": model.state_dict()}, ckpt)
    # the loader rebuilds the same network (width_div, channels and classes read off the shapes)
    rebuilt = load_model_checkpoint(str(ckpt))
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
    imgs = tmp_path / "images.pt"
    torch.save({"images": x, "targets": y}, imgs)
    out = tmp_path / "masks.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--node_rank=0", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "fmask.learners.distributed",
           "--checkpoint", str(ckpt), "--images", str(imgs), "--out", str(out),
           "--lam", str(KW["lam"]), "--steps", str(KW["steps"]), "--lr", str(KW["lr"]),
           "--batch-size", str(KW["batch_size"]), "--seed", str(KW["seed"]), "--patience", str(KW["patience"]),
           "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = MaskResult.load(out)
    assert got.metadata["world_size"] == 2
    _assert_same_result(got, reference)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary file left behind"


# ------------------------------------------------------------------------ waiting: heartbeat and timeout


class _FakeClock:
    """time.monotonic / time.sleep stand-ins: sleeping advances the clock, nothing really waits."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        assert s >= 0
        self.t += max(s, 1e-3)


def test_wait_reports_every_heartbeat_and_fails_in_one_line_naming_the_stalled_rank():
    clock, lines = _FakeClock(), []
    done_at = {1: 1000.0 + 45.0, 2: float("inf")}  # rank 1 finishes after 45 s, rank 2 never (stopped)
    with pytest.raises(TimeoutError) as e:
        wait_for_ranks(lambda r: clock() >= done_at[r], 0, 3, 100.0, heartbeat=30.0, log=lines.append,
                       clock=clock, sleep=clock.sleep)
    assert clock.t - 1000.0 == pytest.approx(100.0, abs=1.0)  # gave up at the timeout, not later
    assert len(lines) == 3  # at 30, 60 and 90 s
    assert "30 s for ranks 1, 2; done: 0;" in lines[0]
    assert "1 min 0 s for rank 2; done: 0, 1;" in lines[1] and "1 min 30 s for rank 2" in lines[2]
    msg = str(e.value)
    assert "\n" not in msg and "rank 2 of 3" in msg and "--timeout" in msg and "ranks done: 0, 1" in msg


def test_wait_returns_as_soon_as_every_rank_is_done_without_reporting():
    clock, lines = _FakeClock(), []
    waited = wait_for_ranks(lambda r: clock() >= 1005.0, 1, 2, 60.0, heartbeat=30.0, log=lines.append,
                            clock=clock, sleep=clock.sleep)
    assert 5.0 <= waited < 6.0 and lines == []
    with pytest.raises(ValueError):
        wait_for_ranks(lambda r: True, 0, 2, 0.0)


def test_default_timeout_scales_with_images_steps_and_measured_time():
    # own share: 3 images, 2 per batch, 30 + 40 + 50 mask steps in 12 s -> 60 batch steps, 0.2 s per batch step
    assert worst_case_seconds(3, 1000, 2, own_images=3, own_steps=120, own_seconds=12.0) == pytest.approx(
        1500 * 0.2)  # ceil(3 * 1000 / 2) batch steps
    assert worst_case_seconds(0, 1000, 2, own_images=3, own_steps=120, own_seconds=12.0) == 0.0
    t = default_timeout([3, 2], 0, 1000, 2, own_steps=120, own_seconds=12.0)
    assert t == pytest.approx(2 * 1000 * 0.2 + SLACK_S)  # rank 1: 2 images x 1000 steps, batch 2
    assert default_timeout([3, 2], 0, 2000, 2, own_steps=120, own_seconds=12.0) > t  # more steps, more time
    assert default_timeout([30, 20], 0, 1000, 2, own_steps=1200, own_seconds=120.0) > t  # more images


def test_store_flags_are_per_call():
    store = dist.TCPStore("127.0.0.1", _free_port(), is_master=True, wait_for_workers=False)
    first = [StoreSync(r, store) for r in (0, 1)]
    first[1].mark_done()
    assert first[0].is_done(1) and not first[1].is_done(0)
    second = [StoreSync(r, store) for r in (0, 1)]  # a second call in the same group starts clean
    assert not second[0].is_done(1)


def test_stopped_rank_gets_heartbeats_then_one_error_line(tmp_path):
    """`fmask distribute --nproc 2` with rank 1 stopped (SIGSTOP): rank 0 reports, then fails in one line."""
    model = _tiny_model()
    ckpt, imgs, out = tmp_path / "model.pt", tmp_path / "images.pt", tmp_path / "masks.pt"
    torch.save({"arch": "vgg_small", "state_dict": model.state_dict()}, ckpt)
    torch.save({"images": _tiny_images()[0][:2]}, imgs)
    cmd = [sys.executable, "-m", "fmask", "distribute", "--nproc", "2", "--checkpoint", str(ckpt), "--images",
           str(imgs), "--out", str(out), "--steps", "400", "--patience", "100000", "--batch-size", "1",
           "--timeout", "4", "--heartbeat", "1", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stopped, err = None, []
    try:
        for line in proc.stderr:
            err.append(line)
            m = re.search(r"rank 1 of 2 \(pid (\d+)\)", line)
            if m and stopped is None:
                stopped = int(m.group(1))
                os.kill(stopped, signal.SIGSTOP)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        if stopped is not None and _alive(stopped):
            os.kill(stopped, signal.SIGKILL)
    text = "".join(err)
    assert stopped is not None, text
    assert rc == 2, text
    beats = [ln for ln in err if "has waited" in ln and "for rank 1" in ln]
    assert len(beats) >= 2, text
    errors = [ln for ln in err if ln.startswith("fmask: error:")]
    assert len(errors) == 1 and "rank 1 of 2" in errors[0] and "--timeout" in errors[0], text
    assert "Traceback" not in text and not out.exists()
    assert not _alive(stopped), "the stopped rank was left behind"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
