"""fmask.experiment.records: the schemas of the result files the claims ledger reads, checked at save and load."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from fmask import claims
from fmask.claims import ledger
from fmask.experiment import records
from fmask.experiment import results as report

ROOT = Path(__file__).resolve().parents[1]
BOOK_RESULTS = ROOT / "book" / "results"


def test_every_result_the_ledger_reads_has_a_schema():
    assert set(claims.RESULT_NAMES) == set(records.SCHEMAS)


def test_the_committed_results_pass_and_save_again(tmp_path):
    files = sorted(p for p in BOOK_RESULTS.glob("*.json") if p.name not in report.NOT_RESULTS)
    names = {p.stem for p in files}
    assert set(claims.RESULT_NAMES) <= names, "the committed book lacks a result the ledger reads"
    for p in files:
        rec = report.load_result(BOOK_RESULTS, p.stem)  # checks its schema
        report.save_result(tmp_path, p.stem, rec["values"], profile=rec["meta"]["profile"])
        assert json.loads((tmp_path / p.name).read_text())["values"] == rec["values"]
    assert set(report.load_results(tmp_path)) == names


def _table1(k=3, n=100):
    rep = {"standard": [0.5] * k, "masked": [0.5] * k, "n": [n] * k,
           "correct": {"standard": [50] * k, "masked": [50] * k},
           "discordant": {"standard_only": [1] * k, "masked_only": [1] * k}}
    return {"vanilla": {"standard": 0.5, "masked": 0.5, "n": n, "correct": {"standard": 50, "masked": 50},
                        "discordant": {"standard_only": 1, "masked_only": 1}, "replicates": rep}}


def _edit(values, path, value):
    node = values
    for k in path[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return values


_DELETE = object()

CASES = [
    ("table1", _table1(), ("vanilla", "replicates", "correct", "standard", 2), 101,
     r"table1\.vanilla\.replicates\.correct\.standard\[2\] = 101 is above table1\.vanilla\.replicates\.n\[2\] = 100"),
    ("table1", _table1(), ("vanilla", "correct", "masked"), 101, r"table1\.vanilla\.correct\.masked = 101 is above "
                                                                r"table1\.vanilla\.n = 100"),
    ("table1", _table1(), ("vanilla", "n"), "100", r"table1\.vanilla\.n = '100' must be a non-negative integer"),
    ("table1", _table1(), ("vanilla", "n"), -1, r"table1\.vanilla\.n = -1 must be a non-negative integer"),
    ("table1", _table1(), ("vanilla", "correct", "standard"), True, r"table1\.vanilla\.correct\.standard = True"),
    ("table1", _table1(), ("vanilla", "masked"), float("nan"), r"table1\.vanilla\.masked = nan must be a finite "
                                                               r"fraction in \[0, 1\]"),
    ("table1", _table1(), ("vanilla", "masked"), 80.2, r"table1\.vanilla\.masked = 80\.2 must be a finite fraction"),
    ("table1", _table1(), ("vanilla", "standard"), _DELETE, r"table1\.vanilla\.standard is required"),
    ("table1", _table1(), ("vanilla", "replicates", "masked"), [0.5, 0.5],
     r"table1\.vanilla\.replicates\.masked has 2 entries; table1\.vanilla\.replicates\.standard says 3"),
    ("table2", {"vanilla": {"n": 10, "correct": {"masked": 9}}}, ("vanilla", "correct", "masked"), 11,
     r"table2\.vanilla\.correct\.masked = 11 is above table2\.vanilla\.n = 10"),
    ("energies", {"n_bands": 4, "radial_share": {"vanilla": [0.25] * 4}}, ("radial_share", "vanilla"), [0.5] * 3,
     r"energies\.radial_share\.vanilla has 3 entries; energies\.n_bands says 4"),
    ("energies", {"n_bands": 2, "replicates": {"scale": {"radial_share": [[0.5, 0.5]]}}},
     ("replicates", "scale", "radial_share"), [[0.5, 0.5], [1.0]],
     r"energies\.replicates\.scale\.radial_share\[1\] has 1 entries; energies\.n_bands says 2"),
    ("single_image", {"per_image": {"low_share": {"vanilla": [0.1, 0.2]}, "paired_indices": [0]}},
     ("per_image", "paired_indices"), [0, 2],
     r"single_image\.per_image\.paired_indices\[1\] = 2 is out of range for single_image\.per_image\.low_share\.vanilla"),
    ("class_specificity", {"null_test_accuracy": [0.2, 0.3]}, ("null_test_accuracy",), [0.2, math.inf],
     r"class_specificity\.null_test_accuracy\[1\] = inf must be a finite fraction"),
    ("table3", {"true_labels": {"train": 1.0, "test": 0.8}}, ("true_labels", "test"), None,
     r"table3\.true_labels\.test is required, got null"),
    ("architectures", {"items": [{"item": "a", "agree": True}]}, ("items", 0, "agree"), "yes",
     r"architectures\.items\[0\]\.agree = 'yes' must be true, false or null"),
]


@pytest.mark.parametrize("name,good,path,bad,message", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_a_malformed_record_is_refused_at_save_and_at_load(tmp_path, name, good, path, bad, message):
    report.save_result(tmp_path, name, good, profile="smoke")  # the well-formed record is accepted
    assert report.load_results(tmp_path) == {name: good}
    broken = _edit(json.loads(json.dumps(good)), path, bad)
    (tmp_path / f"{name}.json").unlink()
    with pytest.raises(ValueError, match=rf"{name}\.json: {message}"):
        report.save_result(tmp_path, name, broken, profile="smoke")
    assert not (tmp_path / f"{name}.json").exists()  # nothing written
    (tmp_path / f"{name}.json").write_text(json.dumps({"name": name, "values": broken, "meta": {}}))
    for load in (lambda: report.load_results(tmp_path), lambda: report.load_result(tmp_path, name)):
        with pytest.raises(ValueError, match=rf"{name}\.json: {message}"):
            load()


def test_values_are_checked_as_they_will_be_written(tmp_path):
    import torch

    values = {"vanilla": {"standard": np.float32(0.5), "masked": torch.tensor(0.25), "n": np.int64(4),
                          "correct": {"standard": np.int64(2), "masked": np.int64(1)}}}
    report.save_result(tmp_path, "table1", values, profile="smoke")
    values["vanilla"]["correct"]["masked"] = np.int64(5)
    with pytest.raises(ValueError, match=r"table1\.vanilla\.correct\.masked = 5 is above table1\.vanilla\.n = 4"):
        report.save_result(tmp_path, "table1", values, profile="smoke")
    # a name the ledger does not read is free-form
    report.save_result(tmp_path, "notes", {"n": "four", "x": [float("nan")]}, profile="smoke")


def test_a_fraction_may_exceed_one_by_rounding_only(tmp_path):
    ok = {"n_bands": 2, "radial_share": {"vanilla": [1.0 + 1e-7, 0.0]}}
    report.save_result(tmp_path, "energies", ok, profile="smoke")
    with pytest.raises(ValueError, match=r"energies\.radial_share\.vanilla\[0\] = 1\.01"):
        report.save_result(tmp_path, "energies", {"n_bands": 2, "radial_share": {"vanilla": [1.01, 0.0]}},
                           profile="smoke")


def test_a_schema_names_only_known_kinds():
    with pytest.raises(ValueError, match="unknown kind 'ratio'"):
        records.Field("x", "ratio")


def by_id(entries):
    return {e["id"]: e for e in entries}


def _decisions(entries):
    """Everything the rules compute, per claim (the rule's text is fixed in code, not computed)."""
    return [{k: v for k, v in e.items() if k != "rule"} for e in json.loads(json.dumps(entries))]


# ---------------------------------------------------------------- what the ledger reads from a results folder
def _copy_results(tmp_path, names=("table1", "table2")):
    """The committed result files ``names`` in a fresh results folder."""
    for n in names:
        (tmp_path / f"{n}.json").write_text((BOOK_RESULTS / f"{n}.json").read_text())
    return tmp_path


def test_a_stray_copy_of_a_result_file_is_an_error_naming_both_files(tmp_path):
    d = _copy_results(tmp_path)
    backup = json.loads((d / "table2.json").read_text())
    backup["values"]["vanilla"]["correct"]["masked_adversarial"] = 100  # altered, and sorting after table2.json
    backup["values"]["vanilla"]["masked_adversarial"] = 100 / backup["values"]["vanilla"]["n"]
    (d / "table2_backup.json").write_text(json.dumps(backup))
    for read in (lambda: claims.write_claims(d, d / "claims.json"), lambda: report.load_results(d)):
        with pytest.raises(ValueError, match=r"table2_backup\.json.*table2\.json"):
            read()
    assert not (d / "claims.json").exists()
    (d / "table2_backup.json").unlink()
    out = claims.write_claims(d, d / "claims.json")
    committed = by_id(ledger.load_claims(BOOK_RESULTS / "claims.json"))["table2.attack_reversal"]
    assert by_id(ledger.load_claims(out))["table2.attack_reversal"]["ours"] == committed["ours"]


def test_the_ledger_reads_exactly_its_result_files(tmp_path):
    d = _copy_results(tmp_path)
    (d / "notes.json").write_text("{not json")  # not a result the ledger reads
    (d / "table2_old.json").write_text(json.dumps({"name": "table2_old", "values": {"vanilla": "anything"}}))
    entries = by_id(ledger.load_claims(claims.write_claims(d, d / "claims.json")))
    committed = by_id(ledger.load_claims(BOOK_RESULTS / "claims.json"))
    for cid in ("table1.masked_matches_standard", "table2.attack_reversal", "table2.complement_necessary"):
        assert _decisions([entries[cid]]) == _decisions([committed[cid]])


@pytest.mark.parametrize("name,edit,key", [
    ("table1", lambda v: v["vanilla"]["replicates"]["correct"]["standard"].__setitem__(1, 1974),
     r"table1\.vanilla\.replicates\.correct\.standard\[1\] = 1974 is above table1\.vanilla\.replicates\.n\[1\]"),
    ("table1", lambda v: v["scale"]["replicates"]["correct"].__setitem__("masked", ["1424", 1400, 1410]),
     r"table1\.scale\.replicates\.correct\.masked\[0\] = '1424' must be a non-negative integer"),
    ("table1", lambda v: v["rotate"]["replicates"]["masked"].__setitem__(2, float("nan")),
     r"table1\.rotate\.replicates\.masked\[2\] = nan must be a finite fraction"),
    ("table1", lambda v: v["vanilla"]["replicates"]["n"].pop(),
     r"table1\.vanilla\.replicates\.n has 2 entries; table1\.vanilla\.replicates\.standard says 3"),
    ("table2", lambda v: v["vanilla"]["correct"].__setitem__("complement", "351"),
     r"table2\.vanilla\.correct\.complement = '351' must be a non-negative integer"),
], ids=["replicate-k-above-n", "count-as-string", "nan", "list-too-short", "table2-count-as-string"])
def test_malformed_result_files_stop_the_ledger_naming_file_and_key(tmp_path, name, edit, key):
    """A count above its n, a count written as a string, a NaN, a list of the wrong length: the ledger stops
    with one line naming the file and the key (not with a bare ``k1 must be in [0, n=1973]`` from the interval,
    nor with an inconclusive claim that hides the broken record)."""
    d = _copy_results(tmp_path)
    rec = json.loads((d / f"{name}.json").read_text())
    edit(rec["values"])
    (d / f"{name}.json").write_text(json.dumps(rec))
    with pytest.raises(ValueError, match=rf"{name}\.json: {key}"):
        claims.write_claims(d, d / "claims.json")
    with pytest.raises(ValueError, match=rf"{name}\.json: {key}"):
        report.load_results(d)


def test_committed_book_results_give_the_committed_ledger():
    if not (BOOK_RESULTS / "claims.json").is_file():
        pytest.fail(f"{BOOK_RESULTS}/claims.json is missing")
    entries = claims.evaluate_claims(report.load_results(BOOK_RESULTS, with_meta=True, names=claims.RESULT_NAMES))
    committed = ledger.load_claims(BOOK_RESULTS / "claims.json")
    assert _decisions(entries) == _decisions(committed)  # ours, interval, n, verdict, missing, details
    # without the metadata Table 2's sample size still comes from the recorded counts
    plain = by_id(claims.evaluate_claims(report.load_results(BOOK_RESULTS)))
    assert plain["table2.attack_reversal"]["n"] == report.load_result(BOOK_RESULTS, "table2")["values"]["vanilla"]["n"]
    md = ledger.claims_table_markdown(entries)  # the one renderer (intro and chapter 8)
    # two tables (claims, checks), each with a header and a rule line above its rows
    assert sum(line.startswith("| ") for line in md.splitlines()) == len(entries) + 4
