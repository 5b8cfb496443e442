"""End-to-end wiring of the reliability pieces: train/stages under store claims, writable checks before work,
damaged models retrained, `fmask masks --arch`, one distribute parser, one-line I/O errors, docs tables."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fmask import cli

from fmask.experiment import stages
from fmask.training import fit as T
from fmask.learners import MaskResult
from fmask.experiment.profiles import load_profile
from fmask.infra.integrity import ArtifactCorruptError, StoreError
from fmask.infra.store import ArtifactCorruptWarning, ArtifactStore
from fmask.data.fake import write_fake_imagenette

ROOT = Path(__file__).resolve().parents[1]


def _tiny_profile(root, epochs=1):
    return load_profile("smoke", {"data.root": str(root), "data.max_per_class": 2, "data.max_per_class_val": 2,
                                  "data.image_size": 32, "train.epochs": epochs, "train.batch_size": 10,
                                  "train.robust_eval_n": 4, "device": "cpu"})


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = write_fake_imagenette(tmp_path_factory.mktemp("fake") / "inet", n_train=2, n_val=2, size=(32, 32))
    prof = _tiny_profile(root)
    return root, prof, T.load_datasets(prof, progress=False)


def _one_line(capsys, rc, *needles):
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fmask: error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------------------ train.py
def test_finished_training_deletes_the_state_through_the_store(fake, tmp_path, monkeypatch):
    _, prof, ds = fake
    store = ArtifactStore(tmp_path / "art")
    deleted = []
    real = ArtifactStore.delete
    monkeypatch.setattr(ArtifactStore, "delete", lambda self, k, p: deleted.append(k) or real(self, k, p))
    tm = T.train_model("vanilla", prof, store=store, datasets=ds, progress=False)
    assert deleted == [T.STATE_KIND]
    assert not store.exists(T.STATE_KIND, tm.params) and store.exists(T.MODEL_KIND, tm.params)
    assert not list((tmp_path / "art" / T.STATE_KIND).glob(f"{store.key(tm.params)}.*[tn]"))  # .pt / .json gone


def test_read_only_store_fails_before_the_first_epoch(fake, tmp_path, monkeypatch):
    _, prof, ds = fake
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")  # a file where the store folder should be: unwritable even for root
    monkeypatch.setattr(T, "_fit", lambda *a, **k: pytest.fail("an epoch ran on an unwritable store"))
    with pytest.raises(StoreError, match="not writable"):
        T.train_model("vanilla", prof, store=ArtifactStore(blocker), datasets=ds, progress=False)


def test_cli_train_read_only_store_is_one_line_before_any_work(fake, tmp_path, monkeypatch, capsys):
    root, _, _ = fake
    blocker = tmp_path / "art"
    blocker.write_text("x")
    monkeypatch.setattr(T, "load_datasets", lambda *a, **k: pytest.fail("data decoded before the store check"))
    rc = cli.main(["train", "--profile", "smoke", "--data", str(root), "--artifacts", str(blocker),
                   "--regime", "vanilla", "--no-progress"])
    _one_line(capsys, rc, str(blocker), "not writable")


def _flip_bits(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    for i in range(mid, mid + 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_model_is_retrained_never_reported(fake, tmp_path, capsys):
    root, _, _ = fake
    art = tmp_path / "art"
    args = ["train", "--profile", "smoke", "--data", str(root), "--artifacts", str(art), "--regime", "vanilla",
            "--set", "data.max_per_class=2", "--set", "data.image_size=32", "--epochs", "1", "--device", "cpu",
            "--no-progress"]
    assert cli.main(args) == 0
    first = json.loads(capsys.readouterr().out.strip())
    ck = Path(first["checkpoint"])
    _flip_bits(ck)
    with pytest.raises(ArtifactCorruptError, match="sha256|SHA-256|does not match|checksum"):
        T.load_checkpoint(ck)  # verified read: a clear error naming the damage
    with pytest.warns(ArtifactCorruptWarning):
        rc = cli.main(args)
    assert rc == 0
    again = json.loads(capsys.readouterr().out.strip())
    assert again["checkpoint"] == str(ck) and np.isfinite(again["val_acc"]) and np.isfinite(again["train_loss"])
    assert list(ck.parent.glob(ck.name + ".corrupt-*"))  # the damaged file was kept aside
    tm = T.load_checkpoint(ck)  # the retrained file verifies and gives finite outputs
    assert all(torch.isfinite(v).all() for v in tm.model.state_dict().values() if v.is_floating_point())
    assert tm.metrics["val_acc"] == again["val_acc"]


def test_load_checkpoint_rejects_a_file_without_its_sidecar(fake, tmp_path):
    _, prof, ds = fake
    tm = T.train_model("vanilla", prof, store=ArtifactStore(tmp_path), datasets=ds, progress=False)
    tm.checkpoint.with_suffix(".json").unlink()
    with pytest.raises(ArtifactCorruptError) as e:
        T.load_checkpoint(tm.checkpoint)
    assert str(tm.checkpoint) in str(e.value)


def test_diverged_training_is_not_saved(fake, tmp_path, monkeypatch):
    _, prof, ds = fake

    def nan_state(model):  # as if the weights had diverged to NaN during the epoch
        return {k: (torch.full_like(v, float("nan")) if v.is_floating_point() else v.clone())
                for k, v in model.state_dict().items()}

    monkeypatch.setattr(T, "_cpu_state_dict", nan_state)
    with pytest.raises(RuntimeError, match="diverged"):
        T.train_model("vanilla", prof, store=ArtifactStore(tmp_path), datasets=ds, progress=False)
    assert not list((tmp_path / T.MODEL_KIND).glob("*.pt"))


_TWO_PROCS = textwrap.dedent('''
    import os, sys, time
    import torch
    torch.set_num_threads(1)
    import fmask.training.fit as T
    from fmask.experiment.profiles import load_profile
    from fmask.infra.store import ArtifactStore
    root, art, log = sys.argv[1:4]
    real = T._fit
    def fit(*a, **k):
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\\n")
        time.sleep(3)  # keep the first trainer busy while the other process arrives
        return real(*a, **k)
    T._fit = fit
    prof = load_profile("smoke", {"data.root": root, "data.max_per_class": 2, "data.max_per_class_val": 2,
                                  "data.image_size": 32, "train.epochs": 1, "train.batch_size": 10,
                                  "train.robust_eval_n": 4, "device": "cpu"})
    tm = T.train_model("vanilla", prof, store=ArtifactStore(art), progress=False)
    print(tm.checkpoint, tm.metrics["seconds"])
''')


def test_two_processes_on_one_store_train_a_model_once(fake, tmp_path):
    root, _, _ = fake
    script = tmp_path / "two.py"
    script.write_text(_TWO_PROCS)
    log, art = tmp_path / "fits.log", tmp_path / "art"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(script), str(root), str(art), str(log)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert len(log.read_text().split()) == 1, "the model was trained more than once"
    assert outs[0][0] == outs[1][0]  # same checkpoint, same recorded metrics


# ------------------------------------------------------------------------------------------ stages / pipeline
def test_cached_stage_computes_once_under_a_claim(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path)
    calls = []
    held = []
    real_claim = ArtifactStore.claim

    def claim(self, kind, params, timeout=None):
        if not held:  # the first claim: another process finishes the artifact while we wait for the lock
            held.append(kind)
            store.save("s", {"a": 1}, {"v": torch.tensor(7.0)})
        return real_claim(self, kind, params, timeout)

    monkeypatch.setattr(ArtifactStore, "claim", claim)
    value, status = stages.cached_stage(store, "s", {"a": 1}, lambda: calls.append(1) or {"v": torch.tensor(1.0)})
    assert status == stages.LOADED and float(value["v"]) == 7.0 and not calls and "s" in held


def test_cached_stage_checks_writable_before_computing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError):
        stages.cached_stage(ArtifactStore(blocker), "s", {"a": 1}, lambda: pytest.fail("computed"))


_TWO_STAGES = textwrap.dedent('''
    import os, sys, time
    import torch
    from fmask.experiment.stages import cached_stage
    from fmask.infra.store import ArtifactStore
    art, log = sys.argv[1:3]
    def compute():
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\\n")
        time.sleep(2)
        return {"v": torch.arange(3.0)}
    value, status = cached_stage(ArtifactStore(art), "stage", {"k": 1}, compute)
    print(status, value["v"].tolist())
''')


def test_two_processes_compute_a_stage_once(tmp_path):
    script = tmp_path / "st.py"
    script.write_text(_TWO_STAGES)
    log = tmp_path / "log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "art"), str(log)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    assert len(log.read_text().split()) == 1
    assert sorted(o.split()[0] for o, _ in outs) == ["computed", "loaded"]


def test_run_results_dir_does_not_depend_on_the_cwd(fake, tmp_path, monkeypatch):
    from fmask.experiment.run import Run

    _, prof, _ = fake
    art = tmp_path / "store" / "artifacts"
    monkeypatch.chdir(tmp_path)
    a = Run(prof, artifacts=art)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    b = Run(prof, artifacts=art)
    assert a.results_dir == b.results_dir == art.parent / "results" and a.results_dir.is_absolute()
    c = Run(prof, artifacts=art, results_dir="rel")
    assert c.results_dir == tmp_path / "elsewhere" / "rel"


# ------------------------------------------------------------------------------------------ CLI
def test_artifacts_help_states_the_real_default():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in ("train", "masks", "book"):
        helps = {a.dest: a.help for a in sub.choices[name]._actions}
        for needle in ("$FMASK_ARTIFACTS", "<repo>/artifacts", "~/.cache/fmask/artifacts"):
            assert needle in helps["artifacts"], (name, helps["artifacts"])
    assert "./artifacts" not in cli.ARTIFACTS_HELP


def _write_pngs(folder: Path, n=3, hw=(36, 40)):
    g = np.random.default_rng(0)
    for k in range(n):
        sub = folder / f"class{k % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(g.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(sub / f"img{k}.png")


@pytest.fixture(scope="module")
def resnet_ckpt(tmp_path_factory):
    import torchvision

    d = tmp_path_factory.mktemp("resnet")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=3)
    ck = d / "resnet18.pt"
    torch.save(net.state_dict(), ck)
    _write_pngs(d / "imgs")
    return ck, d / "imgs"


def test_masks_for_your_own_resnet_from_the_command_line(resnet_ckpt, tmp_path, capsys):
    ck, imgs = resnet_ckpt
    out = tmp_path / "o" / "masks.pt"
    rc = cli.main(["masks", "--arch", "torchvision:resnet18", "--checkpoint", str(ck), "--images", str(imgs),
                   "--out", str(out), "--size", "32", "--steps", "2", "--lam", "0.05", "--seed", "4",
                   "--space", "normalised", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    line = json.loads(capsys.readouterr().out.strip())
    res = MaskResult.load(out)
    assert line["shape"] == list(res.masks.shape) == [3, 3, 32, 32]  # per image, one mask channel per colour
    assert res.params["lam"] == 0.05 and res.params["seed"] == 4 and res.params["space"] == "normalised"
    assert res.metadata["model"] == "torchvision:resnet18" and res.metadata["labels"] == "given"
    # shared channels + dataset mask + pixel space + explicit normalisation
    out2 = tmp_path / "m2.pt"
    rc = cli.main(["masks", "--arch", "torchvision:resnet18", "--checkpoint", str(ck), "--images", str(imgs),
                   "--out", str(out2), "--size", "32", "--steps", "1", "--dataset", "--shared-channels",
                   "--mean", "0.5", "--std", "0.25", "--space", "pixel", "--no-labels", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    res2 = MaskResult.load(out2)
    assert tuple(res2.masks.shape) == (1, 1, 32, 32)
    assert res2.metadata["mean"] == [0.5] * 3 and res2.metadata["std"] == [0.25] * 3
    assert res2.metadata["labels"] == "model predictions" and res2.params["space"] == "pixel"


def test_masks_own_model_errors_are_one_line(resnet_ckpt, tmp_path, capsys):
    ck, imgs = resnet_ckpt
    missing = tmp_path / "nope.pt"
    rc = cli.main(["masks", "--arch", "torchvision:resnet18", "--checkpoint", str(missing), "--images", str(imgs),
                   "--out", str(tmp_path / "m.pt")])
    _one_line(capsys, rc, str(missing))
    blocker = tmp_path / "blocker"
    blocker.write_text("x")  # the output's folder is a file: fails before learning, naming it
    rc = cli.main(["masks", "--arch", "torchvision:resnet18", "--checkpoint", str(ck), "--images", str(imgs),
                   "--out", str(blocker / "m.pt")])
    _one_line(capsys, rc, str(blocker))
    rc = cli.main(["masks", "--profile", "smoke", "--lam", "0.1"])  # own-model option without --arch
    _one_line(capsys, rc, "--lam", "--arch")


def test_atomic_write_failure_names_the_target_not_the_temp_file(tmp_path, monkeypatch, capsys):
    import errno

    from fmask.infra.atomic import atomic_torch_save

    target = tmp_path / "masks.pt"
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    try:
        with pytest.raises(OSError) as e:
            atomic_torch_save({"a": torch.zeros(1)}, target)
    finally:
        monkeypatch.setattr(os, "fsync", real_fsync)
    # the library's error may carry no name or the temporary name; the CLI line names the target
    exc = e.value
    if exc.filename is None:
        exc.filename = str(tmp_path / f".{target.name}.{os.getpid()}-0123456789abcdef.tmp")
    msg = cli.error_message(exc)
    assert str(target) in msg and ".tmp" not in msg and "disk full" in msg
    assert not list(tmp_path.glob(".*.tmp"))


def test_distribute_has_one_parser_with_space_and_precision(monkeypatch, tmp_path):
    from fmask.learners import distributed
    from fmask.learners.distributed_args import distribute_argv

    worker = {a.dest for a in distributed.build_worker_parser()._actions} - {"help"}
    sub = next(a for a in cli.build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    front = {a.dest for a in sub.choices["distribute"]._actions} - {"help", "nproc"}
    assert worker == front and {"space", "precision"} <= worker
    args = cli.build_parser().parse_args(["distribute", "--nproc", "2", "--checkpoint", "c.pt", "--images", "i.pt",
                                          "--out", "o.pt", "--space", "pixel", "--precision", "exact",
                                          "--steps", "5"])
    back = distributed.build_worker_parser().parse_args(distribute_argv(args))
    for k in worker:
        assert getattr(back, k) == getattr(args, k), k


def test_distribute_passes_space_and_precision_to_the_learner(tmp_path, monkeypatch, capsys):
    from fmask.learners import distributed
    from fmask.models.zoo import build_model

    torch.manual_seed(0)
    ck, im = tmp_path / "m.pt", tmp_path / "x.pt"
    torch.save({"arch": "vgg_small", "state_dict": build_model("vgg_small", in_channels=1, num_classes=5,
                                                               width_div=16).state_dict()}, ck)
    torch.save({"images": torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1)),
                "targets": torch.tensor([0, 1])}, im)
    seen = {}
    real = distributed.learn_masks_distributed

    def spy(model, images, targets, **kw):
        seen.update(kw)
        return real(model, images, targets, **kw)

    monkeypatch.setattr(distributed, "learn_masks_distributed", spy)
    out = tmp_path / "o.pt"
    rc = cli.main(["distribute", "--checkpoint", str(ck), "--images", str(im), "--out", str(out), "--steps", "2",
                   "--space", "pixel", "--precision", "exact"])
    assert rc == 0, capsys.readouterr().err
    assert seen["space"] == "pixel" and seen["precision"] == "exact"
    res = MaskResult.load(out)
    assert res.params["space"] == "pixel" and res.params["precision"] == "exact"


def test_python_dash_m_distributed_uses_the_shared_parser():
    proc = subprocess.run([sys.executable, "-m", "fmask.learners.distributed", "--help"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == 0 and "--space" in proc.stdout and "--precision" in proc.stdout


# ------------------------------------------------------------------------------------------ Makefile / docs
def test_make_bench_is_quick_and_bench_full_is_full():
    mk = (ROOT / "Makefile").read_text()
    rules = dict(re.findall(r"(?m)^([\w-]+):[^\n]*\n((?:\t[^\n]*\n)+)", mk))
    assert "bench_learn.py --quick" in rules["bench"]
    assert "bench_learn.py" in rules["bench-full"] and "--quick" not in rules["bench-full"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _readme_disagreements(text: str) -> list[str]:
    """What README.md ``text`` names that the repository does not have or does not do."""
    import inspect

    from fmask.book import runner
    from fmask.learners import DatasetMask, PerImageMasks

    bad = []
    paths = set(re.findall(r"`((?:fmask|docs|benchmarks|notebooks|book)/[A-Za-z0-9_./-]*)", text))
    bad += [f"path {p} does not exist" for p in sorted(paths) if not (ROOT / p).exists()]
    commands = set(re.findall(r"(?m)(?:^|`)fmask ([a-z][a-z-]+)", text))
    bad += [f"`fmask {c}` is not a command" for c in sorted(commands - set(cli.COMMANDS))]
    rules = dict(re.findall(r"(?m)^([\w-]+):[^\n]*\n((?:\t[^\n]*\n)*)", (ROOT / "Makefile").read_text()))
    bad += [f"`make {t}` is not a Makefile rule" for t in sorted(set(re.findall(r"`make ([a-z][a-z-]*)", text)) - set(rules))]
    learners = {"PerImageMasks": PerImageMasks, "DatasetMask": DatasetMask}
    for name, args in re.findall(r"\b(PerImageMasks|DatasetMask)\(model, ([^)]*)\)", text):
        params = set(inspect.signature(learners[name]).parameters)
        bad += [f"{name} has no keyword {k}" for k in re.findall(r"(\w+)=", args) if k not in params]
    # `make book PROFILE=smoke` runs `fmask book --profile smoke` without --out: the runner's default folder
    smoke = runner.default_out("smoke").relative_to(runner.REPO_ROOT).as_posix()
    for sub in ("book/", "_build/html/"):
        if f"`{smoke}/{sub}`" not in text:
            bad.append(f"the smoke book is written to {smoke}/{sub}, which README does not say")
    if "fmask book --profile $(PROFILE) $(if $(OUT),--out $(OUT),)" not in rules.get("book", ""):
        bad.append("`make book` does not run `fmask book --profile $(PROFILE)` with --out only when OUT is given")
    return bad


def test_readme_is_true_to_the_code():
    text = (ROOT / "README.md").read_text()
    assert not _readme_disagreements(text), _readme_disagreements(text)
    # each check can fail: a README that names what does not exist is caught
    wrong = (text.replace("`fmask/learners/`", "`fmask/learn3rs/`").replace("fmask masks --arch", "fmask mask --arch")
             .replace("PerImageMasks(model, lam=0.07)", "PerImageMasks(model, lamda=0.07)")
             .replace("`make determinism`", "`make determinsm`").replace("`_build/smoke/book/`", "`_build/book/`"))
    found = _readme_disagreements(wrong)
    for needle in ("fmask/learn3rs/", "`fmask mask`", "no keyword lamda", "`make determinsm`", "smoke book"):
        assert any(needle in f for f in found), (needle, found)


def test_cli_book_unwritable_store_fails_before_any_chapter(tmp_path, monkeypatch, capsys):
    from fmask.book import runner

    blocker = tmp_path / "art"
    blocker.write_text("x")
    monkeypatch.setattr(runner, "run_book", lambda *a, **k: pytest.fail("a chapter ran on an unwritable store"))
    rc = cli.main(["book", "--profile", "smoke", "--artifacts", str(blocker), "--out", str(tmp_path / "o"),
                   "--no-build"])
    _one_line(capsys, rc, str(blocker), "not writable")


def test_failed_output_write_is_one_line_naming_the_output(resnet_ckpt, tmp_path, monkeypatch, capsys):
    from fmask.infra import atomic

    ck, imgs = resnet_ckpt
    out = tmp_path / "masks.pt"

    def failing_save(obj, path):  # torch's zip writer reports a full disk as a bare RuntimeError
        raise RuntimeError("[enforce fail at inline_container.cc] PytorchStreamWriter failed writing file data/0")

    monkeypatch.setattr(atomic, "atomic_torch_save", failing_save)
    rc = cli.main(["masks", "--arch", "torchvision:resnet18", "--checkpoint", str(ck), "--images", str(imgs),
                   "--out", str(out), "--size", "32", "--steps", "1", "--no-progress"])
    _one_line(capsys, rc, str(out), "could not write")
    assert not out.exists()
