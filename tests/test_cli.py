"""fmask.cli and fmask.experiment.profiles: --help, profiles, `fmask train` on the smoke profile."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from fmask import cli
from fmask.data import write_fake_imagenette
from fmask.experiment.profile_schema import REQUIRED, TOP_LEVEL_KEYS
from fmask.experiment.profiles import list_profiles, load_profile


def test_help_lists_commands_and_options(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("train", "book", "profiles"))
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--regime", "--profile", "--data", "--artifacts", "--device", "--seed", "--epochs", "adversarial"):
        assert opt in out
    with pytest.raises(SystemExit):
        cli.main(["book", "--help"])
    out = capsys.readouterr().out
    for opt in ("--profile", "--out", "--data", "--artifacts", "--only"):
        assert opt in out


def test_python_dash_m_help():
    r = subprocess.run([sys.executable, "-m", "fmask", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "train" in r.stdout


@pytest.mark.parametrize("name", ["smoke", "cpu", "paper"])
def test_profiles_load_and_validate(name):
    p = load_profile(name)
    assert set(p) == set(TOP_LEVEL_KEYS) and p["name"] == name
    for sec, keys in REQUIRED.items():
        assert set(keys) <= set(p[sec])
    assert set(p["train"]["regimes"]) == {"vanilla", "scale", "translate", "rotate", "adversarial"}


def test_paper_profile_is_the_papers():
    p = load_profile("paper")
    assert p["model"]["arch"] == "vgg11_bn" and p["data"]["image_size"] == 128 and p["data"]["classes"] == "paper"
    t, dm, sm = p["train"], p["dataset_mask"], p["single_mask"]
    assert (t["epochs"], t["batch_size"], t["lr"], t["pct_start"], t["adv_steps"]) == (50, 128, 1e-3, 0.1, 10)
    assert t["adv_eps"] == pytest.approx(0.06 * 0.226, abs=1e-4)
    assert (dm["lam"], dm["lr"], dm["epochs"], dm["batch_size"], dm["patience"]) == (0.2, 1e-3, 100, 1, 7)
    assert (sm["lam"], sm["lr"], sm["steps"], sm["patience"]) == (0.07, 0.01, 20000, 300)


def test_profile_overrides_and_errors(tmp_path):
    p = load_profile("smoke", {"train.epochs": 4, "data": {"image_size": 48}, "seed": 7})
    assert (p["train"]["epochs"], p["data"]["image_size"], p["seed"]) == (4, 48, 7)
    assert p["data"]["channels"] == 1  # nested dict merged, not replaced
    assert load_profile("smoke")["train"]["epochs"] == 1  # no leakage between loads
    with pytest.raises(ValueError, match="unknown profile"):
        load_profile("nope")
    with pytest.raises(ValueError, match="no section"):
        load_profile("smoke", {"nosuch.key": 1})
    with pytest.raises(ValueError, match="regimes"):
        load_profile("smoke", {"train.regimes": ["shear"]})
    with pytest.raises(ValueError, match="positive integer"):
        load_profile("smoke", {"train.epochs": 0})
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nseed: 0\n")
    with pytest.raises(ValueError, match="missing keys"):
        load_profile(bad)
    assert set(list_profiles()) >= {"smoke", "cpu", "paper"}


def test_train_command_on_smoke(tmp_path, capsys):
    root = write_fake_imagenette(tmp_path / "inet", n_train=4, n_val=2, size=(32, 32))
    args = ["train", "--profile", "smoke", "--data", str(root), "--artifacts", str(tmp_path / "art"),
            "--regime", "vanilla", "--regime", "rotate", "--epochs", "1", "--seed", "3", "--device", "cpu",
            "--set", "data.max_per_class=null", "--no-progress"]
    assert cli.main(args) == 0
    lines = [json.loads(s) for s in capsys.readouterr().out.strip().splitlines()]
    assert [d["regime"] for d in lines] == ["vanilla", "rotate"]
    assert all(d["n_train"] == 20 and d["n_val"] == 10 and 0 <= d["val_acc"] <= 1 for d in lines)
    ckpts = sorted((tmp_path / "art" / "model").glob("*.pt"))
    assert len(ckpts) == 2
    meta = json.loads(ckpts[0].with_suffix(".json").read_text())
    assert meta["params"]["seed"] == 3 and meta["params"]["train"]["epochs"] == 1
    # a second call reuses both models
    assert cli.main(args) == 0
    assert sorted((tmp_path / "art" / "model").glob("*.pt")) == ckpts


def test_train_command_reports_missing_data(tmp_path, capsys):
    rc = cli.main(["train", "--profile", "smoke", "--data", str(tmp_path / "missing"), "--artifacts", str(tmp_path)])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------------------ one CLI, one-line errors
def test_version_and_examples_in_every_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    from fmask import __version__

    assert __version__ in capsys.readouterr().out
    for command in ("train", "masks", "book", "distribute", "profiles"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        out = capsys.readouterr().out
        assert "example" in out and f"fmask {command}" in out, command
    with pytest.raises(SystemExit):
        cli.main(["book", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "numbers (4 or 04)" in out and "comma lists" in out


def _assert_one_line_error(capsys, rc, *needles):
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fmask: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def test_yaml_syntax_error_in_a_profile_is_one_line(tmp_path, capsys):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: x\nseed: [0\n")
    line = _assert_one_line_error(capsys, cli.main(["profiles", "--show", str(bad)]), str(bad), "YAML", "line")
    assert "fix the profile" in line


def test_refused_pickle_is_one_line(tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"arch": "vgg_small", "state_dict": _NotATensor()}, evil)
    rc = cli.main(["distribute", "--checkpoint", str(evil), "--images", str(evil), "--out", str(tmp_path / "o.pt")])
    line = _assert_one_line_error(capsys, rc, str(evil), "weights_only")
    assert "trust" in line
    assert not (tmp_path / "o.pt").exists()


class _NotATensor:  # a pickled Python object that torch.load(weights_only=True) must refuse
    pass


def _tiny_repo(tmp_path, monkeypatch, body='print("ok", profile)\n'):
    """A repository with one trivial chapter, so `fmask book` runs in seconds."""
    from fmask.book import runner

    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "book").mkdir()
    (repo / "notebooks" / "01_x.py").write_text('# %% tags=["parameters"]\nprofile = "x"\n# %%\n' + body)
    (repo / "book" / "intro.md").write_text("# intro\n")
    (repo / "_config.yml").write_text("title: t\n")
    (repo / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n- file: book/01_x\n")
    monkeypatch.setattr(runner, "REPO_ROOT", repo)
    return repo


def test_read_only_out_fails_before_running_and_names_the_folder(tmp_path, monkeypatch, capsys):
    import errno
    import tempfile

    from fmask.book import runner

    _tiny_repo(tmp_path, monkeypatch)
    out = tmp_path / "out"
    (out / "book").mkdir(parents=True)
    good = out / "book" / "01_x.ipynb"
    good.write_text("{}")
    if os.geteuid() != 0:  # a real read-only folder; root ignores permissions, so simulate EROFS there
        os.chmod(out / "book", 0o500)
    else:
        real = tempfile.mkstemp

        def mkstemp(*a, **k):
            if str(k.get("dir", "")).startswith(str(out)):
                raise OSError(errno.EROFS, "Read-only file system")
            return real(*a, **k)

        monkeypatch.setattr(runner.tempfile, "mkstemp", mkstemp)
    try:
        rc = cli.main(["book", "--profile", "smoke", "--out", str(out), "--no-build", "--no-progress"])
    finally:
        os.chmod(out / "book", 0o700)
    line = _assert_one_line_error(capsys, rc, str(out / "book"))
    assert "choose another --out" in line
    assert good.read_text() == "{}"


def test_disk_full_while_publishing_keeps_the_good_notebook(tmp_path, monkeypatch, capsys):
    import errno

    from fmask.infra import atomic

    _tiny_repo(tmp_path, monkeypatch)
    out = tmp_path / "out"
    args = ["book", "--profile", "smoke", "--out", str(out), "--no-build", "--no-progress"]
    assert cli.main(args) == 0
    capsys.readouterr()
    good = out / "book" / "01_x.ipynb"
    before = good.read_bytes()

    def full(path, write, *, binary):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "atomic_write", full)
    line = _assert_one_line_error(capsys, cli.main(args), str(good), "No space left on device")
    assert "previous notebook is unchanged" in line
    assert good.read_bytes() == before


def test_failed_chapter_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    _tiny_repo(tmp_path, monkeypatch, body='raise ValueError("deliberate")\n')
    rc = cli.main(["book", "--profile", "smoke", "--out", str(tmp_path / "o"), "--no-build", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("fmask: error:") == 1 and "deliberate" in err and "01_x.failed.ipynb" in err


# ------------------------------------------------------------------ fmask distribute: inputs checked first
def _distribute_files(tmp_path, images=None, targets=None, raw=None):
    from fmask.models.zoo import build_model

    torch.manual_seed(0)
    ck, im = tmp_path / "model.pt", tmp_path / "images.pt"
    torch.save({"arch": "vgg_small", "state_dict": build_model("vgg_small", in_channels=1, num_classes=5,
                                                               width_div=16).state_dict()}, ck)
    if raw is not None:
        im.write_bytes(raw)
    else:
        x = torch.rand(4, 1, 32, 32) if images is None else images
        torch.save({"images": x} if targets is None else {"images": x, "targets": targets}, im)
    return ck, im


@pytest.mark.parametrize("case, extra, needles", [
    ("rgb images for a grey model", [], ["model.pt", "images.pt", "does not take"]),
    ("targets beyond the classes", [], ["images.pt", "targets", "[0, 5)"]),
    ("targets of the wrong length", [], ["images.pt", "labels", "N = 4", "(2,)"]),
    ("pixels in 0..255", [], ["images.pt", "[0, 1]"]),
    ("not a torch file", [], ["images.pt", "could not read"]),
    ("no 'images' key", [], ["images.pt", "'images'"]),
    ("missing checkpoint", [], ["nope.pt", "no such"]),
    ("zero steps", ["--steps", "0"], ["--steps must", "positive integer"]),
    ("negative lambda", ["--lam", "-1"], ["--lam", ">= 0"]),
    ("zero timeout", ["--timeout", "0"], ["--timeout", "> 0"]),
    ("zero batch", ["--batch-size", "0"], ["--batch-size must", "positive integer"]),
])
def test_distribute_bad_input_is_one_line_before_any_rank_starts(tmp_path, monkeypatch, capsys, case, extra,
                                                                   needles):
    import subprocess as sp

    kw = {"rgb images for a grey model": dict(images=torch.rand(4, 3, 32, 32)),
          "targets beyond the classes": dict(targets=torch.tensor([0, 1, 2, 7])),
          "targets of the wrong length": dict(targets=torch.tensor([0, 1])),
          "pixels in 0..255": dict(images=torch.rand(4, 1, 32, 32) * 255),
          "not a torch file": dict(raw=b"this is not a torch file"),
          "no 'images' key": dict(images=None)}.get(case, {})
    ck, im = _distribute_files(tmp_path, **kw)
    if case == "no 'images' key":
        torch.save({"pictures": torch.rand(4, 1, 32, 32)}, im)
    if case == "missing checkpoint":
        ck = tmp_path / "nope.pt"

    def no_ranks(*a, **k):
        raise AssertionError(f"a rank was started for bad input ({case})")

    monkeypatch.setattr(sp, "Popen", no_ranks)
    monkeypatch.setattr(sp, "call", no_ranks)
    rc = cli.main(["distribute", "--nproc", "2", "--checkpoint", str(ck), "--images", str(im),
                   "--out", str(tmp_path / "o.pt"), *extra])
    _assert_one_line_error(capsys, rc, *needles)
    assert not (tmp_path / "o.pt").exists()
