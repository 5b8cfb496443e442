"""benchmarks/bench_dm_schedule.py: its settings grid and argument checks (the measurement itself needs trained
networks; its result file is read by chapter 4 and checked there for the keys it quotes)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _mod():
    spec = importlib.util.spec_from_file_location("bench_dm_schedule", ROOT / "benchmarks" / "bench_dm_schedule.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def test_settings_grid_names_each_schedule():
    m = _mod()
    s = m._settings([10, 5], True, ["1:0.001:10", "8:0.02:10"])
    assert list(s) == ["cpu", "cpu_10ep", "cpu_5ep", "b1_lr0.001_10ep", "b8_lr0.02_10ep", "original"]
    assert s["cpu"] == {} and s["cpu_5ep"] == {"epochs": 5}
    assert s["b8_lr0.02_10ep"] == {"batch_size": 8, "lr": 0.02, "epochs": 10}
    assert s["original"] == {"epochs": 100, "lr": 0.001, "patience": 7, "batch_size": 1}
    assert "original" not in m._settings([], False, [])
    with pytest.raises(SystemExit, match="BATCH:LR:EPOCHS"):
        m._settings([], False, ["8:0.02"])


def test_committed_result_has_what_chapter_4_quotes():
    from fmask.experiment.results import benchmark_result

    r = benchmark_result("bench_dm_schedule")["results"]
    for name in ("cpu", "original", "cpu_10ep", "b1_lr0.001_10ep"):
        row = r[name]["vanilla"]
        for key in ("mask_mean", "low_share", "seconds", "epochs_run", "snapshot_epoch", "final_accuracy",
                    "initial_accuracy", "settings", "model_val_acc"):
            assert key in row, (name, key)
    assert "mean_abs_diff_to_original" in r["cpu"]["vanilla"]
    assert r["cpu"]["vanilla"]["settings"]["epochs"] == 20  # the cpu profile's budget it measured
