"""Run the book twice, or once against a reference, and compare the result files.

:func:`check_determinism` (``fmask check-determinism``, ``make determinism``) executes the chosen chapters
twice with :func:`fmask.book.run_book`, each time into its own fresh temporary output root *and* its own fresh,
empty artifact store (so nothing computed by other code, or by the first run, is reused), with the same
pinned torch thread count (:func:`fmask.infra.runtime.book_threads`), and then compares every result JSON file
of the two runs (:func:`compare_results`): same profile, same machine, run twice -> identical result files.

What is compared: every ``*.json`` under ``<out>/book/results/`` (the result files of :mod:`fmask.experiment.results`
and the claims ledger ``claims.json``), value by value, floats *exactly* (bitwise equality of the stored
decimal; NaN equals NaN). What is not compared is listed in ONE place, here:

* :data:`IGNORED_KEYS` -- dictionary keys, at any depth, whose values are wall-clock times, durations,
  library versions, the machine or machine paths (they legitimately differ between two runs);
* :data:`IGNORED_DIRS` -- sub-folders of the results folder that hold only such data (per-stage runtimes).

Anything else that differs is reported with its file, its key path (``table1.json: values.vanilla.masked``),
both values and, for numbers, the absolute and relative difference; the exit status of the command is 1.

``against=DIR`` (:func:`compare_with_reference`) runs once and compares with a reference results folder. Bitwise
equality is expected only when the reference was computed on the same CPU kind
(:func:`fmask.book.drift.results_kind`); on another kind, or when the reference records no machine, the
report is :func:`fmask.book.drift.drift` (largest relative difference per file, changed verdicts, ledger
values against their spread) and fails only on a changed verdict or a ledger value beyond its spread.
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from fmask.book.drift import UNKNOWN_KIND, DriftReport, drift, results_kind

__all__ = ["IGNORED_KEYS", "IGNORED_DIRS", "Difference", "Comparison", "DeterminismReport", "compare_values",
           "compare_results", "result_files", "compare_with_reference", "check_determinism"]

#: keys (at any depth of a result file) that are not compared, with the reason. Times and durations differ
#: on every run, versions and paths between machines; none of them is a result.
IGNORED_KEYS: Mapping[str, str] = {
    "time": "UTC time the file was written (report.save_result meta)",
    "seconds": "wall-clock duration of a stage (training, mask learning)",
    "train_ms_per_image_epoch": "wall-clock training cost per image and epoch (chapter 11's cost column)",
    "versions": "library versions (meta); equal on one machine, but not a result",
    "machine": "the CPU, torch build and thread count that computed the file (meta); compared as the CPU kind",
    "data_root": "machine path of the Imagenette copy",
    "artifacts_dir": "machine path of the artifact store",
    "checkpoint": "machine path of a model file",
}
#: sub-folders of the results folder that are not compared (per-stage run times, report.record_runtime)
IGNORED_DIRS: tuple[str, ...] = ("runtimes",)


@dataclass(frozen=True)
class Difference:
    """One difference between the two runs.

    ``file``: path relative to the results folder; ``key``: dotted key path inside it (list items as
    ``[i]``; ``""`` for a whole file); ``kind``: ``"value"`` (both present, unequal), ``"only_a"`` /
    ``"only_b"`` (present in one run only), ``"type"`` (different JSON types) or ``"length"`` (lists of
    different length; ``a`` / ``b`` are then the lengths); ``a`` / ``b``: the two values (``None`` where
    absent).
    """

    file: str
    key: str
    kind: str
    a: Any = None
    b: Any = None

    @property
    def abs_diff(self) -> float | None:
        """``|a - b|`` for two numbers (not bools), else ``None``."""
        if _is_number(self.a) and _is_number(self.b):
            return abs(float(self.a) - float(self.b))
        return None

    @property
    def rel_diff(self) -> float | None:
        """``|a - b| / max(|a|, |b|)`` for two numbers (0 when both are 0), else ``None``."""
        d = self.abs_diff
        if d is None:
            return None
        scale = max(abs(float(self.a)), abs(float(self.b)))
        return 0.0 if scale == 0 else d / scale

    def describe(self) -> str:
        """One line: where, what, by how much."""
        where = f"{self.file}: {self.key}" if self.key else self.file
        if self.kind == "only_a":
            return f"{where}: only in run A"
        if self.kind == "only_b":
            return f"{where}: only in run B"
        if self.kind == "length":
            return f"{where}: list length {self.a} vs {self.b}"
        if self.abs_diff is not None:
            return f"{where}: {self.a!r} vs {self.b!r} (abs {self.abs_diff:.3g}, rel {self.rel_diff:.3g})"
        return f"{where}: {_short(self.a)} vs {_short(self.b)}"


def _short(v: Any, n: int = 60) -> str:
    s = json.dumps(v, sort_keys=True, default=str)
    return s if len(s) <= n else s[: n - 3] + "..."


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _same_scalar(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b or (_is_number(a) and _is_number(b) and a == b)


def compare_values(a: Any, b: Any, *, file: str = "", key: str = "",
                   ignored: Iterable[str] = IGNORED_KEYS) -> Iterator[Difference]:
    """Differences between two JSON values (recursively), skipping dict keys in ``ignored`` at any depth.

    Numbers are compared exactly (``1`` equals ``1.0``; NaN equals NaN; ``True`` is not ``1``). Dict keys are
    visited in sorted order, so the report does not depend on the order keys were written in.
    """
    ignored = frozenset(ignored)
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k in ignored:
                continue
            sub = f"{key}.{k}" if key else str(k)
            if k not in b:
                yield Difference(file, sub, "only_a", a[k], None)
            elif k not in a:
                yield Difference(file, sub, "only_b", None, b[k])
            else:
                yield from compare_values(a[k], b[k], file=file, key=sub, ignored=ignored)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield Difference(file, key, "length", len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            yield from compare_values(x, y, file=file, key=f"{key}[{i}]", ignored=ignored)
    elif isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        yield Difference(file, key, "type", a, b)
    elif not _same_scalar(a, b):
        yield Difference(file, key, "value", a, b)


def result_files(results_dir: str | Path, ignored_dirs: Iterable[str] = IGNORED_DIRS) -> list[str]:
    """Paths (relative to ``results_dir``, posix, sorted) of the JSON files compared: every ``*.json`` below
    it except those inside one of ``ignored_dirs``."""
    root = Path(results_dir)
    skip = set(ignored_dirs)
    out = []
    for p in root.rglob("*.json"):
        rel = p.relative_to(root)
        if not (set(rel.parts[:-1]) & skip):
            out.append(rel.as_posix())
    return sorted(out)


@dataclass
class Comparison:
    """The comparison of two results folders: files compared, files only in one run, differences."""

    a: Path
    b: Path
    files: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differences

    def format(self, limit: int = 50) -> str:
        """The human report: a verdict line, the ignored fields, and one line per difference (at most
        ``limit``), each file's largest numeric difference last."""
        lines = [f"compared {len(self.files)} result file(s): {self.a}  vs  {self.b}",
                 f"ignored keys: {', '.join(IGNORED_KEYS)}; ignored folders: {', '.join(IGNORED_DIRS)}"]
        if self.identical:
            lines.append("IDENTICAL: every compared value is equal")
            return "\n".join(lines)
        by_file: dict[str, list[Difference]] = {}
        for d in self.differences:
            by_file.setdefault(d.file, []).append(d)
        lines.append(f"DIFFERENT: {len(self.differences)} value(s) in {len(by_file)} file(s)")
        shown = 0
        for f, ds in by_file.items():
            nums = [d.abs_diff for d in ds if d.abs_diff is not None]
            tail = f"; largest numeric difference {max(nums):.3g}" if nums else ""
            lines.append(f"  {f}: {len(ds)} difference(s){tail}")
            for d in ds:
                if shown < limit:
                    lines.append(f"    {d.describe()}")
                shown += 1
        if shown > limit:
            lines.append(f"  ... {shown - limit} more")
        return "\n".join(lines)


def _load(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def compare_results(a_dir: str | Path, b_dir: str | Path, *, ignored: Iterable[str] = IGNORED_KEYS,
                    ignored_dirs: Iterable[str] = IGNORED_DIRS) -> Comparison:
    """Compare every result JSON of two results folders (see the module docstring for what is ignored).

    A file present in one folder only is one ``only_a`` / ``only_b`` difference; an unreadable JSON file
    raises ``ValueError`` naming it. ``FileNotFoundError`` if a folder does not exist.
    """
    a_dir, b_dir = Path(a_dir), Path(b_dir)
    for d in (a_dir, b_dir):
        if not d.is_dir():
            raise FileNotFoundError(2, "results folder does not exist", str(d))
    fa, fb = result_files(a_dir, ignored_dirs), result_files(b_dir, ignored_dirs)
    cmp = Comparison(a_dir, b_dir, files=sorted(set(fa) | set(fb)))
    ignored = frozenset(ignored)
    for rel in cmp.files:
        if rel not in fb:
            cmp.differences.append(Difference(rel, "", "only_a"))
            continue
        if rel not in fa:
            cmp.differences.append(Difference(rel, "", "only_b"))
            continue
        try:
            va, vb = _load(a_dir / rel), _load(b_dir / rel)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{rel}: not valid JSON ({exc})") from exc
        cmp.differences.extend(compare_values(va, vb, file=rel, ignored=ignored))
    return cmp


@dataclass
class DeterminismReport:
    """What :func:`check_determinism` did: the comparison, the two roots, threads and timings (s).

    With a reference (``against``): ``reference_kind`` / ``run_kind`` (:func:`fmask.book.drift.results_kind`) and,
    when they differ, ``drift`` (:class:`fmask.book.drift.DriftReport`)."""

    comparison: Comparison
    roots: tuple[Path, Path]
    threads: int
    chapters: list[str]
    seconds: tuple[float, ...]
    against: Path | None = None
    reference_kind: str | None = None
    run_kind: str | None = None
    drift: DriftReport | None = None

    @property
    def identical(self) -> bool:
        return self.comparison.identical

    @property
    def same_kind(self) -> bool:
        """True for two runs on this machine, or a reference of this run's CPU kind."""
        return self.drift is None

    @property
    def passed(self) -> bool:
        """The verdict behind the exit status: bitwise identical on one CPU kind; on another, no changed
        verdict and no ledger value beyond its spread."""
        return self.identical if self.drift is None else self.drift.ok

    def case(self) -> str:
        """The first line of the report: which comparison applies and why."""
        if self.against is None:
            return "case: two runs on this machine -> every value must be bitwise equal"
        if self.drift is None:
            return (f"case: SAME CPU KIND -- the reference was computed on {self.reference_kind}, like this run "
                    f"-> every value must be bitwise equal")
        ref = ("records no machine (unknown kind)" if self.reference_kind == UNKNOWN_KIND
               else f"was computed on {self.reference_kind}")
        return (f"case: OTHER CPU KIND -- the reference {ref}; this run on {self.run_kind} -> bitwise equality "
                f"is not expected: drift is reported, and the check fails only on a changed verdict or a "
                f"ledger value beyond its seed-to-seed spread")

    def format(self) -> str:
        chapters = f"{len(self.chapters)} chapter(s) ({', '.join(self.chapters)})"
        if self.against is not None:
            head = (f"reproduction check: {chapters}, run once with {self.threads} torch thread(s), fresh output "
                    f"and fresh artifact store ({self.seconds[0]:.0f} s), compared with the result files in "
                    f"{self.against}")
        else:
            head = (f"determinism check: {chapters}, run twice with {self.threads} torch thread(s), fresh output "
                    f"and fresh artifact store each ({self.seconds[0]:.0f} s + {self.seconds[1]:.0f} s)")
        if self.drift is not None:
            return "\n".join([self.case(), head, f"compared {len(self.comparison.files)} result file(s): "
                              f"{self.comparison.a}  vs  {self.comparison.b}", self.drift.format()])
        return "\n".join([self.case(), head, self.comparison.format()])


def compare_with_reference(run_results: str | Path, against: str | Path, *, threads: int,
                           chapters: Sequence[str] = (), seconds: tuple[float, ...] = (0.0,),
                           run_kind: str | None = None, restrict_to_run: bool = False,
                           run_root: str | Path | None = None) -> DeterminismReport:
    """Compare a run's results folder with a reference results folder ``against``.

    The CPU kinds come from the result files' machine records (:func:`fmask.book.drift.results_kind`);
    ``run_kind`` is used when the run's files record none (:func:`check_determinism` passes this machine's
    kind with the pinned thread count). Same kind: the bitwise :class:`Comparison`; another kind (the
    reference's ``unknown kind`` included): also the :class:`fmask.book.drift.DriftReport`.
    ``restrict_to_run``: compare only the files the run wrote (``--only``).
    """
    run_results, against = Path(run_results), Path(against)
    cmp = compare_results(run_results, against)
    if restrict_to_run:  # the other chapters' files are in `against` only: not part of this check
        cmp.differences = [d for d in cmp.differences if d.kind != "only_b"]
        cmp.files = [f for f in cmp.files if (run_results / f).is_file()]
    both = [f for f in cmp.files if (run_results / f).is_file() and (against / f).is_file()]
    ref_kind = results_kind(against, both)
    found = results_kind(run_results, both)
    kind = found if found != UNKNOWN_KIND or run_kind is None else run_kind
    rep = DeterminismReport(cmp, (Path(run_root) if run_root is not None else run_results, against), threads,
                            list(chapters), seconds, against, reference_kind=ref_kind, run_kind=kind)
    if ref_kind != kind or ref_kind == UNKNOWN_KIND:
        rep.drift = drift(cmp.differences, cmp.files, run_results, against)
    return rep


def check_determinism(
    profile: str = "smoke",
    only: str | Iterable[str] | None = None,
    *,
    data: str | Path | None = None,
    workdir: str | Path | None = None,
    threads: int | None = None,
    keep: bool = False,
    src_dir: str | Path | None = None,
    against: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> DeterminismReport:
    """Execute the chapters (``only``; default all) of ``profile`` twice and compare the result files.

    Each run gets a fresh output root ``<work>/run-a`` / ``run-b`` and a fresh empty artifact store
    ``<work>/store-a`` / ``store-b``; both use ``threads`` torch threads (default
    :func:`fmask.infra.runtime.book_threads`). ``<work>`` is ``workdir`` (must not exist yet or be empty) or a
    temporary folder that is removed afterwards unless ``keep``. The book is not built (only execution
    shapes the results). A chapter that fails raises :class:`fmask.book.BookError`.

    ``against`` (a results folder, e.g. the committed ``book/results``): run only once and compare that
    fresh run with the folder -- "does a fresh clone reproduce the committed book?" -- bitwise when the folder
    was computed on this CPU kind, by drift otherwise (:func:`compare_with_reference`). With ``only``, result
    files the chosen chapters did not write are not compared (they exist in ``against`` only).
    """
    from fmask import book
    from fmask.infra.runtime import book_threads

    if against is not None:
        against = Path(against).resolve()
        if not against.is_dir():
            raise FileNotFoundError(2, "results folder to compare against does not exist", str(against))
    n_threads = book_threads(threads)
    if workdir is not None:
        work = Path(workdir).resolve()
        if work.exists() and any(work.iterdir()):
            raise ValueError(f"workdir {work} is not empty: the check needs fresh outputs and stores")
        work.mkdir(parents=True, exist_ok=True)
        remove = False
    else:
        work = Path(tempfile.mkdtemp(prefix="fmask-determinism-"))
        remove = not keep
    try:
        roots, secs, chapters = [], [], []
        for tag in (("a",) if against is not None else ("a", "b")):
            log(f"[determinism] run {tag.upper()} -> {work / f'run-{tag}'}")
            t0 = time.perf_counter()
            run = book.run_book(profile, out=work / f"run-{tag}", data=data, artifacts=work / f"store-{tag}",
                                only=only, build=False, src_dir=src_dir, threads=n_threads, log=log)
            secs.append(time.perf_counter() - t0)
            roots.append(run.root)
            chapters = list(run.notebooks)
        if against is not None:
            from fmask.infra import host

            return compare_with_reference(roots[0] / "book" / "results", against, threads=n_threads,
                                          chapters=chapters, seconds=(secs[0],),
                                          run_kind=host.cpu_kind(host.machine(n_threads)),
                                          restrict_to_run=only is not None, run_root=roots[0])
        cmp = compare_results(roots[0] / "book" / "results", roots[1] / "book" / "results")
        return DeterminismReport(cmp, (roots[0], roots[1]), n_threads, chapters, (secs[0], secs[1]))
    finally:
        if remove:
            shutil.rmtree(work, ignore_errors=True)
