"""fmask.cli and fmask.profiles: --help, profiles, `fmask train` on the smoke profile."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fmask import cli
from fmask.data import write_fake_imagenette
from fmask.profiles import REQUIRED, TOP_LEVEL_KEYS, list_profiles, load_profile


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
