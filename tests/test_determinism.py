"""Run twice -> identical result files: the comparison logic of fmask.book.determinism, the thread
count's effect on training (why the book runner pins it), the runner's pinning and fresh store, and the
check end to end (a real smoke chapter twice; a deliberately non-deterministic chapter caught), and the
comparison with a reference computed on the same or another CPU kind."""
from __future__ import annotations

import json
import math
import os
import shutil
import textwrap
from pathlib import Path

import pytest
import torch

from fmask import book, cli

from fmask.book import determinism as D
from fmask.book.drift import UNKNOWN_KIND
from fmask.infra.runtime import DEFAULT_BOOK_THREADS, THREADS_ENV, book_threads, pin_threads, thread_env


# ------------------------------------------------------------------------------------------ comparison
def _doc(value, time="2026-01-01T00:00:00+00:00", seconds=1.5):
    return {"name": "r", "values": {"vanilla": {"clean": value, "seconds": seconds}, "list": [1, 2.5]},
            "meta": {"time": time, "profile": "smoke", "versions": {"torch": "x"}}}


def test_compare_values_finds_differing_keys_and_ignores_only_the_listed_ones():
    a = _doc(0.5)
    same_but_times = _doc(0.5, time="2030-01-01T00:00:00+00:00", seconds=99.0)
    same_but_times["meta"]["versions"] = {"torch": "y", "numpy": "z"}
    assert list(D.compare_values(a, same_but_times)) == []
    b = _doc(0.5 + 2 ** -40)  # differs in the last bits: still a difference
    diffs = list(D.compare_values(a, b, file="t.json"))
    assert [(d.file, d.key, d.kind) for d in diffs] == [("t.json", "values.vanilla.clean", "value")]
    assert diffs[0].abs_diff == pytest.approx(2 ** -40) and diffs[0].rel_diff == pytest.approx(2 ** -40 / 0.5)
    assert "values.vanilla.clean" in diffs[0].describe() and "abs" in diffs[0].describe()
    # a non-ignored key (profile) is compared; ignored ones are named in one place
    c = _doc(0.5)
    c["meta"]["profile"] = "cpu"
    assert [d.key for d in D.compare_values(a, c)] == ["meta.profile"]
    assert {"time", "seconds", "versions"} <= set(D.IGNORED_KEYS) and "runtimes" in D.IGNORED_DIRS


def test_compare_values_structure_nan_and_types():
    assert list(D.compare_values({"x": math.nan, "i": 1}, {"x": math.nan, "i": 1.0})) == []
    kinds = {d.key: d.kind for d in D.compare_values(
        {"l": [1, 2, 3], "only": 1, "t": [1], "b": True, "s": "a"},
        {"l": [1, 2], "new": 2, "t": {"k": 1}, "b": 1, "s": "b"})}
    assert kinds == {"l": "length", "only": "only_a", "new": "only_b", "t": "type", "b": "value", "s": "value"}


def test_compare_results_walks_every_json_but_the_runtimes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, value in ((a, 0.25), (b, 0.75)):
        (root / "runtimes").mkdir(parents=True)
        (root / "table1.json").write_text(json.dumps(_doc(0.5)))
        (root / "table2.json").write_text(json.dumps(_doc(value)))
        (root / "runtimes" / "x.json").write_text(json.dumps({"seconds": value, "stage": str(value)}))
    (a / "claims.json").write_text(json.dumps({"claims": []}))
    cmp = D.compare_results(a, b)
    assert cmp.files == ["claims.json", "table1.json", "table2.json"]
    assert [(d.file, d.key, d.kind) for d in cmp.differences] == [
        ("claims.json", "", "only_a"), ("table2.json", "values.vanilla.clean", "value")]
    text = cmp.format()
    assert "DIFFERENT: 2 value(s) in 2 file(s)" in text and "largest numeric difference 0.5" in text
    assert not cmp.identical
    (a / "claims.json").unlink()
    (b / "table2.json").write_text(json.dumps(_doc(0.25, time="later", seconds=3.0)))
    cmp = D.compare_results(a, b)
    assert cmp.identical and "IDENTICAL" in cmp.format()
    with pytest.raises(FileNotFoundError):
        D.compare_results(a, tmp_path / "missing")
    (b / "table1.json").write_text("{not json")
    with pytest.raises(ValueError, match="table1.json"):
        D.compare_results(a, b)


# ------------------------------------------------------------------------------------------ threads
def test_thread_settings_are_validated(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert book_threads() == DEFAULT_BOOK_THREADS and book_threads(3) == 3
    monkeypatch.setenv(THREADS_ENV, "1")
    assert book_threads() == 1
    assert thread_env(4) == {"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4", THREADS_ENV: "4"}
    for bad in (0, -1, "two", 1.5):
        with pytest.raises(ValueError, match="positive integer"):
            book_threads(bad)
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(ValueError, match=THREADS_ENV):
        book_threads()
    before = torch.get_num_threads()
    with pin_threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before


@pytest.fixture(scope="module")
def tiny_training(tmp_path_factory):
    from fmask.training import fit as T
    from fmask.experiment.profiles import load_profile
    from fmask.data.fake import write_fake_imagenette

    root = write_fake_imagenette(tmp_path_factory.mktemp("fake") / "inet", n_train=8, n_val=4, size=(32, 36))
    prof = load_profile("smoke", {"data.root": str(root), "data.max_per_class": None, "data.image_size": 32,
                                  "train.epochs": 1, "train.batch_size": 10, "train.lr": 0.01})
    ds = T.load_datasets(prof, progress=False)

    def weights(threads: int, store: Path) -> dict[str, torch.Tensor]:
        from fmask.infra.store import ArtifactStore

        with pin_threads(threads):
            tm = T.train_model("vanilla", prof, store=ArtifactStore(store), datasets=ds, progress=False)
        return {k: v.detach().clone() for k, v in tm.model.state_dict().items()}

    return weights


def test_thread_count_changes_trained_weights_so_the_book_pins_it(tiny_training, tmp_path):
    """Measured on the 2-core build machine (torch 2.14.1 CPU): the same training with 1 and with 2 intra-op
    threads ends with different weights (reductions are split into per-thread partial sums), while the same
    thread count twice is bitwise identical. Hence fmask book runs every kernel with a fixed count."""
    one_a = tiny_training(1, tmp_path / "1a")
    one_b = tiny_training(1, tmp_path / "1b")
    two = tiny_training(2, tmp_path / "2")
    assert all(torch.equal(one_a[k], one_b[k]) for k in one_a), "same threads, same seed: must be identical"
    differing = [k for k in one_a if not torch.equal(one_a[k], two[k])]
    assert differing, "1 and 2 threads gave identical weights: update docs/guarantees.md and fmask.infra.runtime"
    assert max((one_a[k].float() - two[k].float()).abs().max().item() for k in differing) > 0


# ------------------------------------------------------------------------------------- book runner
_PROBE = textwrap.dedent('''\
    # %% tags=["parameters"]
    profile: str = "x"
    results_dir: str = "results"
    artifacts_dir: str = ""
    # %%
    import json, os, pathlib, random, torch
    from fmask.infra import host
    from fmask.infra.runtime import apply_thread_env
    pinned = apply_thread_env()
    store = pathlib.Path(artifacts_dir) / "probe"
    store.mkdir(parents=True, exist_ok=True)
    (store / "k.json").write_text("{}")
    value = random.SystemRandom().random() if __NOISY__ else 0.5
    pathlib.Path(results_dir).mkdir(exist_ok=True)
    doc = {"name": "probe", "values": {"threads": torch.get_num_threads(), "pinned": pinned,
            "env": os.environ.get("OMP_NUM_THREADS"), "value": value}, "meta": {"machine": host.machine()}}
    (pathlib.Path(results_dir) / "probe.json").write_text(json.dumps(doc))
    ''')


def _probe_notebooks(folder: Path, noisy: bool) -> Path:
    src = folder / ("noisy" if noisy else "quiet")
    src.mkdir(parents=True)
    (src / "01_probe.py").write_text(_PROBE.replace("__NOISY__", str(noisy)))
    return src


def test_runner_pins_threads_and_fresh_uses_a_new_empty_store(tmp_path, monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    lines: list[str] = []
    run = book.run_book("smoke", out=tmp_path / "out", src_dir=_probe_notebooks(tmp_path, False), build=False,
                        threads=1, fresh=True, log=lines.append)
    values = json.loads((run.results_dir / "probe.json").read_text())["values"]
    assert values == {"threads": 1, "pinned": 1, "env": "1", "value": 0.5}
    assert any("1 torch thread" in s for s in lines) and any("fresh" in s for s in lines)
    assert any("computed 1 artifact(s): probe/k" in s for s in lines)
    assert THREADS_ENV not in os.environ  # the runner restored the environment
    with pytest.raises(ValueError, match="fresh"):
        book.run_book("smoke", out=tmp_path / "o2", artifacts=tmp_path / "s", fresh=True, build=False)
    # a store that already holds artifacts is announced (a book may then reuse older results)
    (tmp_path / "store" / "model").mkdir(parents=True)
    (tmp_path / "store" / "model" / "abc.json").write_text("{}")
    lines.clear()
    book.run_book("smoke", out=tmp_path / "out3", artifacts=tmp_path / "store", build=False,
                  src_dir=_probe_notebooks(tmp_path / "again", False),
                  threads=2, log=lines.append)
    assert any("already holds 1 artifact(s)" in s and "--fresh" in s for s in lines)


# ------------------------------------------------------------------------------------------ end to end
def test_check_catches_a_nondeterministic_chapter_and_the_cli_exits_1(tmp_path, monkeypatch, capsys):
    src = _probe_notebooks(tmp_path, True)
    real = D.check_determinism
    monkeypatch.setattr(D, "check_determinism", lambda *a, **kw: real(*a, src_dir=src, **kw))
    status = cli.main(["check-determinism", "--profile", "smoke", "--threads", "1", "--keep", str(tmp_path / "w")])
    out = capsys.readouterr().out
    assert status == 1
    assert "DIFFERENT: 1 value(s) in 1 file(s)" in out and "probe.json: values.value" in out
    # both runs kept, each with its own fresh store
    assert (tmp_path / "w" / "store-a" / "probe" / "k.json").exists()
    assert (tmp_path / "w" / "store-b" / "probe" / "k.json").exists()
    with pytest.raises(ValueError, match="not empty"):
        real("smoke", workdir=tmp_path / "w", src_dir=src, log=lambda s: None)


def test_smoke_chapter_run_twice_gives_identical_results(tmp_path):
    """The real check on the smallest profile and chapter 1 (no data needed): fresh outputs and stores."""
    lines: list[str] = []
    rep = D.check_determinism("smoke", "1", threads=1, workdir=tmp_path / "w", log=lines.append)
    assert rep.chapters == ["01_blue_shift"] and rep.threads == 1
    assert rep.comparison.files and "blue_shift.json" in rep.comparison.files
    assert rep.identical, rep.format()
    assert "IDENTICAL" in rep.format()


def test_against_runs_once_and_compares_with_a_committed_results_folder(tmp_path, monkeypatch, capsys):
    """``--against DIR``: one fresh run compared with an existing results folder (the committed book)."""
    src = _probe_notebooks(tmp_path, False)
    first = book.run_book("smoke", out=tmp_path / "committed", src_dir=src, build=False, threads=1, fresh=True,
                          log=lambda s: None)
    committed = first.results_dir
    lines: list[str] = []
    rep = D.check_determinism("smoke", threads=1, workdir=tmp_path / "w", src_dir=src, against=committed,
                              log=lines.append)
    assert rep.identical and len(rep.seconds) == 1 and rep.against == committed.resolve()
    assert rep.same_kind and rep.format().startswith("case: SAME CPU KIND")
    assert "reproduction check" in rep.format() and "IDENTICAL" in rep.format()
    assert not (tmp_path / "w" / "run-b").exists() and (tmp_path / "w" / "store-a").is_dir()  # ran once
    # a committed value that a fresh run does not reproduce is reported, and the CLI exits 1
    tampered = tmp_path / "tampered"
    shutil.copytree(committed, tampered)
    data = json.loads((tampered / "probe.json").read_text())
    data["values"]["value"] = 0.25
    (tampered / "probe.json").write_text(json.dumps(data))
    real = D.check_determinism
    monkeypatch.setattr(D, "check_determinism", lambda *a, **kw: real(*a, src_dir=src, **kw))
    status = cli.main(["check-determinism", "--profile", "smoke", "--threads", "1", "--keep", str(tmp_path / "w2"),
                       "--against", str(tampered)])
    out = capsys.readouterr().out
    assert status == 1 and "probe.json: values.value" in out and "reproduction check" in out
    # a file only in the committed folder is a difference on a full run ...
    (tampered / "extra.json").write_text("{}")
    rep = real("smoke", threads=1, workdir=tmp_path / "w3", src_dir=src, against=tampered, log=lambda s: None)
    assert any(d.file == "extra.json" and d.kind == "only_b" for d in rep.comparison.differences)
    # ... but not when only some chapters ran
    rep = real("smoke", "1", threads=1, workdir=tmp_path / "w4", src_dir=src, against=tampered, log=lambda s: None)
    assert not any(d.kind == "only_b" for d in rep.comparison.differences)
    with pytest.raises(FileNotFoundError, match="compare against"):
        real("smoke", workdir=tmp_path / "w5", src_dir=src, against=tmp_path / "missing", log=lambda s: None)


# ------------------------------------------------------------------------------- against another CPU kind
def _machine(kind):
    return {"kind": kind, "cpu": {"model": kind, "vendor": "v", "flags": []}, "torch": "2", "threads": 2}


def _results(root, kind, values, claims=None):
    """A synthetic results folder: ``{name: values}`` result files whose meta records the machine ``kind``
    (None: no machine record, like the committed book/results) and an optional ledger."""
    root.mkdir(parents=True)
    for name, v in values.items():
        meta = {"profile": "cpu", "seed": 0, "time": "2026-01-01T00:00:00+00:00"}
        if kind is not None:
            meta["machine"] = _machine(kind)
        (root / f"{name}.json").write_text(json.dumps({"name": name, "values": v, "meta": meta}))
    if claims is not None:
        (root / "claims.json").write_text(json.dumps({"claims": claims, "counts": {}, "results_dir": "."}))
    return root


def _claims(low=0.45, per_kind=0.01, blue=0.16, verdict="reproduced"):
    return [
        {"id": "fig4.low", "verdict": verdict, "ours": low, "interval": [0.40, 0.50], "details": {}},
        {"id": "table1.match", "verdict": "reproduced", "ours": {"vanilla": per_kind, "rotate": -0.003},
         "interval": [-0.02, 0.02],
         "details": {"vanilla": {"seed_interval": [0.0, 0.02], "interval": [-0.1, 0.1]},
                     "rotate": {"interval": [-0.01, 0.004]}}},
        {"id": "fig1.blue", "verdict": "reproduced", "ours": {"relu": blue}, "interval": None, "details": {}},
    ]


def _values(scale=1.0):
    return {"table1": {"acc": [0.5 * scale + i * 1e-3 for i in range(1000)], "n": 1973},
            "table2": {"kept": 0.9975, "curve": [0.1 * scale, 0.2]}}


def _report_via_cli(monkeypatch, capsys, rep):
    monkeypatch.setattr(D, "check_determinism", lambda *a, **kw: rep)
    status = cli.main(["check-determinism", "--profile", "cpu", "--against", str(rep.against)])
    return status, capsys.readouterr().out


def test_against_same_kind_and_identical_is_bitwise_and_passes(tmp_path, monkeypatch, capsys):
    run = _results(tmp_path / "run", "K", _values(), _claims())
    ref = _results(tmp_path / "ref", "K", _values(), _claims())
    rep = D.compare_with_reference(run, ref, threads=2, chapters=["04_x"])
    assert rep.reference_kind == rep.run_kind == "K" and rep.same_kind and rep.identical and rep.passed
    status, out = _report_via_cli(monkeypatch, capsys, rep)
    assert status == 0 and out.splitlines()[0].startswith("case: SAME CPU KIND") and "IDENTICAL" in out


def test_against_same_kind_and_differing_fails_on_the_last_bit(tmp_path, monkeypatch, capsys):
    run = _results(tmp_path / "run", "K", _values(1.0 + 2 ** -50), _claims())
    ref = _results(tmp_path / "ref", "K", _values(), _claims())
    rep = D.compare_with_reference(run, ref, threads=2)
    assert rep.same_kind and not rep.identical and not rep.passed and rep.drift is None
    status, out = _report_via_cli(monkeypatch, capsys, rep)
    assert status == 1 and out.splitlines()[0].startswith("case: SAME CPU KIND")
    assert "DIFFERENT" in out and "table1.json: values.acc[0]" in out


def test_against_other_kind_reports_drift_within_the_spread_and_passes(tmp_path, monkeypatch, capsys):
    run = _results(tmp_path / "run", "K2", _values(1.0 + 1e-4), _claims(low=0.46, per_kind=0.015, blue=0.17))
    ref = _results(tmp_path / "ref", "K1", _values(), _claims())
    rep = D.compare_with_reference(run, ref, threads=2)
    assert (rep.reference_kind, rep.run_kind) == ("K1", "K2") and not rep.same_kind
    assert not rep.identical and rep.passed  # drift, but no verdict changed and nothing beyond its spread
    status, out = _report_via_cli(monkeypatch, capsys, rep)
    lines = out.splitlines()
    assert status == 0 and lines[0].startswith("case: OTHER CPU KIND") and "K1" in lines[0] and "K2" in lines[0]
    assert len(lines) < 25  # a summary, not one line per differing value (table1 has 1000)
    assert "PASS" in out and "table1.json: 1000 value(s) differ; largest relative difference 0.0001" in out
    assert "verdicts: 0 changed" in out
    assert "fig4.low: 0.45 -> 0.46 (change +0.01); within the spread (half-width 0.05" in out
    assert "table1.match[vanilla]: 0.01 -> 0.015 (change +0.005); within the spread (half-width 0.01" in out
    assert "fig1.blue[relu]: 0.16 -> 0.17 (change +0.01); no spread available" in out
    assert "ledger values: 3 changed, 1 unchanged" in out
    # a reference that records no machine is of unknown kind: compared by drift, never bitwise
    bare = _results(tmp_path / "bare", None, _values(), _claims())
    rep = D.compare_with_reference(_results(tmp_path / "same", None, _values(), _claims()), bare, threads=2,
                                   run_kind="K2")
    assert rep.reference_kind == UNKNOWN_KIND and rep.run_kind == "K2" and rep.drift is not None
    assert rep.case().startswith("case: OTHER CPU KIND -- the reference records no machine (unknown kind)")
    assert rep.passed
    # a reference of this kind in which one result file records no machine is not bitwise comparable either
    part = _results(tmp_path / "part", "K2", _values(), _claims())
    doc = json.loads((part / "table2.json").read_text())
    del doc["meta"]["machine"]
    (part / "table2.json").write_text(json.dumps(doc))
    assert D.compare_with_reference(_results(tmp_path / "k2", "K2", _values(), _claims()), part,
                                    threads=2).reference_kind == f"mixed kinds (K2; {UNKNOWN_KIND})"


def test_against_other_kind_fails_on_a_changed_verdict_or_a_value_beyond_its_spread(tmp_path, monkeypatch,
                                                                                      capsys):
    ref = _results(tmp_path / "ref", "K1", _values(), _claims())
    run = _results(tmp_path / "run", "K2", _values(), _claims(low=0.455, verdict="not reproduced"))
    rep = D.compare_with_reference(run, ref, threads=2)
    assert not rep.passed and [v.describe() for v in rep.drift.verdicts] == ["fig4.low: reproduced -> not reproduced"]
    status, out = _report_via_cli(monkeypatch, capsys, rep)
    assert status == 1 and out.splitlines()[0].startswith("case: OTHER CPU KIND")
    assert "FAIL: 1 verdict(s) changed, 0 ledger value(s) beyond their spread" in out
    assert "fig4.low: reproduced -> not reproduced" in out
    # same verdicts, but a ledger value moved further than the seed-to-seed spread allows
    run2 = _results(tmp_path / "run2", "K2", _values(), _claims(per_kind=0.031))
    rep = D.compare_with_reference(run2, ref, threads=2)
    assert not rep.passed and not rep.drift.verdicts
    assert [d.key for d in rep.drift.beyond] == ["vanilla"] and "BEYOND the spread" in rep.format()
    # a claim missing from the run is a changed verdict
    run3 = _results(tmp_path / "run3", "K2", _values(), _claims()[:2])
    rep = D.compare_with_reference(run3, ref, threads=2)
    assert [v.describe() for v in rep.drift.verdicts] == ["fig1.blue: reproduced -> absent"] and not rep.passed
