"""fmask.experiment.results: atomic result files, runtimes, and the paper-vs-ours table built from them."""
from __future__ import annotations

import json
import math

import pytest

from fmask.experiment import results as report
from fmask.book import tables


def test_save_and_load_roundtrip_with_metadata(tmp_path):
    import numpy as np
    import torch

    vals = {"vanilla": {"standard": np.float32(0.5), "masked": torch.tensor(0.25)}, "n": np.int64(3)}
    path = report.save_result(tmp_path, "table1", vals, profile="smoke", meta={"seed": 7})
    assert path == tmp_path / "table1.json"
    rec = json.loads(path.read_text())
    assert rec["values"] == {"vanilla": {"standard": 0.5, "masked": 0.25}, "n": 3}
    assert rec["meta"]["profile"] == "smoke" and rec["meta"]["seed"] == 7
    assert "torch" in rec["meta"]["versions"] and rec["meta"]["time"]
    assert report.load_results(tmp_path) == {"table1": rec["values"]}
    assert report.load_result(tmp_path, "table1")["meta"]["profile"] == "smoke"
    # no temp files left behind; saving again replaces
    report.save_result(tmp_path, "table1", {"x": 1}, profile="smoke")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table1.json"]
    assert report.load_results(tmp_path)["table1"] == {"x": 1}


def test_bad_input_raises_valueerror(tmp_path):
    with pytest.raises(ValueError, match="result name"):
        report.save_result(tmp_path, "../evil", {}, profile="smoke")
    with pytest.raises(ValueError, match="mapping"):
        report.save_result(tmp_path, "x", [1, 2], profile="smoke")
    with pytest.raises(ValueError, match="profile"):
        report.save_result(tmp_path, "x", {}, profile="")
    with pytest.raises(ValueError, match="seconds"):
        report.record_runtime(tmp_path, "stage", -1.0, profile="smoke")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        report.load_results(tmp_path)


def test_runtimes_and_timed(tmp_path):
    report.record_runtime(tmp_path, "02_data", 12.5, profile="cpu")
    with report.timed(tmp_path, "inner", profile="cpu"):
        pass
    with pytest.raises(RuntimeError):
        with report.timed(tmp_path, "boom", profile="cpu"):
            raise RuntimeError("x")
    rts = report.load_runtimes(tmp_path)
    assert rts["02_data"]["seconds"] == 12.5 and rts["02_data"]["ok"] is True
    assert rts["boom"]["ok"] is False and rts["inner"]["seconds"] >= 0
    # runtimes are not mistaken for results
    assert report.load_results(tmp_path) == {}
    rows = tables.runtime_rows(tmp_path)
    assert {(r["chapter"], r["stage"]) for r in rows} == {("02_data", ""), ("pipeline", "inner"), ("pipeline", "boom")}
    assert "0.21" in tables.table_markdown(rows, digits=2)  # 12.5 s in minutes


def test_paper_values_file_is_well_formed():
    entries = report.paper_values()
    assert {e["table"] for e in entries} == {"table1", "table2", "table3"}
    keys = [(e["table"], e["row"], e["column"]) for e in entries]
    assert len(keys) == len(set(keys)), "duplicate cells in paper_values.yaml"
    for e in entries:
        assert e["source"].strip(), e
        assert e["value"] is None or 0 <= e["value"] <= 100


def test_table_is_built_from_result_files_and_follows_changes(tmp_path):
    paper = [
        {"table": "table1", "row": "vanilla", "column": "masked", "value": 80.0, "unit": "percent", "source": "T1"},
        {"table": "table1", "row": "scale", "column": "masked", "value": None, "unit": "percent", "source": "T1"},
        {"table": "table3", "row": "true_labels", "column": "test", "value": 78.44, "unit": "percent", "source": "T3"},
    ]
    rows = tables.paper_vs_ours(tmp_path, paper=paper, as_frame=False)
    assert [r["ours"] for r in rows] == [None, None, None]
    assert tables.table_markdown(rows).count("n/a") >= 5

    report.save_result(tmp_path, "table1", {"vanilla": {"standard": 0.8, "masked": 0.75},
                                            "scale": {"standard": 0.6, "masked": 0.5}}, profile="smoke")
    rows = tables.paper_vs_ours(tmp_path, paper=paper, as_frame=False)
    assert rows[0]["ours"] == pytest.approx(75.0) and rows[0]["difference"] == pytest.approx(-5.0)
    assert rows[1]["ours"] == pytest.approx(50.0) and rows[1]["difference"] is None
    md1 = tables.table_markdown(rows)
    assert "75.0" in md1 and "-5.0" in md1

    # change the result file on disk -> the table changes
    path = tmp_path / "table1.json"
    rec = json.loads(path.read_text())
    rec["values"]["vanilla"]["masked"] = 0.9
    path.write_text(json.dumps(rec))
    rows = tables.paper_vs_ours(tmp_path, paper=paper, as_frame=False)
    assert rows[0]["ours"] == pytest.approx(90.0) and rows[0]["difference"] == pytest.approx(10.0)
    md2 = tables.table_markdown(rows)
    assert md2 != md1 and "90.0" in md2

    table = tables.paper_vs_ours(tmp_path, paper=paper)  # DataFrame when pandas is installed
    if hasattr(table, "columns"):
        assert list(table.columns)[:6] == ["table", "row", "column", "paper", "ours", "difference"]
        assert math.isnan(table.loc[1, "difference"])
    else:
        assert table == rows


def test_onecycle_trace_stays_in_warmup():
    lrs = report.onecycle_lr_trace(0.2, epochs=100, steps_per_epoch=200, pct_start=0.1, steps_taken=100)
    assert lrs[0] == pytest.approx(0.2 / 25)
    assert max(lrs) < 0.2 / 10  # never leaves the early warm-up
    full = report.onecycle_lr_trace(0.2, epochs=10, steps_per_epoch=10, pct_start=0.1, steps_taken=100)
    assert max(full) == pytest.approx(0.2, rel=1e-3)


def test_profile_name():
    assert report.profile_name("cpu") == "cpu"
    assert report.profile_name("/x/y/mine.yaml") == "mine"


# ------------------------------------------------------------------------------ book tables (fmask.book.tables)
def test_paper_table_uses_short_source_keys_and_footnotes(tmp_path):
    from fmask.book import tables

    paper = [
        {"table": "table1", "row": "vanilla", "column": "masked", "value": 80.0, "unit": "percent", "source": "long A"},
        {"table": "table1", "row": "scale", "column": "masked", "value": None, "unit": "percent", "source": "long A"},
        {"table": "table3", "row": "true_labels", "column": "test", "value": 78.4, "unit": "percent", "source": "long B"},
    ]
    report.save_result(tmp_path, "table1", {"vanilla": {"standard": 0.8, "masked": 0.75}}, profile="smoke")
    rows = tables.paper_vs_ours(tmp_path, paper=paper, as_frame=False)
    md, notes = tables.paper_table(rows, table="table1", first_key=3)
    assert notes == ["[3] long A"]
    assert md.count("[3]") == 2 and "long A" not in md and "75.0" in md
    md_all, notes_all = tables.paper_table(rows)
    assert notes_all == ["[1] long A", "[2] long B"]


def test_runtime_table_groups_by_chapter_and_drops_constant_columns(tmp_path):
    from fmask.book import tables

    for stage, secs in (("04_dataset_masks", 120.0), ("04_dataset_masks.learn", 90.0), ("01_blue_shift", 6.0),
                        ("dataset_mask.vanilla", 30.0), ("book_build", 60.0)):
        report.record_runtime(tmp_path, stage, secs, profile="cpu")
    md, totals = tables.runtime_table(tmp_path, extra={"training vanilla": 600.0})
    lines = md.splitlines()
    assert lines[0] == "| stage | minutes |"  # ok and profile are constant -> dropped, said in the note
    assert "every stage completed; profile: cpu" in md
    order = [next(i for i, l in enumerate(lines) if key in l) for key in
             ("**01 blue_shift**", "**04 dataset_masks**", "↳ learn", "**book build**", "dataset_mask.vanilla",
              "training vanilla")]
    assert order == sorted(order)
    assert sum("↳ learn" in l for l in lines) == 1  # each stage once
    assert totals["chapters"] == pytest.approx(126.0 / 60) and totals["build"] == pytest.approx(1.0)
    assert totals["pipeline"] == pytest.approx(630.0 / 60)
    report.record_runtime(tmp_path, "05_energies", 1.0, profile="cpu", ok=False)
    md2, _ = tables.runtime_table(tmp_path)
    assert md2.splitlines()[0] == "| stage | minutes | ok |"


def test_settings_differences():
    from fmask.book import tables

    rows = tables.settings_differences({"name": "a", "train": {"epochs": 1, "lr": 0.1}, "x": None},
                                       {"name": "b", "train": {"epochs": 50, "lr": 0.1}})
    assert rows == [{"setting": "train.epochs", "this profile": "1", "paper": "50"},
                    {"setting": "x", "this profile": "null", "paper": "-"}]


def test_single_mask_lr_summary_matches_trace():
    from fmask.book import findings

    s = findings.single_mask_lr_summary({"max_lr": 0.2, "epochs": 100, "steps_per_epoch": 200, "pct_start": 0.1})
    trace = report.onecycle_lr_trace(0.2, epochs=100, steps_per_epoch=200, pct_start=0.1, steps_taken=100)
    assert s["first"] == trace[0] and s["last"] == trace[-1]
    assert s["warmup_share"] == pytest.approx(100 / 2000) and s["peak_share"] == pytest.approx(max(trace) / 0.2)


def test_load_results_skips_the_claims_ledger(tmp_path):
    report.save_result(tmp_path, "table1", {"vanilla": {"standard": 0.5, "masked": 0.5}}, profile="smoke")
    (tmp_path / "claims.json").write_text('{"claims": [], "counts": {}}')  # no "values": not a result file
    assert set(report.load_results(tmp_path)) == {"table1"}


def test_benchmark_result_reads_a_result_file_or_says_none(tmp_path):
    from fmask.experiment.results import BENCHMARK_RESULTS, benchmark_result

    (tmp_path / "b.json").write_text('{"ratio": 2.5}')
    assert benchmark_result("b", root=tmp_path) == {"ratio": 2.5}
    assert benchmark_result("absent", root=tmp_path) is None
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        benchmark_result("bad", root=tmp_path)
    with pytest.raises(ValueError, match="benchmark result name"):
        benchmark_result("../etc/passwd", root=tmp_path)
    # the committed measurements that chapters 3 and 8 quote are found in the checkout
    assert BENCHMARK_RESULTS.is_dir()
    from fmask.training.attacks import compare_training_attacks

    # chapter 3's comparison, with the run names it uses
    c = compare_training_attacks(benchmark_result("adversarial_w4_fgsmrs_vs_pgd5")["runs"],
                                 "fgsm_rs_1step_alpha0.017", "pgd_5step_alpha0.0034")
    assert c["first"]["n"] == c["second"]["n"] == 500 and c["speedup"] > 2
    assert "decision" in benchmark_result("bench_learn")


def test_a_result_is_read_by_its_file_name(tmp_path):
    report.save_result(tmp_path, "data", {"classes": 5}, profile="smoke")
    report.save_result(tmp_path, "table2", {"vanilla": {"masked_adversarial": 0.5}}, profile="smoke")
    # a copy under another file name that still says it is table2 is refused, naming both files
    rec = json.loads((tmp_path / "table2.json").read_text())
    rec["values"]["vanilla"]["masked_adversarial"] = 0.9
    (tmp_path / "table2_backup.json").write_text(json.dumps(rec))
    with pytest.raises(ValueError, match=r"table2_backup\.json says it holds result 'table2', which is read from "
                                         r".*table2\.json"):
        report.load_results(tmp_path)
    with pytest.raises(ValueError, match=r"table2_backup\.json"):
        report.load_results(tmp_path, names=["table2"])
    # with names, exactly those files are read: a stray copy of a result that is not read does not matter
    assert report.load_results(tmp_path, names=["data"]) == {"data": {"classes": 5}}
    (tmp_path / "table2_backup.json").unlink()
    assert report.load_results(tmp_path)["table2"] == {"vanilla": {"masked_adversarial": 0.5}}
    # one result read by name: its file must say it is that result
    (tmp_path / "table2.json").write_text(json.dumps({"name": "table3", "values": {}}))
    with pytest.raises(ValueError, match=r"table2\.json says it holds result 'table3'"):
        report.load_result(tmp_path, "table2")


def test_every_result_file_names_the_machine_that_computed_it(tmp_path):
    import torch

    from fmask.infra.host import KERNEL_FLAGS, cpu_kind

    path = report.save_result(tmp_path, "anything", {"a": 1}, profile="smoke")
    m = json.loads(path.read_text())["meta"]["machine"]
    assert m["cpu"]["model"] and set(m["cpu"]["flags"]) <= set(KERNEL_FLAGS)
    assert m["torch"] == torch.__version__ and m["threads"] == torch.get_num_threads()
    assert m["kind"] == cpu_kind(m) and m["cpu"]["model"] in m["kind"]
