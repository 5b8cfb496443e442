"""Result files and runtimes: what the chapters compute, on disk (the paper-vs-ours table is built from
them by :mod:`fmask.book.tables`).

Every notebook that produces a number the book reports writes it through this module, one JSON file
per *result name*, into the run's results directory (by convention ``<book out dir>/results/``, see
:func:`results_dir_for`). The report notebook (08) reads them back and compares them with the paper's
values, which are the only numbers typed in by hand (``fmask/paper_values.yaml``, each with its source).

Results contract
----------------
``save_result(results_dir, name, values, profile=...)`` writes ``<results_dir>/<name>.json``::

    {"name": name, "values": {...}, "meta": {"profile": ..., "time": ..., "versions": {...}, ...}}

Writes are atomic (temp file + ``os.replace``); saving the same name again replaces the file.

**Units.** Accuracies are stored as *fractions in [0, 1]* (e.g. ``0.873``), never as percent; the
report converts to the paper's unit (percent) itself. Band energies are stored as fractions of the
total mask energy (in [0, 1]).

Names and keys the report reads for Tables 1-3. ``values[row][column]`` is looked up for every entry of
``fmask/paper_values.yaml``; regimes are those of :mod:`fmask.training.fit` (``vanilla``, ``adversarial``,
``scale``, ``translate``, ``rotate`` = the paper's A-E):

* ``"table1"`` -- per training regime, test accuracy of the frozen network on the original validation
  images (``"standard"``) and on the same images filtered with that network's learned dataset mask
  (``"masked"``)::

      {"vanilla": {"standard": 0.91, "masked": 0.88}, "adversarial": {...}, "scale": {...}, ...}

* ``"table2"`` -- single-image masks, per model whose masks were learned (``"vanilla"``, and
  ``"adversarial"`` where computed): accuracy on M(X) (``"masked"``), on M'(X), the complement-filtered
  images (``"complement"``), on the PGD images X_A (``"adversarial"``), on M(X_A) with the continuous
  masks (``"masked_adversarial"``) and with binarised masks as the original notebook effectively used
  (``"masked_adversarial_binary"``)::

      {"vanilla": {"masked": 0.99, "complement": 0.2, "adversarial": 0.0,
                   "masked_adversarial": 0.4, "masked_adversarial_binary": 0.5}}

* ``"table3"`` -- class specificity: linear classifier on the (centred) single-image masks, 85/15 split,
  trained on the true labels (``"true_labels"``) and on a fixed random permutation of them
  (``"random_labels"``); train and test accuracy::

      {"true_labels": {"train": 0.94, "test": 0.78}, "random_labels": {"train": 0.2, "test": 0.16}}

The exact row/column keys the report expects are the ``row``/``column`` fields of
``fmask/paper_values.yaml`` (:func:`paper_values` lists them). A missing result shows as ``n/a``.

Other result names used by the book, glued into the text: ``"data"`` (class subset and counts),
``"blue_shift"``, ``"energies"``, ``"single_image"``, ``"class_specificity"``, ``"architectures"``.

**Names and schemas.** A result's name is its file name: :func:`load_results` keys ``<name>.json`` by
``name`` and refuses a file whose inner ``"name"`` is another result's (a stray copy such as
``table2_backup.json``), naming both files. The results the claims ledger reads
(:data:`fmask.claims.base.RESULT_NAMES`) have a schema (:mod:`fmask.experiment.records`: required keys,
counts as non-negative integers, fractions as finite numbers in [0, 1], list lengths, counts k <= n)
that :func:`save_result` checks before writing and :func:`load_result` / :func:`load_results` check when
reading; a record that breaks it is refused with a ``ValueError`` naming the file and the key path. Every
other key, and every other result, is free-form.

Runtimes
--------
``record_runtime(results_dir, stage, seconds, profile=...)`` (or ``with timed(results_dir, stage,
profile=...):``) writes ``<results_dir>/runtimes/<stage>.json``; :func:`load_runtimes` reads them all.
The book runner records one per notebook (stage = notebook name); notebooks may add finer stages.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import re
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import yaml

from fmask.experiment.records import SCHEMAS, check_values
from fmask.infra.host import REPO_ROOT, machine

__all__ = [
    "RESULTS_SUBDIR",
    "results_dir_for",
    "save_result",
    "load_result",
    "load_results",
    "record_runtime",
    "timed",
    "load_runtimes",
    "benchmark_result",
    "BENCHMARK_RESULTS",
    "library_versions",
    "profile_name",
    "PAPER_VALUES_FILE",
    "paper_values",
]

#: names defined elsewhere that are still imported from here (lazily): ``onecycle_lr_trace`` by
#: tests/test_learn_engine.py.
_MOVED = {
    "onecycle_lr_trace": "fmask.core.schedule",
}
#: files in a results directory that are not result files: the claims ledger
#: (:func:`fmask.claims.evaluation.write_claims`) lives beside the results it is computed from, at
#: ``book/results/claims.json``
NOT_RESULTS = frozenset({"claims.json"})


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'fmask.experiment.results' has no attribute {name!r}")

#: the paper's printed values (Tables 1-3), the only numbers typed in by hand
PAPER_VALUES_FILE = Path(__file__).resolve().parents[1] / "paper_values.yaml"
RESULTS_SUBDIR = "results"
RUNTIMES_SUBDIR = "runtimes"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


# ----------------------------------------------------------------------------------------------- io
def results_dir_for(out_dir: str | os.PathLike[str]) -> Path:
    """The results directory of a book run whose executed notebooks go to ``out_dir``: ``out_dir/results``."""
    return Path(out_dir) / RESULTS_SUBDIR


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries that shape the numbers (missing ones are skipped)."""
    versions = {"python": platform.python_version()}
    for mod in ("fmask", "torch", "torchvision", "numpy", "torchattacks", "sklearn", "umap"):
        try:
            m = __import__(mod)
            versions[mod] = str(getattr(m, "__version__", "unknown"))
        except Exception:  # pragma: no cover - optional libraries
            continue
    return versions


def _check_name(name: str, what: str = "result name") -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"{what} must be a non-empty string of letters, digits, '_', '.', '-' "
            f"(it becomes a file name); got {name!r}"
        )


def _jsonable(obj: Any) -> Any:
    """``json.dump`` default hook: numpy / torch scalars and arrays, paths, tuples."""
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"value of type {type(obj).__name__} is not JSON-serialisable")


def _atomic_write_json(path: Path, payload: Mapping[str, Any]) -> None:
    from fmask.infra.atomic import atomic_write

    def write(fh) -> None:
        json.dump(payload, fh, indent=2, sort_keys=True, default=_jsonable)
        fh.write("\n")

    atomic_write(path, write, binary=False)


def _meta(profile: str, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    if not isinstance(profile, str) or not profile:
        raise ValueError(f"profile must be a non-empty string (e.g. 'smoke', 'cpu'); got {profile!r}")
    meta: dict[str, Any] = {
        "profile": profile,
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": library_versions(),
        "machine": machine(),
    }
    if extra:
        meta.update(dict(extra))
    return meta


def save_result(
    results_dir: str | os.PathLike[str],
    name: str,
    values: Mapping[str, Any],
    *,
    profile: str,
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``values`` (a JSON-serialisable mapping) atomically to ``<results_dir>/<name>.json``.

    ``meta`` adds entries (e.g. parameters, seed) to the recorded metadata (profile, UTC time, versions, and the
    machine: CPU model and kernel flags, torch build, thread count, :func:`fmask.infra.host.machine`).
    A result the claims ledger reads (a name in :data:`fmask.experiment.records.SCHEMAS`) is checked against
    its schema first. Returns the path written. Raises ``ValueError`` for a bad name, profile or non-mapping
    values, or a record that breaks its schema (naming the file and the key path); nothing is written then.
    """
    _check_name(name)
    if not isinstance(values, Mapping):
        raise ValueError(f"values must be a mapping (dict) of result entries; got {type(values).__name__}")
    payload = {"name": name, "values": dict(values), "meta": _meta(profile, meta)}
    path = Path(results_dir) / f"{name}.json"
    if name in SCHEMAS:  # check what will be on disk: numpy / torch values as JSON gives them back
        check_values(name, json.loads(json.dumps(payload["values"], default=_jsonable)), str(path))
    _atomic_write_json(path, payload)
    return path


def _read_record(path: Path) -> dict[str, Any]:
    """The JSON record in ``path``; ``ValueError`` naming the file if it is not JSON or has no ``values``."""
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"result file {path} is not valid JSON: {exc}") from exc
    if not isinstance(record, dict) or "values" not in record:
        raise ValueError(f"{path} is not an fmask result file (no 'values' entry)")
    return record


def _stray(path: Path, inner: Any) -> ValueError:
    return ValueError(f"{path} says it holds result {inner!r}, which is read from {path.parent / f'{inner}.json'}; "
                      f"a result is read by its file name only: remove or rename {path.name}")


def load_result(results_dir: str | os.PathLike[str], name: str) -> dict[str, Any]:
    """The full record ``{"name", "values", "meta"}`` of one result, from ``<results_dir>/<name>.json``.

    ``FileNotFoundError`` if absent; ``ValueError`` naming the file if it is not a result file, if its
    ``"name"`` is another result's, or if it breaks its schema (:mod:`fmask.experiment.records`).
    """
    _check_name(name)
    path = Path(results_dir) / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"result file {path} does not exist")
    record = _read_record(path)
    if record.get("name", name) != name:
        raise _stray(path, record.get("name"))
    check_values(name, record["values"], str(path))
    return record


def load_results(results_dir: str | os.PathLike[str], *, with_meta: bool = False,
                 names: Iterable[str] | None = None) -> dict[str, Any]:
    """The results in ``results_dir`` as ``{name: values}`` (or ``{name: record}`` with ``with_meta``).

    A result's name is its file name: ``<name>.json`` holds result ``name``. With ``names``, exactly the files
    ``<name>.json`` of those names are read (absent ones are left out), as the claims ledger does; without,
    every ``*.json`` except :data:`NOT_RESULTS` (the claims ledger ``claims.json``).

    Raises ``ValueError`` naming the file for a file that is not valid JSON or not a result file (with
    ``names``: only among the files read), for a record that breaks its schema
    (:func:`fmask.experiment.records.check_values`), and for a stray copy: a file whose ``"name"`` is a result
    that is read (any result without ``names``, one of ``names`` with them) but whose file name is another,
    e.g. ``table2_backup.json`` holding ``"name": "table2"`` (the message names both files). A missing
    directory gives ``{}``.
    """
    wanted = None if names is None else [str(n) for n in names]
    for n in wanted or ():
        _check_name(n)
    root = Path(results_dir)
    out: dict[str, Any] = {}
    if not root.is_dir():
        return out
    for path in sorted(root.glob("*.json")):
        if path.name in NOT_RESULTS:
            continue
        expected = wanted is None or path.stem in wanted
        try:
            record = _read_record(path)
        except ValueError:
            if expected:
                raise
            continue  # not a result file and not one that is read
        inner = record.get("name", path.stem)
        if inner != path.stem and (wanted is None or inner in wanted):
            raise _stray(path, inner)
        if not expected:
            continue
        check_values(path.stem, record["values"], str(path))
        out[path.stem] = record if with_meta else record["values"]
    return out


# ------------------------------------------------------------------------------------------ runtimes
def record_runtime(
    results_dir: str | os.PathLike[str],
    stage: str,
    seconds: float,
    *,
    profile: str,
    ok: bool = True,
) -> Path:
    """Record that ``stage`` took ``seconds`` (wall clock) in ``<results_dir>/runtimes/<stage>.json``."""
    _check_name(stage, "stage name")
    try:
        secs = float(seconds)
    except (TypeError, ValueError):
        raise ValueError(f"seconds must be a number; got {seconds!r}") from None
    if not math.isfinite(secs) or secs < 0:
        raise ValueError(f"seconds must be finite and >= 0; got {seconds!r}")
    payload = {"stage": stage, "seconds": secs, "ok": bool(ok), "meta": _meta(profile, None)}
    path = Path(results_dir) / RUNTIMES_SUBDIR / f"{stage}.json"
    _atomic_write_json(path, payload)
    return path


@contextlib.contextmanager
def timed(results_dir: str | os.PathLike[str], stage: str, *, profile: str) -> Iterator[None]:
    """Context manager: time the block and :func:`record_runtime` it (``ok=False`` if it raised)."""
    _check_name(stage, "stage name")
    t0 = time.perf_counter()
    ok = False
    try:
        yield
        ok = True
    finally:
        record_runtime(results_dir, stage, time.perf_counter() - t0, profile=profile, ok=ok)


def load_runtimes(results_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """``{stage: {"seconds", "ok", "meta"}}`` for every recorded stage (empty if none)."""
    root = Path(results_dir) / RUNTIMES_SUBDIR
    out: dict[str, dict[str, Any]] = {}
    if not root.is_dir():
        return out
    for path in sorted(root.glob("*.json")):
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
        out[record.get("stage", path.stem)] = record
    return out


#: where the benchmarks write their result files (``benchmarks/results/<name>.json`` of a source checkout)
BENCHMARK_RESULTS = REPO_ROOT / "benchmarks" / "results"


def benchmark_result(name: str, *, root: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The JSON of a benchmark's result file ``<root>/<name>.json`` (default root :data:`BENCHMARK_RESULTS`),
    or None when the file is absent (an installed fmask has no ``benchmarks/`` folder): the chapters that quote
    a side-by-side measurement (chapter 3's adversarial training, chapter 8's mask learner) read it here."""
    _check_name(name, "benchmark result name")
    path = (Path(root) if root is not None else BENCHMARK_RESULTS) / f"{name}.json"
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as fh:
        out = json.load(fh)
    if not isinstance(out, dict):
        raise ValueError(f"{path}: a benchmark result must be a JSON object, got {type(out).__name__}")
    return out


# ------------------------------------------------------------------------------------------- helpers
def profile_name(profile: str | os.PathLike[str]) -> str:
    """The name recorded for a profile argument: ``"cpu"`` stays ``"cpu"``, ``path/to/x.yaml`` gives ``"x"``."""
    s = os.fspath(profile)
    if not s:
        raise ValueError("profile must be a non-empty name or YAML path")
    return Path(s).stem if s.endswith((".yml", ".yaml")) else s


# ------------------------------------------------------------------------------------- paper values
def paper_values(path: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The paper's reference values (Tables 1-3), one dict per cell.

    Each has ``table`` (result name), ``row``, ``column``, ``value`` (paper's number or ``None`` if it
    could not be verified), ``unit`` (``percent`` or ``fraction``) and ``source`` (where in the paper).
    """
    p = Path(path) if path is not None else PAPER_VALUES_FILE
    with open(p, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    entries = doc.get("values") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{p}: expected a top-level 'values' list")
    out = []
    for i, e in enumerate(entries):
        missing = {"table", "row", "column", "value", "unit", "source"} - set(e)
        if missing:
            raise ValueError(f"{p}: entry {i} lacks {sorted(missing)}")
        if e["unit"] not in ("percent", "fraction"):
            raise ValueError(f"{p}: entry {i} has unit {e['unit']!r}; expected 'percent' or 'fraction'")
        if e["value"] is not None and not isinstance(e["value"], (int, float)):
            raise ValueError(f"{p}: entry {i} value must be a number or null; got {e['value']!r}")
        out.append(dict(e))
    return out
