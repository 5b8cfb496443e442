"""The typed fields of a profile section: value checks, the field helper and :class:`Section`, the base of
every section of :mod:`fmask.experiment.profile_schema`.

A field is declared with :func:`setting` (its default, its kind and bounds) and checked by
:func:`check_value` when the section is built. Kinds: ``int``, ``float``, ``str``, ``path``, ``bool``,
``choice``, ``regimes``, ``classes``, ``any``. A number field takes a YAML number only: a quoted number
(``lr: "1e-3"``) is a string and is refused with the key named, as is a bool. The profile files are read
with :func:`fmask.experiment.profiles.read_yaml`, which reads ``1e-3`` (no dot) as a number.
"""
from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, Iterator

from fmask.data.regimes import REGIMES, in_paper_order

__all__ = ["did_you_mean", "check_value", "setting", "plain", "Section"]


def did_you_mean(key: str, choices) -> str:
    """``"; did you mean 'x'?"`` for the nearest of ``choices``, else the list of valid keys."""
    close = difflib.get_close_matches(str(key), list(choices), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {sorted(choices)}"


def _number(sec: str, key: str, v: Any) -> float:
    """A finite real number: ints and floats; not bools, strings (a quoted YAML number), lists."""
    if isinstance(v, str):
        raise ValueError(f"{sec}.{key} must be a number, got {v!r} (a string: write the number without quotes)")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{sec}.{key} must be a number, got {v!r}")
    out = float(v)
    if not math.isfinite(out):
        raise ValueError(f"{sec}.{key} must be a finite number, got {v!r}")
    return out


def _integer(sec: str, key: str, v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return int(v)
    x = _number(sec, key, v)
    if not x.is_integer():
        raise ValueError(f"{sec}.{key} must be an integer, got {v!r}")
    return int(x)


def _kind(sec: str, key: str, v: Any, kind: str, spec: Mapping[str, Any]) -> Any:
    """``v`` coerced to ``kind`` (bounds aside)."""
    if kind == "int":
        return _integer(sec, key, v)
    if kind == "float":
        return _number(sec, key, v)
    if kind == "bool" and not isinstance(v, bool):
        raise ValueError(f"{sec}.{key} must be true or false, got {v!r}")
    if kind == "path":
        if not isinstance(v, (str, os.PathLike)) or not os.fspath(v):
            raise ValueError(f"{sec}.{key} must be a folder path (or null), got {v!r}")
        return os.fspath(v)
    if kind == "str" and not isinstance(v, str):
        raise ValueError(f"{sec}.{key} must be a string, got {v!r}")
    if kind == "choice" and v not in spec["choices"]:
        raise ValueError(f"{sec}.{key} must be one of {list(spec['choices'])}, got {v!r}")
    if kind == "regimes":
        if isinstance(v, str) or not isinstance(v, (list, tuple)):
            raise ValueError(f"{sec}.{key} must be a list of regimes, got {v!r}")
        bad = [r for r in v if r not in REGIMES]
        if bad:
            raise ValueError(f"{sec}.{key}: unknown regimes {bad}; choose from {list(REGIMES)}")
        v = tuple(in_paper_order(v))
        if spec.get("nonempty") and not v:
            raise ValueError(f"{sec}.{key} must name at least one regime")
    if kind == "classes":
        from fmask.data import resolve_classes

        try:
            resolve_classes(v)
        except ValueError as exc:
            raise ValueError(f"{sec}.{key}: {exc}") from None
        return v if isinstance(v, str) else tuple(v)
    return v


def check_value(sec: str, key: str, v: Any, kind: str, spec: Mapping[str, Any]) -> Any:
    """Coerce and validate one value of section ``sec``; errors name ``sec.key``.

    ``spec``: ``optional`` (null allowed), ``choices``, ``nonempty``, ``min`` / ``max`` with
    ``min_inclusive`` / ``max_inclusive`` (default inclusive).
    """
    if v is None:
        if spec.get("optional"):
            return None
        raise ValueError(f"{sec}.{key} must be set (null is not allowed)")
    v = _kind(sec, key, v, kind, spec)
    lo, hi = spec.get("min"), spec.get("max")
    if kind == "int" and lo == 1 and v < 1:
        raise ValueError(f"{sec}.{key} must be a positive integer, got {v!r}")
    if lo is not None and (v < lo if spec.get("min_inclusive", True) else v <= lo):
        rel = ">=" if spec.get("min_inclusive", True) else ">"
        raise ValueError(f"{sec}.{key} must be {rel} {lo}, got {v!r}")
    if hi is not None and (v > hi if spec.get("max_inclusive", True) else v >= hi):
        rel = "<=" if spec.get("max_inclusive", True) else "<"
        raise ValueError(f"{sec}.{key} must be {rel} {hi}, got {v!r}")
    return v


def setting(default: Any, kind: str, **spec: Any) -> Any:
    """A section field: its default, its kind (see :func:`check_value`) and bounds."""
    return field(default=default, metadata={"kind": kind, **spec})


def plain(v: Any) -> Any:
    """Tuples as lists, recursively (the YAML / JSON / artifact-key form)."""
    return [plain(x) for x in v] if isinstance(v, (list, tuple)) else v


@dataclass(frozen=True)
class Section(Mapping):
    """Base of the profile sections: a frozen dataclass that is also a read-only mapping of its fields.

    :meth:`from_mapping` builds it from a YAML dict, rejecting unknown keys (with the nearest valid name),
    coercing numbers and checking every value; :meth:`to_dict` is the plain-dict (YAML/JSON) form.
    ``REQUIRED``: the keys a profile file must write out; ``MOVED``: keys that belong to another section (a
    file that writes one here is told where it goes).
    """

    NAME: ClassVar[str] = ""
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    MOVED: ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        for f in fields(self):
            spec = dict(f.metadata)
            kind = spec.pop("kind", "any")
            object.__setattr__(self, f.name, check_value(self.NAME, f.name, getattr(self, f.name), kind, spec))
        self._validate()

    def _validate(self) -> None:
        """Cross-field checks (subclasses)."""

    @classmethod
    def keys_(cls) -> tuple[str, ...]:
        """Field names, the section's own fields before those it inherits (as a profile lists them)."""
        inherited = {f.name for base in cls.__mro__[1:] if is_dataclass(base) for f in fields(base)}
        names = [f.name for f in fields(cls)]
        return tuple([n for n in names if n not in inherited] + [n for n in names if n in inherited])

    @classmethod
    def unknown_key(cls, key: str) -> str:
        """The error text for a key the section does not have (where it moved, or the nearest valid key)."""
        moved = cls.MOVED.get(key)
        hint = f"; it moved to {moved}" if moved else did_you_mean(key, cls.keys_())
        return f"unknown key {key!r} in section {cls.NAME!r}{hint}"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, *, strict: bool = False) -> "Section":
        """The section from a dict; ``strict`` also requires the keys of :attr:`REQUIRED`."""
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise ValueError(f"section {cls.NAME!r} must be a mapping, got {type(values).__name__}")
        known = cls.keys_()
        for k in values:
            if k not in known:
                raise ValueError(cls.unknown_key(k))
        if strict:
            miss = [k for k in cls.REQUIRED if k not in values]
            if miss:
                raise ValueError(f"section {cls.NAME!r} lacks {miss}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists, not tuples): what YAML/JSON and the artifact keys see."""
        return {k: plain(getattr(self, k)) for k in self.keys_()}

    # read-only mapping protocol (``section["lam"]``, ``dict(section)``, ``section.get``)
    def __getitem__(self, key: str) -> Any:
        if key not in self.keys_():
            raise KeyError(key)
        return plain(getattr(self, key))

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys_())

    def __len__(self) -> int:
        return len(fields(self))
