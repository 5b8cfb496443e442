"""fmask.infra.store reliability: nothing damaged or stale is ever used as good.

Each test first reproduces the fault the store must catch (e.g. a bit-flipped file that plain ``torch.load``
accepts), then checks the store's answer: the damaged file is moved aside, one ``ArtifactCorruptWarning``
names it, ``load`` returns ``None`` and the recompute path works. Also: umask-respecting modes, orphaned
temporary files, the claim lock across processes, the early writability check and the default root.
"""
from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import signal
import stat
import subprocess
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import fmask
import fmask.infra.store as S
from fmask.book import runner as book_runner
from fmask.experiment.stages import COMPUTED, LOADED, cached_stage
from fmask.infra.atomic import TMP_MAX_AGE, atomic_torch_save, atomic_write_json
from fmask.infra.integrity import FORMAT, ArtifactCorruptError, StoreError, read_artifact
from fmask.infra.lock import ClaimTimeout
from fmask.infra.store import ArtifactCorruptWarning, ArtifactStore, default_root, source_checkout_root

# ------------------------------------------------------------------------------------------ payloads
PARAMS = {"regime": "vanilla", "seed": 0, "lr": 1e-3}


def _model_payload():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    return {"state_dict": net.state_dict()}, "0.weight"


def _mask_payload():
    g = torch.Generator().manual_seed(0)
    return {"masks": torch.rand(4, 1, 16, 16, generator=g), "steps": torch.arange(4), "format": 1}, "masks"


def _cache_payload():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8, generator=g)
    return {"images": images, "labels": torch.arange(8) % 5, "paths": [f"img{i}.JPEG" for i in range(8)]}, "images"


PAYLOADS = {"model": _model_payload, "masks": _mask_payload, "imagecache": _cache_payload}


def _tensor(payload, name):
    return payload["state_dict"][name] if "state_dict" in payload else payload[name]


def _flip_bits(path: Path, t: torch.Tensor) -> None:
    """Flip two bits of the tensor's first element in place on disk (two exponent bits for float32)."""
    data = bytearray(path.read_bytes())
    raw = t.contiguous().numpy().tobytes()
    off = data.find(raw[:32])
    assert off >= 0 and data.find(raw[:32], off + 1) < 0, "tensor bytes must occur exactly once"
    if t.dtype == torch.float32:  # little-endian: byte 3 = sign + 7 exponent bits, byte 2 bit 7 = exponent LSB
        data[off + 3] ^= 0x40
        data[off + 2] ^= 0x80
    else:
        data[off] ^= 0xFF
        data[off + 1] ^= 0xFF
    path.write_bytes(bytes(data))


def _damage(how: str, st: ArtifactStore, kind: str, payload, tname: str) -> None:
    pt = st.path(kind, PARAMS)
    js = pt.with_suffix(".json")
    if how == "flipped_bits":
        _flip_bits(pt, _tensor(payload, tname))
        # the fault: plain torch.load accepts the damaged bytes and returns wrong numbers
        bad = torch.load(pt, weights_only=True)["payload"]
        got = _tensor(bad, tname).flatten()[0].item()
        want = _tensor(payload, tname).flatten()[0].item()
        assert got != want
        if _tensor(payload, tname).is_floating_point():
            assert abs(got) > 1e10 or got != got  # e.g. 1e38 into an analysis, a NaN model
    elif how == "truncated":
        pt.write_bytes(pt.read_bytes()[: pt.stat().st_size // 2])
    elif how == "zero_bytes":
        pt.write_bytes(b"")
    elif how == "directory":
        pt.unlink()
        pt.mkdir()
        (pt / "data.pkl").write_bytes(b"x")
    elif how == "metadata_missing":
        js.unlink()
    elif how == "metadata_garbage":
        js.write_bytes(b"\x00\xff{not json")
    elif how == "metadata_without_hash":  # what older fmask wrote: params + metadata only
        side = json.loads(js.read_text())
        js.write_text(json.dumps({"params": side["params"], "metadata": side["metadata"]}))
    elif how == "crash_between_payload_and_metadata":  # new payload renamed in, sidecar still the old one
        blob = torch.load(pt, weights_only=True)
        blob["payload"] = {k: v for k, v in blob["payload"].items()}
        blob["metadata"] = {**blob["metadata"], "note": "newer"}
        atomic_torch_save(blob, pt)
        assert torch.load(pt, weights_only=True)["metadata"]["note"] == "newer"  # a complete, loadable file
    else:  # pragma: no cover
        raise AssertionError(how)


DAMAGES = ["flipped_bits", "truncated", "zero_bytes", "directory", "metadata_missing", "metadata_garbage",
           "metadata_without_hash", "crash_between_payload_and_metadata"]


def _corrupt_warnings(rec) -> list:
    return [w for w in rec if issubclass(w.category, ArtifactCorruptWarning)]


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_damaged_artifact_reads_as_missing_moved_aside_and_recomputed(tmp_path, kind, how):
    payload, tname = PAYLOADS[kind]()
    st = ArtifactStore(tmp_path)
    pt = st.save(kind, PARAMS, payload, {"metrics": {"val_acc": 0.9}})
    assert st.load(kind, PARAMS) is not None
    _damage(how, st, kind, payload, tname)

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        assert st.load(kind, PARAMS) is None
    ws = _corrupt_warnings(rec)
    assert len(ws) == 1, [str(w.message) for w in rec]
    msg = str(ws[0].message)
    assert str(pt) in msg and "recomputed" in msg and "moved aside" in msg
    aside = list(pt.parent.glob(f"{pt.name}.corrupt-*"))
    assert len(aside) == 1 and str(aside[0]) in msg  # kept for inspection, named in the warning
    assert aside[0].is_dir() == (how == "directory")
    assert not os.path.lexists(pt) and not st.exists(kind, PARAMS)
    assert list(pt.parent.glob("*.pt")) == []  # callers that list "*.pt" do not see it either

    # the recompute path: the caller saves again and gets good data back, silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        st.save(kind, PARAMS, payload, {"metrics": {"val_acc": 0.9}})
        got, meta = st.load(kind, PARAMS)
    assert torch.equal(_tensor(got, tname), _tensor(payload, tname)) and meta["metrics"]["val_acc"] == 0.9


class _Planted:
    """Pickles to ``Path.touch(marker)``: executed only if a loader runs arbitrary pickle code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _write_sidecar_for(st: ArtifactStore, kind: str, params, pt: Path) -> None:
    """A valid integrity record for whatever bytes ``pt`` holds (hash matches: only unpickling can refuse)."""
    import hashlib

    data = pt.read_bytes()
    atomic_write_json({"format": FORMAT, "params": params, "metadata": {},
                       "payload": {"file": pt.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}},
                      pt.with_suffix(".json"))


def test_refused_pickle_is_never_executed_moved_aside_and_warned(tmp_path):
    st = ArtifactStore(tmp_path)
    marker = tmp_path / "EXECUTED"
    pt = st.path("masks", PARAMS)
    pt.parent.mkdir(parents=True)
    torch.save({"payload": {"x": _Planted(marker)}, "params": PARAMS, "metadata": {}}, pt)
    _write_sidecar_for(st, "masks", PARAMS, pt)
    with pytest.warns(ArtifactCorruptWarning, match=r"refused by torch.load\(weights_only=True\)"):
        assert st.load("masks", PARAMS) is None
    assert not marker.exists()
    (aside,) = pt.parent.glob(f"{pt.name}.corrupt-*")
    torch.load(aside, weights_only=False)  # proves the planted pickle was live: a trusting loader runs it
    assert marker.exists()


def test_save_rejects_what_weights_only_loading_would_refuse(tmp_path):
    import numpy as np

    st = ArtifactStore(tmp_path)
    with pytest.raises(ValueError, match=r"payload\['a'\]\[1\] is a numpy.ndarray"):
        st.save("masks", PARAMS, {"a": [1, np.zeros(2)]})
    with pytest.raises(ValueError, match="refuses"):
        st.save("masks", PARAMS, {"obj": _Planted(tmp_path / "m")})
    assert not st.path("masks", PARAMS).exists()


def test_read_artifact_for_direct_file_access(tmp_path):
    st = ArtifactStore(tmp_path)
    payload, _ = _mask_payload()
    pt = st.save("masks", PARAMS, payload, {"note": "x"})
    got, params, meta = read_artifact(pt)
    assert torch.equal(got["masks"], payload["masks"]) and params == PARAMS and meta["note"] == "x"
    pt.write_bytes(pt.read_bytes()[:100])
    with pytest.raises(ArtifactCorruptError, match="truncated"):
        read_artifact(pt)
    assert pt.exists()  # read_artifact reports; only ArtifactStore.load moves files aside


def test_unavailable_map_location_is_not_mistaken_for_corruption(tmp_path):
    st = ArtifactStore(tmp_path)
    payload, _ = _mask_payload()
    pt = st.save("masks", PARAMS, payload)
    if torch.cuda.is_available():  # pragma: no cover - GPU machines
        got, _ = st.load("masks", PARAMS, map_location="cuda")
        assert got["masks"].is_cuda
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ArtifactCorruptWarning)
            with pytest.raises(RuntimeError, match="(?i)cuda"):
                st.load("masks", PARAMS, map_location="cuda")
        assert pt.is_file() and st.load("masks", PARAMS) is not None


def test_out_of_memory_while_loading_is_not_mistaken_for_corruption(tmp_path, monkeypatch):
    st = ArtifactStore(tmp_path)
    pt = st.save("imagecache", PARAMS, _cache_payload()[0])

    def oom(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: "
                           "you tried to allocate 4294967296 bytes.")

    monkeypatch.setattr(torch, "load", oom)
    with pytest.raises(RuntimeError, match="not enough memory"):
        st.load("imagecache", PARAMS)
    monkeypatch.undo()
    assert pt.is_file() and st.load("imagecache", PARAMS) is not None


def test_concurrent_save_during_load_is_retried_not_quarantined(tmp_path, monkeypatch):
    st = ArtifactStore(tmp_path)
    payload, _ = _mask_payload()
    st.save("masks", PARAMS, payload)
    real, calls = S.read_artifact, []

    def racing(path, map_location="cpu"):
        calls.append(path)
        if len(calls) == 1:  # another process replaces both files while this one reads
            st.save("masks", PARAMS, {**payload, "steps": torch.arange(4) + 1})
            raise ArtifactCorruptError(Path(path), "SHA-256 differs (simulated torn read)")
        return real(path, map_location)

    monkeypatch.setattr(S, "read_artifact", racing)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ArtifactCorruptWarning)
        got, _ = st.load("masks", PARAMS)
    assert len(calls) == 2 and torch.equal(got["steps"], torch.arange(4) + 1)
    assert not list(st.path("masks", PARAMS).parent.glob("*.corrupt-*"))


def test_damaged_file_is_left_alone_while_another_holder_has_the_claim(tmp_path):
    st = ArtifactStore(tmp_path)
    payload, _ = _mask_payload()
    pt = st.save("masks", PARAMS, payload)
    pt.write_bytes(b"")
    held, release = threading.Event(), threading.Event()

    def writer():  # e.g. another run about to save a fresh copy
        with st.claim("masks", PARAMS):
            held.set()
            release.wait(30)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert held.wait(30)
        with pytest.warns(ArtifactCorruptWarning, match="holds its lock") as rec:
            assert st.load("masks", PARAMS) is None
        assert len(_corrupt_warnings(rec)) == 1 and pt.exists()  # not moved from under the holder
    finally:
        release.set()
        t.join(30)
    with pytest.warns(ArtifactCorruptWarning, match="moved aside"):
        assert st.load("masks", PARAMS) is None
    assert not pt.exists() and len(list(pt.parent.glob(f"{pt.name}.corrupt-*"))) == 1


# ------------------------------------------------------------------------------------------ training state
def test_truncated_train_state_restarts_training_and_bitflipped_model_is_retrained(tmp_path):
    from fmask.training import fit as T
    from fmask.data import write_fake_imagenette
    from fmask.experiment.profiles import load_profile

    root = write_fake_imagenette(tmp_path / "inet", n_train=4, n_val=2, size=(32, 36))
    prof = load_profile("smoke", {"data.root": str(root), "data.max_per_class": None, "data.image_size": 32,
                                  "train.epochs": 2, "train.batch_size": 10, "train.lr": 0.01,
                                  "train.robust_eval_regimes": []})
    ds = T.load_datasets(prof, progress=False)
    full = T.train_model("vanilla", prof, store=ArtifactStore(tmp_path / "a"), datasets=ds, progress=False)

    class Stop(Exception):
        pass

    def stop_after_1(epoch, history):
        if epoch == 1:
            raise Stop

    st = ArtifactStore(tmp_path / "b")
    with pytest.raises(Stop):
        T.train_model("vanilla", prof, store=st, datasets=ds, progress=False, callback=stop_after_1)
    (state,) = (tmp_path / "b" / "train-state").glob("*.pt")
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 3])  # killed mid-write by an old writer

    epochs = []
    with pytest.warns(ArtifactCorruptWarning, match="train-state"):
        again = T.train_model("vanilla", prof, store=st, datasets=ds, progress=False,
                              callback=lambda e, h: epochs.append(e))
    assert epochs == [1, 2]  # started over instead of failing on every resume
    assert again.history["train_loss"] == full.history["train_loss"]
    assert len(list((tmp_path / "b" / "train-state").glob("*.pt.corrupt-*"))) == 1

    # flipped exponent bits in the finished model: never a NaN model with the old val_acc
    model_pt = again.checkpoint
    _flip_bits(model_pt, again.model.state_dict()[next(k for k, v in again.model.state_dict().items()
                                                        if v.dtype == torch.float32 and v.numel() >= 8)])
    with pytest.warns(ArtifactCorruptWarning, match="SHA-256"):
        assert T.load_model("vanilla", prof, store=st, datasets=ds) is None


# ------------------------------------------------------------------------------------------ permissions
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_files_follow_the_umask(tmp_path, umask, mode):
    assert mode == 0o666 & ~umask
    old = os.umask(umask)
    try:
        st = ArtifactStore(tmp_path / "store")
        pt = st.save("model", PARAMS, {"x": torch.ones(2)})
        j = atomic_write_json({"a": 1}, tmp_path / "results" / "r.json")
    finally:
        os.umask(old)
    for f in (pt, pt.with_suffix(".json"), pt.with_suffix(".lock"), j):
        assert stat.S_IMODE(f.stat().st_mode) == mode, f
    assert stat.S_IMODE(pt.parent.stat().st_mode) == 0o777 & ~umask


# ------------------------------------------------------------------------------------------ orphaned tmp
def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_orphaned_tmp_files_are_removed_fresh_or_live_ones_kept(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    dead = _dead_pid()
    old = time.time() - 2 * TMP_MAX_AGE
    files = {
        "old_dead": folder / f".k.pt.{dead}-{'a' * 16}.tmp",
        "old_mkstemp": folder / ".k.pt.x7_q2k9z.tmp",  # name pattern of older fmask (tempfile.mkstemp)
        "old_live_writer": folder / f".k.pt.{os.getpid()}-{'b' * 16}.tmp",
        "fresh_dead": folder / f".k.json.{dead}-{'c' * 16}.tmp",
        "old_not_ours": folder / "notes.tmp",
    }
    for name, f in files.items():
        f.write_bytes(b"partial")
        if name.startswith("old"):
            os.utime(f, (old, old))
    st = ArtifactStore(tmp_path)  # opening the store cleans
    assert not files["old_dead"].exists() and not files["old_mkstemp"].exists()
    assert files["old_live_writer"].exists() and files["fresh_dead"].exists() and files["old_not_ours"].exists()

    again = folder / f".j.pt.{dead}-{'d' * 16}.tmp"  # left behind later: the next save in that folder cleans
    again.write_bytes(b"partial")
    os.utime(again, (old, old))
    st.save("model", PARAMS, {"x": torch.ones(1)})
    assert not again.exists() and files["fresh_dead"].exists()
    assert ArtifactStore(tmp_path, tmp_max_age=None).clean_orphans() == []


def test_delete_removes_payload_and_metadata(tmp_path):
    st = ArtifactStore(tmp_path)
    pt = st.save("train-state", PARAMS, {"epoch": 3})
    assert st.exists("train-state", PARAMS)
    assert st.delete("train-state", PARAMS) is True
    assert not pt.exists() and not pt.with_suffix(".json").exists() and st.load("train-state", PARAMS) is None
    assert st.delete("train-state", PARAMS) is False
    # a sidecar left by a crash inside delete() reads as missing (payload is removed first)
    st.save("train-state", PARAMS, {"epoch": 3})
    pt.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert st.load("train-state", PARAMS) is None and not st.exists("train-state", PARAMS)


def test_exists_is_false_without_a_matching_sidecar(tmp_path):
    st = ArtifactStore(tmp_path)
    pt = st.save("masks", PARAMS, {"x": torch.ones(3)})
    assert st.exists("masks", PARAMS)
    pt.with_suffix(".json").unlink()
    assert not st.exists("masks", PARAMS)
    st.save("masks", PARAMS, {"x": torch.ones(3)})
    with open(pt, "ab") as fh:
        fh.write(b"\0")
    assert not st.exists("masks", PARAMS)


# ------------------------------------------------------------------------------------------ claim / lock
def _compute_worker(root, log, barrier, out_q):
    st = ArtifactStore(root)
    barrier.wait(30)

    def compute():
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(1.0)  # long enough that the other process arrives while this one computes
        return {"x": torch.arange(4.0) * 2}

    value, status = cached_stage(st, "model", PARAMS, compute, metadata={"by": os.getpid()},
                                 deserialise=lambda payload, meta: {**payload, "by": meta["by"]})
    out_q.put((os.getpid(), value["x"].tolist(), value.get("by", os.getpid()), status))


def _ctx():
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


def test_two_processes_compute_an_artifact_exactly_once(tmp_path):
    ctx = _ctx()
    log = tmp_path / "computed.log"
    barrier, out_q = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_compute_worker, args=(str(tmp_path / "store"), str(log), barrier, out_q))
             for _ in range(2)]
    for p in procs:
        p.start()
    results = [out_q.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    computed_by = log.read_text().split()
    assert len(computed_by) == 1  # exactly one computation
    assert [r[1] for r in results] == [[0.0, 2.0, 4.0, 6.0]] * 2
    assert {r[2] for r in results} == {int(computed_by[0])}  # the other loaded the first one's artifact
    assert sorted(r[3] for r in results) == [COMPUTED, LOADED]


def _hold_and_die(root, held, release):
    st = ArtifactStore(root)
    with st.claim("model", PARAMS):
        held.set()
        release.wait(30)
        os.kill(os.getpid(), signal.SIGKILL)  # dies holding the claim


def test_claim_times_out_naming_the_holder_and_is_freed_when_it_dies(tmp_path):
    ctx = _ctx()
    held, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold_and_die, args=(str(tmp_path), held, release))
    p.start()
    assert held.wait(30)
    st = ArtifactStore(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(ClaimTimeout, match=f"pid {p.pid} on "):
        with st.claim("model", PARAMS, timeout=0.3):
            pass  # pragma: no cover
    assert time.monotonic() - t0 < 5
    release.set()
    p.join(30)
    assert p.exitcode == -signal.SIGKILL
    with st.claim("model", PARAMS, timeout=5):  # the kernel released the dead holder's lock
        st.save("model", PARAMS, {"x": torch.ones(1)})  # re-entrant: save inside claim does not deadlock
    assert st.load("model", PARAMS) is not None


def test_claim_excludes_threads(tmp_path):
    st = ArtifactStore(tmp_path)
    held, release = threading.Event(), threading.Event()

    def holder():
        with st.claim("model", PARAMS):
            held.set()
            release.wait(30)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(30)
        with pytest.raises(ClaimTimeout):
            with st.claim("model", PARAMS, timeout=0.2):
                pass  # pragma: no cover
    finally:
        release.set()
        t.join(30)
    with st.claim("model", PARAMS, timeout=5):
        pass
    assert isinstance(ClaimTimeout("x"), TimeoutError) and isinstance(ClaimTimeout("x"), StoreError)


def test_save_waits_for_the_claim_so_payload_and_metadata_stay_a_pair(tmp_path):
    st = ArtifactStore(tmp_path)
    held, release, saved = threading.Event(), threading.Event(), threading.Event()

    def holder():  # writes version 1 under its claim, then keeps the claim a while
        with st.claim("masks", PARAMS):
            st.save("masks", PARAMS, {"v": torch.tensor(1)})
            held.set()
            release.wait(30)

    def saver():
        st.save("masks", PARAMS, {"v": torch.tensor(2)})
        saved.set()

    t1 = threading.Thread(target=holder)
    t1.start()
    assert held.wait(30)
    t2 = threading.Thread(target=saver)
    t2.start()
    try:
        assert not saved.wait(0.5)  # blocked: it cannot interleave its two files with the holder's
        assert st.load("masks", PARAMS)[0]["v"].item() == 1
    finally:
        release.set()
        t1.join(30)
        t2.join(30)
    assert saved.is_set()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ArtifactCorruptWarning)
        assert st.load("masks", PARAMS)[0]["v"].item() == 2


# ------------------------------------------------------------------------------------------ writability
def test_check_writable_read_only_folder(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        probe = ro / "probe"
        try:  # root ignores mode bits: then simulate what a non-root user sees
            probe.write_bytes(b"")
            probe.unlink()
            real_access = os.access
            monkeypatch.setattr(S.os, "access", lambda p, m, **kw: False if Path(p) == ro else real_access(p, m, **kw))
        except PermissionError:
            pass
        with pytest.raises(StoreError, match=r"ro is not writable.*set FMASK_ARTIFACTS") as ei:
            ArtifactStore(ro).check_writable()
        assert isinstance(ei.value, OSError)
    finally:
        ro.chmod(0o755)


def test_check_writable_failed_write_and_uncreatable_root(tmp_path, monkeypatch):
    st = ArtifactStore(tmp_path / "store")
    assert st.check_writable("model", "masks") == st.root and (st.root / "model").is_dir()
    assert [p.name for p in st.root.iterdir() if p.is_file()] == []  # the probe is removed

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot create it"):
        ArtifactStore(blocker / "store").check_writable()  # fails for root too: a real failure

    def erofs(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(S, "new_tmp_file", erofs)  # e.g. a read-only mount
    with pytest.raises(StoreError, match="test write failed: Read-only file system"):
        st.check_writable()


# ------------------------------------------------------------------------------------------ default root
def test_default_root_is_the_same_from_any_cwd(tmp_path, monkeypatch):
    monkeypatch.delenv("FMASK_ARTIFACTS", raising=False)
    repo = Path(fmask.__file__).resolve().parents[1]  # these tests run from a source checkout
    assert source_checkout_root() == repo
    roots = []
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        monkeypatch.chdir(tmp_path / d)
        # `fmask train` (ArtifactStore(None)) and `fmask book` (the folder it hands the notebooks) agree
        roots.append((default_root(), ArtifactStore().root, Path(book_runner.resolve_artifacts(None))))
    assert roots[0] == roots[1] == (repo / "artifacts",) * 3

    monkeypatch.setenv("FMASK_ARTIFACTS", "rel/store")  # explicit relative choices become absolute at once
    st = ArtifactStore()
    monkeypatch.chdir(tmp_path / "a")
    assert st.root == tmp_path / "b" / "rel" / "store" and st.root.is_absolute()
    assert ArtifactStore("x").root == tmp_path / "a" / "x"


def test_default_root_outside_a_checkout_is_the_user_cache(tmp_path, monkeypatch):
    site = tmp_path / "site-packages" / "fmask"
    site.mkdir(parents=True)
    assert source_checkout_root(site) is None
    other = tmp_path / "other"
    (other / "fmask").mkdir(parents=True)
    (other / "pyproject.toml").write_text('[project]\nname = "notfmask"\n')
    assert source_checkout_root(other / "fmask") is None
    (other / "pyproject.toml").write_text('[project]\nname = "fmask"\n')
    assert source_checkout_root(other / "fmask") == other

    monkeypatch.delenv("FMASK_ARTIFACTS", raising=False)
    monkeypatch.setattr(S, "source_checkout_root", lambda package_dir=None: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "fmask" / "artifacts"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".cache" / "fmask" / "artifacts"
