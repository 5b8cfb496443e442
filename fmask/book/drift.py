"""Compare a run with a reference built on another CPU kind: drift, verdicts and spreads instead of bits.

Float results are bitwise reproducible only on one *CPU kind* (:func:`fmask.infra.host.cpu_kind`: CPU model,
kernel flags, torch build, thread count); another kind runs other oneDNN / MKL kernels and moves the low bits,
and training amplifies them. :mod:`fmask.book.determinism` therefore asks which kind built the reference
(:func:`results_kind`: the result files' ``meta["machine"]["kind"]``; a folder whose files record no machine
is of :data:`UNKNOWN_KIND`, treated as another kind) and, on another kind, reports :func:`drift`:

* per result file, the number of differing values and the largest relative difference (and where);
* for ``claims.json``, every claim whose verdict changed (a claim present on one side only counts);
* for each ledger value (a claim's ``ours``: a number, or a dict of numbers keyed by regime or activation)
  that changed, whether the change is within the seed-to-seed spread the reference gives: the half-width of
  the interval ``details[key]["seed_interval"]`` (else ``details[key]["interval"]``) for a dict item, of the
  claim's ``interval`` for a number. ``|run - reference| <= (hi - lo) / 2`` is *within*; a value without
  such an interval is reported as "no spread available" and judged by its verdict only.

The check fails (:attr:`DriftReport.ok` is False) only on a changed verdict or a ledger value beyond its
spread.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["MACHINE_KEY", "UNKNOWN_KIND", "CLAIMS_FILE", "results_kind", "FileDrift", "VerdictChange",
           "LedgerDrift", "DriftReport", "ledger_values", "drift"]

#: the meta key of a result file that names the machine which computed it (fmask.infra.host.machine())
MACHINE_KEY = "machine"
#: the kind of a results folder whose files record no machine
UNKNOWN_KIND = "unknown kind"
#: the claims ledger inside a results folder (fmask.claims.rules)
CLAIMS_FILE = "claims.json"


def _load(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def results_kind(results_dir: str | Path, files: Sequence[str] | None = None) -> str:
    """The CPU kind that computed a results folder: the ``meta["machine"]["kind"]`` its result files
    (``files``, relative paths; default every ``*.json`` below it) record. :data:`UNKNOWN_KIND` when none
    records one; ``"mixed kinds (a; b)"`` when they disagree, a file whose ``meta`` records no machine
    counting as :data:`UNKNOWN_KIND` (files without ``meta``, such as ``claims.json``, are not counted)."""
    root = Path(results_dir)
    paths = [root / f for f in files] if files is not None else sorted(root.rglob("*.json"))
    kinds: list[str] = []
    for p in paths:
        try:
            doc = _load(p)
        except (OSError, ValueError):
            continue
        meta = doc.get("meta") if isinstance(doc, dict) else None
        if not isinstance(meta, dict):
            continue
        m = meta.get(MACHINE_KEY)
        kind = m.get("kind") if isinstance(m, dict) else None
        kind = kind if isinstance(kind, str) and kind else UNKNOWN_KIND
        if kind not in kinds:
            kinds.append(kind)
    if not kinds or kinds == [UNKNOWN_KIND]:
        return UNKNOWN_KIND
    return kinds[0] if len(kinds) == 1 else f"mixed kinds ({'; '.join(sorted(kinds))})"


@dataclass(frozen=True)
class FileDrift:
    """One result file's drift: ``values`` differing, the largest relative difference ``largest`` (None
    when no numeric value differs) at ``key``, or ``only`` (``"run"`` / ``"reference"``) for a file on one
    side only."""

    file: str
    values: int = 0
    largest: float | None = None
    key: str = ""
    only: str | None = None

    def describe(self) -> str:
        if self.only is not None:
            return f"{self.file}: only in the {self.only}"
        if self.values == 0:
            return f"{self.file}: equal"
        big = (f"largest relative difference {self.largest:.3g} ({self.key})" if self.largest is not None
               else "no numeric difference")
        return f"{self.file}: {self.values} value(s) differ; {big}"


@dataclass(frozen=True)
class VerdictChange:
    """A claim whose verdict differs: ``reference`` -> ``run`` (``None``: the claim is absent there)."""

    claim: str
    reference: str | None
    run: str | None

    def describe(self) -> str:
        return f"{self.claim}: {self.reference or 'absent'} -> {self.run or 'absent'}"


@dataclass(frozen=True)
class LedgerDrift:
    """A ledger value that changed: claim id, ``key`` inside a dict-valued ``ours`` (``""`` for a number),
    both values, the reference's ``spread`` interval (None: none available) and ``within``
    (``|run - reference| <= half-width``; None without a spread)."""

    claim: str
    key: str
    reference: Any
    run: Any
    spread: tuple[float, float] | None
    within: bool | None

    def describe(self) -> str:
        where = f"{self.claim}[{self.key}]" if self.key else self.claim
        change = f"{self.reference!r} -> {self.run!r}"
        if _is_number(self.reference) and _is_number(self.run):
            change += f" (change {float(self.run) - float(self.reference):+.3g})"
        if self.spread is None:
            return f"{where}: {change}; no spread available"
        lo, hi = self.spread
        verdict = "within the spread" if self.within else "BEYOND the spread"
        return f"{where}: {change}; {verdict} (half-width {(hi - lo) / 2:.3g} of [{lo:.4g}, {hi:.4g}])"


@dataclass
class DriftReport:
    """The comparison of a run with a reference of another CPU kind (see the module docstring)."""

    files: list[FileDrift] = field(default_factory=list)
    claims_compared: bool = False
    verdicts: list[VerdictChange] = field(default_factory=list)
    ledger: list[LedgerDrift] = field(default_factory=list)
    ledger_unchanged: int = 0

    @property
    def beyond(self) -> list[LedgerDrift]:
        return [d for d in self.ledger if d.within is False]

    @property
    def ok(self) -> bool:
        """No verdict changed and no ledger value moved beyond its spread."""
        return not self.verdicts and not self.beyond

    def format(self) -> str:
        if self.ok:
            lines = ["PASS: no verdict changed and no ledger value moved beyond its seed-to-seed spread"]
        else:
            lines = [f"FAIL: {len(self.verdicts)} verdict(s) changed, {len(self.beyond)} ledger value(s) "
                     f"beyond their spread"]
        drifted = [f for f in self.files if f.values or f.only]
        lines.append(f"result files: {len(self.files)} compared, {len(drifted)} differ")
        lines += [f"  {f.describe()}" for f in drifted]
        if not self.claims_compared:
            lines.append(f"{CLAIMS_FILE}: not in both folders; verdicts and ledger values not compared")
            return "\n".join(lines)
        lines.append(f"verdicts: {len(self.verdicts)} changed" + ("" if self.verdicts else " (all equal)"))
        lines += [f"  {v.describe()}" for v in self.verdicts]
        lines.append(f"ledger values: {len(self.ledger)} changed, {self.ledger_unchanged} unchanged")
        lines += [f"  {d.describe()}" for d in self.ledger]
        return "\n".join(lines)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _interval(v: Any) -> tuple[float, float] | None:
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_number(x) and math.isfinite(x) for x in v):
        return (float(min(v)), float(max(v)))
    return None


def ledger_values(claim: Mapping[str, Any]) -> dict[str, tuple[Any, tuple[float, float] | None]]:
    """``{key: (value, spread)}`` of one claims.json entry: ``""`` for a scalar ``ours`` with the claim's
    ``interval``; for a dict ``ours``, each key with ``details[key]["seed_interval"]`` (else
    ``details[key]["interval"]``). Spread None where the entry gives none."""
    ours = claim.get("ours")
    details = claim.get("details") if isinstance(claim.get("details"), Mapping) else {}
    if isinstance(ours, Mapping):
        out = {}
        for k, v in ours.items():
            d = details.get(k)
            spread = None
            if isinstance(d, Mapping):
                spread = _interval(d.get("seed_interval")) or _interval(d.get("interval"))
            out[str(k)] = (v, spread)
        return out
    return {"": (ours, _interval(claim.get("interval")))}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b) or (_is_number(a) and _is_number(b) and a == b)


def _claims(doc: Any) -> dict[str, Mapping[str, Any]]:
    entries = doc.get("claims", []) if isinstance(doc, Mapping) else doc
    return {str(c.get("id")): c for c in entries or [] if isinstance(c, Mapping)}


def drift(differences: Sequence[Any], files: Sequence[str], run_dir: str | Path,
          reference_dir: str | Path) -> DriftReport:
    """The drift of a run (``run_dir``) from a reference (``reference_dir``), from the bitwise
    ``differences`` (:class:`fmask.book.determinism.Difference`) over the compared ``files``."""
    run_dir, reference_dir = Path(run_dir), Path(reference_dir)
    rep = DriftReport()
    by_file: dict[str, list[Any]] = {f: [] for f in files}
    for d in differences:
        by_file.setdefault(d.file, []).append(d)
    for f, ds in by_file.items():
        whole = [d for d in ds if d.key == "" and d.kind in ("only_a", "only_b")]
        if whole:
            rep.files.append(FileDrift(f, only="run" if whole[0].kind == "only_a" else "reference"))
            continue
        rel = [(d.rel_diff, d.key) for d in ds if d.rel_diff is not None]
        big = max(rel, default=(None, ""), key=lambda t: t[0])
        rep.files.append(FileDrift(f, values=len(ds), largest=big[0], key=big[1]))
    run_claims, ref_claims = run_dir / CLAIMS_FILE, reference_dir / CLAIMS_FILE
    if not (run_claims.is_file() and ref_claims.is_file()):
        return rep
    rep.claims_compared = True
    run, ref = _claims(_load(run_claims)), _claims(_load(ref_claims))
    for cid in sorted(set(run) | set(ref)):
        a, b = ref.get(cid), run.get(cid)
        va, vb = (a or {}).get("verdict"), (b or {}).get("verdict")
        if va != vb:
            rep.verdicts.append(VerdictChange(cid, va, vb))
        if a is None or b is None:
            continue
        ref_vals, run_vals = ledger_values(a), ledger_values(b)
        for key in sorted(set(ref_vals) | set(run_vals)):
            (x, spread), y = ref_vals.get(key, (None, None)), run_vals.get(key, (None, None))[0]
            if _same(x, y):
                rep.ledger_unchanged += 1
                continue
            within = None
            if spread is not None:
                within = (_is_number(x) and _is_number(y)
                          and abs(float(y) - float(x)) <= (spread[1] - spread[0]) / 2)
            rep.ledger.append(LedgerDrift(cid, key, x, y, spread, within))
    return rep
