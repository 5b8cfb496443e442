"""Sharding per-image mask learning over torch.distributed ranks (gloo, 2 CPU processes, 127.0.0.1 only).

The gathered result must equal a single-process :func:`fmask.learners.learn_masks` run with the same arguments.
"""
from __future__ import annotations

import os
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
