"""Inputs and outputs of masks for your own model: class-folder labels, .pt label keys, tiny images, the one
checkpoint reader, and the safety of ``--out`` (fmask.data.images, fmask.models.checkpoint, fmask.learners.own)."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fmask import cli
from fmask.data.images import folder_labels
from fmask.infra.integrity import ArtifactCorruptError
from fmask.infra.store import ArtifactStore
from fmask.learners import MaskResult
from fmask.learners import own
from fmask.learners.distributed import load_model_checkpoint as dist_load
from fmask.learners.own import check_out_path, load_images, prepare_model
from fmask.models.checkpoint import CheckpointNotFoundError, load_model_checkpoint, read_checkpoint
from fmask.models.zoo import build_model

ROOT = Path(__file__).resolve().parents[1]


def _png(path: Path, h: int = 32, w: int = 32, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)).save(path)


def _class_folders(root: Path, names=("0_a", "2_c", "3_d")) -> Path:
    for k, name in enumerate(names):
        _png(root / name / "x.png", seed=k)
    return root


# --------------------------------------------------------------------------------------------- labels
def test_class_folders_starting_with_an_integer_carry_that_label(tmp_path):
    x, y = load_images(_class_folders(tmp_path / "imgs"))
    assert y.tolist() == [0, 2, 3]  # folder 2_c is label 2, not its sorted position 1
    got = load_images(tmp_path / "imgs")
    assert got.classes == {"0_a": 0, "2_c": 2, "3_d": 3} and got.images.shape == (3, 1, 32, 32)
    assert [Path(f).parent.name for f in got.files] == ["0_a", "2_c", "3_d"]


def test_class_folders_without_numbers_are_labelled_by_sorted_position(tmp_path):
    got = load_images(_class_folders(tmp_path / "imgs", ("dog", "cat", "emu")))
    assert got.labels.tolist() == [0, 1, 2] and got.classes == {"cat": 0, "dog": 1, "emu": 2}


def test_explicit_class_mapping_overrides_the_folder_rule(tmp_path):
    root = _class_folders(tmp_path / "imgs")
    got = load_images(root, classes={"0_a": 4, "2_c": 0, "3_d": 1})
    assert got.labels.tolist() == [4, 0, 1] and got.classes == {"0_a": 4, "2_c": 0, "3_d": 1}
    assert load_images(root, classes=["3_d", "0_a", "2_c"]).labels.tolist() == [1, 2, 0]
    with pytest.raises(ValueError, match="3_d"):
        load_images(root, classes={"0_a": 0, "2_c": 1})
    with pytest.raises(ValueError, match="label >= 0"):
        load_images(root, classes={"0_a": -1, "2_c": 1, "3_d": 2})


def test_ambiguous_folder_names_are_refused():
    with pytest.raises(ValueError, match="cat"):
        folder_labels(["0_a", "cat"])
    with pytest.raises(ValueError, match="both start with label 1"):
        folder_labels(["1_a", "01_b"])
    assert folder_labels(["10_x", "2_y"]) == {"10_x": 10, "2_y": 2}


# --------------------------------------------------------------------------------------------- .pt files
def test_pt_files_read_labels_or_targets_and_refuse_both_when_they_differ(tmp_path):
    x = torch.rand(3, 1, 8, 8)
    y = torch.tensor([2, 0, 1])
    torch.save({"images": x, "targets": y}, tmp_path / "t.pt")
    assert load_images(tmp_path / "t.pt")[1].tolist() == [2, 0, 1]  # 'targets' is not ignored
    torch.save({"images": x, "labels": y, "targets": y.clone()}, tmp_path / "same.pt")
    assert load_images(tmp_path / "same.pt")[1].tolist() == [2, 0, 1]
    torch.save({"images": x, "labels": y, "targets": torch.tensor([0, 0, 0])}, tmp_path / "differ.pt")
    with pytest.raises(ValueError, match="'labels' and 'targets'"):
        load_images(tmp_path / "differ.pt")
    torch.save((x, y), tmp_path / "pair.pt")
    assert load_images(tmp_path / "pair.pt")[1].tolist() == [2, 0, 1]


# --------------------------------------------------------------------------------------------- sizes
def test_tiny_images_warn_naming_the_files(tmp_path):
    _png(tmp_path / "flat" / "big.png", 16, 16)
    _png(tmp_path / "flat" / "dot.png", 1, 1)
    with pytest.warns(UserWarning, match=r"dot\.png \(1x1\)"):
        load_images(tmp_path / "flat", size=16)
    torch.save(torch.rand(2, 1, 4, 5), tmp_path / "small.pt")
    with pytest.warns(UserWarning, match=r"small\.pt \(4x5\)"):
        load_images(tmp_path / "small.pt")
    _png(tmp_path / "ok" / "a.png", 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_images(tmp_path / "ok")  # 8 px is not tiny


def test_different_sizes_error_names_the_size_flag(tmp_path):
    _png(tmp_path / "flat" / "a.png", 16, 16)
    _png(tmp_path / "flat" / "b.png", 20, 24)
    with pytest.raises(ValueError, match=r"--size S or --size H W") as e:
        load_images(tmp_path / "flat")
    assert "b.png 24x20" in str(e.value) and "size=S" not in str(e.value).split("(")[0]


# --------------------------------------------------------------------------------------------- checkpoints
def test_one_checkpoint_reader_for_every_layout(tmp_path):
    fm = build_model("vgg_small", in_channels=1, num_classes=3, mean=(0.3,), std=(0.1,)).eval()
    x = torch.rand(2, 1, 32, 32)
    store = ArtifactStore(tmp_path / "store")
    art = store.save("model", {"model": {"arch": "vgg_small", "width_div": 4}}, {"state_dict": fm.state_dict()})
    layouts = {"plain": fm.state_dict(), "arch": {"arch": "vgg_small", "state_dict": fm.net.state_dict()},
               "model_state": {"arch": "vgg_small", "model_state": fm.state_dict()}}
    for name, blob in layouts.items():
        torch.save(blob, tmp_path / f"{name}.pt")
    for path in (art, tmp_path / "model_state.pt"):  # Normalized state dicts keep their mean/std
        m = load_model_checkpoint(path)  # the distributed worker's loader
        assert torch.equal(m(x), fm(x)), path
        assert torch.equal(dist_load(str(path))(x), fm(x)), path
    bare = dist_load(str(tmp_path / "arch.pt"))  # a bare network gets the default normalisation
    assert torch.equal(bare.net(x), fm.net(x)) and bare.mean.flatten().tolist() == pytest.approx([0.449])
    assert torch.equal(load_model_checkpoint(tmp_path / "plain.pt", arch="vgg_small").mean, fm.mean)
    assert torch.equal(prepare_model("vgg_small", checkpoint=tmp_path / "model_state.pt")(x), fm(x))
    ck = read_checkpoint(art, verify=True)  # the book's verified read
    assert ck.verified and ck.stored("arch") == "vgg_small" and ck.mean.tolist() == pytest.approx([0.3])
    assert set(ck.state_dict) == set(fm.net.state_dict())
    torch.save(fm.state_dict(), tmp_path / "nosidecar.pt")
    with pytest.raises(ArtifactCorruptError, match="nosidecar"):
        read_checkpoint(tmp_path / "nosidecar.pt", verify=True)
    for bad in (tmp_path / "missing.pt",):
        with pytest.raises(CheckpointNotFoundError):
            dist_load(str(bad))
        with pytest.raises(ValueError):  # also a ValueError, as prepare_model always raised
            prepare_model("vgg_small", checkpoint=bad)
    torch.save(fm, tmp_path / "pickled.pt")
    with pytest.raises(ValueError, match="weights_only"):
        dist_load(str(tmp_path / "pickled.pt"), arch="vgg_small")
    with pytest.raises(ValueError, match="no 'arch' stored"):
        load_model_checkpoint(tmp_path / "plain.pt")


def test_models_floor_imports_nothing_above_it():
    code = ("import sys, fmask.models.checkpoint; "
            "print([m for m in sys.modules if m.split('.')[:2] in (['fmask', 'data'], ['fmask', 'learners'], "
            "['fmask', 'training'], ['fmask', 'experiment'])])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------- --out
@pytest.fixture()
def own_setup(tmp_path):
    """A vgg_small checkpoint (4 classes, grayscale) and a folder with class folders 0_a, 2_c, 3_d."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        fm = build_model("vgg_small", in_channels=1, num_classes=4)
    ck = tmp_path / "ck.pt"
    torch.save({"state_dict": fm.state_dict()}, ck)
    imgs = _class_folders(tmp_path / "imgs")
    torch.save({"images": torch.rand(2, 1, 32, 32)}, tmp_path / "x.pt")
    return tmp_path, ck, imgs


def _masks(*extra):
    return cli.main(["masks", "--arch", "vgg_small", "--steps", "2", "--no-progress", *map(str, extra)])


def _error(capsys, rc, *words):
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("fmask: error:") and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, err
    return err


def test_out_equal_to_an_input_is_refused_and_the_input_kept(own_setup, capsys):
    tmp, ck, imgs = own_setup
    before = (tmp / "x.pt").read_bytes()
    _error(capsys, _masks("--checkpoint", ck, "--images", tmp / "x.pt", "--out", tmp / "x.pt"), "--images")
    assert (tmp / "x.pt").read_bytes() == before
    (tmp / "link.pt").symlink_to(tmp / "x.pt")
    _error(capsys, _masks("--checkpoint", ck, "--images", tmp / "x.pt", "--out", tmp / "link.pt"), "--images")
    assert (tmp / "x.pt").read_bytes() == before
    ck_before = ck.read_bytes()
    _error(capsys, _masks("--checkpoint", ck, "--images", imgs, "--out", ck), "--checkpoint")
    assert ck.read_bytes() == ck_before
    _error(capsys, _masks("--checkpoint", ck, "--images", imgs, "--out", imgs / "m.pt"), "inside")
    assert not (imgs / "m.pt").exists()


def test_out_that_fmask_did_not_write_is_refused(own_setup, capsys):
    tmp, ck, imgs = own_setup
    (tmp / "notes.pt").write_text("my notes")
    _error(capsys, _masks("--checkpoint", ck, "--images", imgs, "--out", tmp / "notes.pt", "--force"),
           "not an fmask mask file")
    assert (tmp / "notes.pt").read_text() == "my notes"


def test_out_checked_before_learning(own_setup, capsys, monkeypatch):
    tmp, ck, imgs = own_setup

    def boom(*a, **k):
        raise AssertionError("learning started")

    monkeypatch.setattr(own, "learn_own_masks", boom)
    (tmp / "folder").mkdir()
    _error(capsys, _masks("--checkpoint", ck, "--images", imgs, "--out", tmp / "folder"), "is a folder")
    (tmp / "afile").write_text("")
    with pytest.raises(NotADirectoryError):
        check_out_path(tmp / "afile" / "m.pt")


def test_existing_mask_file_needs_force_and_labels_are_printed_and_saved(own_setup, capsys):
    tmp, ck, imgs = own_setup
    out = tmp / "out" / "m.pt"
    assert _masks("--checkpoint", ck, "--images", imgs, "--out", out) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["classes"] == {"0_a": 0, "2_c": 2, "3_d": 3}
    res = MaskResult.load(out)
    assert res.metadata["classes"] == {"0_a": 0, "2_c": 2, "3_d": 3}
    assert res.history["target"].tolist() == [0, 2, 3]
    before = out.read_bytes()
    _error(capsys, _masks("--checkpoint", ck, "--images", imgs, "--out", out), "--force")
    assert out.read_bytes() == before
    assert _masks("--checkpoint", ck, "--images", imgs, "--out", out, "--force", "--seed", "1") == 0
    assert MaskResult.load(out).masks.shape == (3, 1, 32, 32)


def test_masks_help_states_the_label_rule_and_force(capsys):
    with pytest.raises(SystemExit):
        cli.main(["masks", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "starting with an integer" in text and "sorted name order" in text and "--force" in text
    assert "'labels': (N,)" in text
