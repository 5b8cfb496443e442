"""Schemas of the result files that the claims ledger reads, checked when a record is saved and loaded.

One table per result name (:data:`SCHEMAS`): each row is a :class:`Field`, a key path into the record's
``values`` with the kind of value it must hold. Only the keys the ledger decides on are listed; every other
key of a record is free-form. :func:`check_values` walks a record against its table and raises one
``ValueError`` that names the file and the key path of the first problem, e.g.::

    results/table1.json: table1.vanilla.replicates.correct.standard[1] = 2000 is above
    table1.vanilla.replicates.n[1] = 1973

Key paths are dotted. A segment ``*`` stands for every key of a mapping (or every item of a list), a
segment ``{a,b}`` for those of the keys ``a`` and ``b`` that are present, ``<regime>`` for those of the
training regimes (:data:`fmask.data.regimes.REGIMES`, looked up on first use so that importing this module
stays light). A reference to another path (``length``, ``width``, ``bound``, ``index_into``) uses the same
wildcards, bound in order to the keys the field's own path matched: in ``table1``, ``<regime>.correct.*`` is
bounded by ``<regime>.n`` of the same regime.

Kinds: ``fraction`` a finite real in [0, 1] (with a rounding slack of :data:`FRACTION_SLACK`: shares summed
in float32 can exceed 1 by an ulp); ``count`` a non-negative integer (a JSON integer, never a bool or a
string); ``correlation`` a finite real in [-1, 1]; ``bool``; ``flag`` a bool or null; ``mapping``;
``records`` a list of mappings; ``fractions`` / ``counts`` / ``correlations`` a list of those;
``fraction_rows`` a list of equally long lists of fractions (seeds x bands).

A field that is absent, or null, is not checked unless it is ``required``; a null then counts as absent
(the ledger reports a quantity that is not recorded as missing, never as a value).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

__all__ = ["Field", "SCHEMAS", "FRACTION_SLACK", "check_values"]

#: how far above 1 (or below 0) a stored fraction may be by rounding
FRACTION_SLACK = 1e-6

_SCALAR = ("fraction", "count", "correlation", "bool", "flag", "mapping", "records")
_LISTS = {"fractions": "fraction", "counts": "count", "correlations": "correlation"}
KINDS = frozenset(_SCALAR) | frozenset(_LISTS) | {"fraction_rows"}


@dataclass(frozen=True)
class Field:
    """One checked key of a result record.

    ``path``: dotted key path into ``values`` (wildcards ``*`` and ``{a,b}``); ``kind``: one of the kinds of the
    module docstring; ``required``: absent or null is an error; ``length``: path of a list (its length) or of
    a count (its value) that this list's length must equal; ``width``: the same for the length of every row of
    a ``fraction_rows``; ``bound``: path of a count (or, for a list, of a list of counts, element by element)
    that this count may not exceed; ``index_into``: path of a list that every element of this list of counts
    indexes (so each is below its length).
    """

    path: str
    kind: str
    required: bool = False
    length: str | None = None
    width: str | None = None
    bound: str | None = None
    index_into: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"field {self.path}: unknown kind {self.kind!r}; expected one of {sorted(KINDS)}")


_REGIME = "<regime>"
_T2ROW = "{vanilla,adversarial}"
_T2COL = "{original,adversarial,masked,complement,masked_adversarial,masked_adversarial_binary}"
_T3ROW = "{true_labels,random_labels}"
_REP = f"{_REGIME}.replicates"

#: result name -> the fields of its ``values`` that the claims ledger reads (:mod:`fmask.claims`)
SCHEMAS: dict[str, tuple[Field, ...]] = {
    "blue_shift": (
        Field("shifted_fraction", "mapping", required=True),
        Field("shifted_fraction.*", "fraction"),
        Field("intermodulation.products_present.*", "bool"),
        Field("n_samples", "count"),
    ),
    "table1": (
        Field(_REGIME, "mapping"),
        Field(f"{_REGIME}.standard", "fraction", required=True),
        Field(f"{_REGIME}.masked", "fraction", required=True),
        Field(f"{_REGIME}.n", "count"),
        Field(f"{_REGIME}.correct.*", "count", bound=f"{_REGIME}.n"),
        Field(f"{_REGIME}.discordant.*", "count", bound=f"{_REGIME}.n"),
        Field(f"{_REP}.standard", "fractions"),
        Field(f"{_REP}.masked", "fractions", length=f"{_REP}.standard"),
        Field(f"{_REP}.n", "counts", length=f"{_REP}.standard"),
        Field(f"{_REP}.correct.*", "counts", length=f"{_REP}.standard", bound=f"{_REP}.n"),
        Field(f"{_REP}.discordant.*", "counts", length=f"{_REP}.standard", bound=f"{_REP}.n"),
    ),
    "energies": (
        Field("n_bands", "count", required=True),
        Field("radial_share.*", "fractions", length="n_bands"),
        Field("angular_share.*", "fractions", length="n_bands"),
        Field("replicates.*.radial_share", "fraction_rows", width="n_bands"),
        Field("replicates.*.angular_share", "fraction_rows", width="n_bands"),
        Field("replicates.*.angular_share_isotropic", "fraction_rows", width="n_bands",
              length="replicates.*.angular_share"),
        Field("replicates.*.top_low_share", "fractions", length="replicates.*.radial_share"),
        Field("replicates.*.mask_mean", "fractions", length="replicates.*.radial_share"),
    ),
    "table2": (
        Field(_T2ROW, "mapping"),
        Field(f"{_T2ROW}.{_T2COL}", "fraction"),
        Field(f"{_T2ROW}.n", "count"),
        Field(f"{_T2ROW}.correct.*", "count", bound=f"{_T2ROW}.n"),
        Field(f"{_T2ROW}.discordant.*", "count", bound=f"{_T2ROW}.n"),
    ),
    "single_image": (
        Field("mask_mean.*", "fraction"),
        Field("{dominance_adversarial_vs_vanilla,dominance_adversarial_pgd_vs_vanilla}.radial", "fractions"),
        Field("per_image.kept_fraction.*", "fractions"),
        Field("per_image.low_share.*", "fractions"),
        Field("per_image.pixel_correlation.*", "correlations"),
        Field("per_image.pixel_correlation.complement", "correlations", length="per_image.pixel_correlation.masked"),
        Field("per_image.paired_indices", "counts", index_into="per_image.low_share.vanilla"),
    ),
    "table3": (
        Field(_T3ROW, "mapping"),
        Field(f"{_T3ROW}.{{train,test}}", "fraction", required=True),
        Field(f"{_T3ROW}.{{n_train,n_test}}", "count"),
    ),
    "class_specificity": (
        Field("{n_classes,n_train,n_test}", "count"),
        Field("null_test_accuracy", "fractions"),
        Field("null_train_accuracy", "fractions", length="null_test_accuracy"),
    ),
    "architectures": (
        Field("items", "records", required=True),
        Field("items.*.agree", "flag"),
    ),
}

_ALTS = re.compile(r"^\{([^{}]*)\}$")


def _segments(path: str) -> list[str]:
    """Split a dotted path; ``{a,b}`` groups may contain no dot."""
    return path.split(".")


def _alternatives(seg: str) -> list[str] | None:
    """The keys a ``{a,b}`` or ``<regime>`` segment stands for; None for any other segment."""
    if seg == "<regime>":
        from fmask.data.regimes import REGIMES

        return list(REGIMES)
    m = _ALTS.match(seg)
    return m.group(1).split(",") if m else None


def _children(node: Any, seg: str) -> Iterator[tuple[Any, Any, bool]]:
    """``(key, child, wildcard)`` for one path segment; a plain segment yields its child even when absent
    (child ``_ABSENT``) so that a required field can be reported."""
    alts = _alternatives(seg)
    if seg == "*":
        if isinstance(node, Mapping):
            yield from ((k, v, True) for k, v in node.items())
        elif isinstance(node, list):
            yield from ((i, v, True) for i, v in enumerate(node))
    elif alts is not None:
        if isinstance(node, Mapping):
            yield from ((k, node[k], True) for k in alts if k in node)
    elif isinstance(node, Mapping):
        yield seg, node.get(seg, _ABSENT), False


class _Absent:
    def __repr__(self) -> str:
        return "absent"


_ABSENT = _Absent()


def _show(name: str, keys: list[Any]) -> str:
    out = name
    for k in keys:
        out += f"[{k}]" if isinstance(k, int) else f".{k}"
    return out


def _matches(values: Mapping[str, Any], path: str) -> Iterator[tuple[list[Any], list[Any], Any]]:
    """Every match of ``path``: (concrete keys, wildcard bindings, value). Stops below a value that is not
    a container (that parent is checked by its own field, if it has one)."""
    frontier: list[tuple[list[Any], list[Any], Any]] = [([], [], values)]
    for seg in _segments(path):
        nxt = []
        for keys, binds, node in frontier:
            if node is _ABSENT or node is None:
                continue
            for k, child, wild in _children(node, seg):
                nxt.append((keys + [k], binds + [k] if wild else binds, child))
        frontier = nxt
    return iter(frontier)


def _resolve(values: Mapping[str, Any], ref: str, binds: list[Any]) -> tuple[list[Any], Any]:
    """The value at ``ref`` with its wildcards replaced, in order, by ``binds``; ``_ABSENT`` if not there."""
    it = iter(binds)
    node: Any = values
    keys: list[Any] = []
    for seg in _segments(ref):
        key = next(it, None) if seg == "*" or _alternatives(seg) is not None else seg
        keys.append(key)
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return keys, _ABSENT
    return keys, node


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _scalar_problem(kind: str, v: Any) -> str | None:
    """Why ``v`` is not a ``kind``, or None."""
    if kind == "count":
        return None if _is_count(v) else "must be a non-negative integer"
    if kind == "fraction":
        ok = _is_real(v) and -FRACTION_SLACK <= v <= 1 + FRACTION_SLACK
        return None if ok else "must be a finite fraction in [0, 1]"
    if kind == "correlation":
        ok = _is_real(v) and -1 - FRACTION_SLACK <= v <= 1 + FRACTION_SLACK
        return None if ok else "must be a finite correlation in [-1, 1]"
    if kind == "bool":
        return None if isinstance(v, bool) else "must be true or false"
    if kind == "flag":
        return None if v is None or isinstance(v, bool) else "must be true, false or null"
    if kind == "mapping":
        return None if isinstance(v, Mapping) else "must be a mapping"
    if kind == "records":
        ok = isinstance(v, list) and all(isinstance(x, Mapping) for x in v)
        return None if ok else "must be a list of mappings"
    raise AssertionError(kind)


def _length_of(v: Any) -> int | None:
    if isinstance(v, list):
        return len(v)
    if _is_count(v):
        return v
    return None


def _check_field(name: str, values: Mapping[str, Any], f: Field) -> str | None:
    for keys, binds, v in _matches(values, f.path):
        where = _show(name, keys)
        if v is _ABSENT or v is None:
            if f.required:
                return f"{where} is required" + ("" if v is _ABSENT else ", got null")
            continue
        if f.kind in _SCALAR:
            why = _scalar_problem(f.kind, v)
            if why:
                return f"{where} = {v!r} {why}"
            items = None
        elif f.kind in _LISTS:
            if not isinstance(v, list):
                return f"{where} must be a list, got {type(v).__name__}"
            for i, x in enumerate(v):
                why = _scalar_problem(_LISTS[f.kind], x)
                if why:
                    return f"{where}[{i}] = {x!r} {why}"
            items = v
        else:  # fraction_rows
            if not isinstance(v, list) or not all(isinstance(r, list) for r in v):
                return f"{where} must be a list of lists (seeds x bands)"
            for i, row in enumerate(v):
                for j, x in enumerate(row):
                    why = _scalar_problem("fraction", x)
                    if why:
                        return f"{where}[{i}][{j}] = {x!r} {why}"
            if f.width is not None:
                rkeys, ref = _resolve(values, f.width, binds)
                width = _length_of(ref)
                for i, row in enumerate(v):
                    if width is not None and len(row) != width:
                        return (f"{where}[{i}] has {len(row)} entries; {_show(name, rkeys)} says "
                                f"{width}")
            items = None
        if f.length is not None:
            rkeys, ref = _resolve(values, f.length, binds)
            want = _length_of(ref)
            if want is not None and len(v) != want:
                return f"{where} has {len(v)} entries; {_show(name, rkeys)} says {want}"
        if f.bound is not None:
            rkeys, ref = _resolve(values, f.bound, binds)
            problem = _bound_problem(name, where, v, rkeys, ref, items is not None)
            if problem:
                return problem
        if f.index_into is not None and items is not None:
            rkeys, ref = _resolve(values, f.index_into, binds)
            if isinstance(ref, list):
                for i, x in enumerate(items):
                    if x >= len(ref):
                        return (f"{where}[{i}] = {x} is out of range for {_show(name, rkeys)} "
                                f"({len(ref)} entries)")
    return None


def _bound_problem(name: str, where: str, v: Any, rkeys: list[Any], ref: Any, is_list: bool) -> str | None:
    """``k <= n``: a count against a count, a list against a count or, element by element, a list."""
    bound_at = _show(name, rkeys)
    if not is_list:
        if _is_count(ref) and v > ref:
            return f"{where} = {v} is above {bound_at} = {ref}"
        return None
    for i, x in enumerate(v):
        n = ref[i] if isinstance(ref, list) and i < len(ref) else ref
        if _is_count(n) and x > n:
            at = f"{bound_at}[{i}]" if isinstance(ref, list) else bound_at
            return f"{where}[{i}] = {x} is above {at} = {n}"
    return None


def check_values(name: str, values: Any, source: str) -> None:
    """Check the ``values`` of result ``name`` against :data:`SCHEMAS` (no-op for a name without a schema).

    ``source`` names the file in the message (``"<dir>/table1.json"``). Raises ``ValueError`` with one line,
    ``"<source>: <name>.<key path> <problem>"``, for the first field that does not hold.
    """
    fields = SCHEMAS.get(name)
    if fields is None:
        return
    if not isinstance(values, Mapping):
        raise ValueError(f"{source}: {name} values must be a mapping, got {type(values).__name__}")
    for f in fields:
        problem = _check_field(name, values, f)
        if problem:
            raise ValueError(f"{source}: {problem}")
