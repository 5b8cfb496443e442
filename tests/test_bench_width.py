"""benchmarks/bench_width.py: the per-image cost of a wider vgg_small (the price side of issue #9's 80 %)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest


def _module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_width.py"
    spec = importlib.util.spec_from_file_location("fmask_bench_width", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_width_prints_rates_and_ratios_against_the_first_width(tmp_path, capsys):
    out = _module().main(["--widths", "8", "4", "--batches", "4", "--size", "32", "--reps", "1", "--threads", "1",
                          "--mask-images", "16", "--mask-batch", "8", "--mask-reps", "1", "--out", str(tmp_path / "w.json")])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last == json.loads((tmp_path / "w.json").read_text()) == json.loads(json.dumps(out))
    first, second = last["rows"]
    assert (first["width_div"], second["width_div"]) == (8, 4) and first["batch"] == second["batch"] == 4
    assert first["train_cost_vs_first"] == first["input_grad_cost_vs_first"] == 1.0
    for row in last["rows"]:
        assert row["train"] > 0 and row["input_grad"] > 0
    assert second["train_cost_vs_first"] == pytest.approx(first["train"] / second["train"])
    dm = last["dataset_mask"]["rows"]
    assert [r["width_div"] for r in dm] == [8, 4] and dm[0]["cost_vs_first"] == 1.0
    assert all(r["seconds_per_epoch"] > 0 for r in dm)
    assert dm[1]["cost_vs_first"] == pytest.approx(dm[1]["seconds_per_epoch"] / dm[0]["seconds_per_epoch"])
    with pytest.raises(SystemExit):
        _module().main(["--reps", "0"])
    with pytest.raises(SystemExit):
        _module().main(["--mask-images", "-1"])
