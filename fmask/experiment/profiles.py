"""Parameter profiles: YAML files in ``fmask/params/`` (``smoke``, ``cpu``, ``paper``) read into a validated,
frozen :class:`fmask.experiment.profile_schema.Profile`.

Every section is required in a profile file; within a section its ``REQUIRED`` keys must be written out, the
others take their defaults (:mod:`fmask.experiment.profile_schema`). Unknown keys are errors that name the
nearest valid key (``unknown key 'lamda' in section 'single_mask'; did you mean 'lam'?``); a value of the wrong
type names the key (``single_mask.lr must be a number, got 'fast'``). Files and ``--set`` values are read with
:func:`read_yaml`, which reads ``1e-3`` (an exponent without a dot, a string to PyYAML) as a number; a quoted
number (``lr: "1e-3"``) stays a string and is refused.

Access::

    p = load_profile("cpu", {"train.epochs": 2})      # dotted overrides, same checks as the file
    p.single_mask.lam                                  # typed attribute access
    PerImageMasks(model, **asdict(p.single_mask), seed=p.seed)
    p["train"]["epochs"]; p.to_dict()                  # plain-dict views (notebooks, YAML, artifact keys)
    train_model("vanilla", p)                          # p.training_config(): what the fit loop reads

The mapping view (``p["data"]``) returns a fresh plain dict per section, so mutating it changes nothing.
"""
from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from fmask.experiment.profile_fields import did_you_mean
from fmask.experiment.profile_schema import SECTIONS, TOP_LEVEL_KEYS, Profile

__all__ = ["PROFILE_DIR", "asdict", "read_yaml", "list_profiles", "load_profile", "profile_from_mapping",
           "apply_overrides", "parse_override"]

PROFILE_DIR = Path(__file__).resolve().parents[1] / "params"


class _ProfileLoader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads ``1e-3`` / ``5E+2`` (YAML 1.2 floats without a dot) as floats."""


_ProfileLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def read_yaml(text: str | Any) -> Any:
    """YAML text (or an open file) as Python data, with :class:`_ProfileLoader`'s numbers."""
    return yaml.load(text, Loader=_ProfileLoader)  # noqa: S506 -- a SafeLoader subclass


# -------------------------------------------------------------------------------------------- loading
def list_profiles() -> list[str]:
    """Names of the profiles shipped in ``fmask/params/``."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.epochs=3"`` → ``("train.epochs", 3)``; the value is parsed as YAML (numbers, lists, null...)."""
    if "=" not in text:
        raise ValueError(f"override must look like section.key=value, got {text!r}")
    k, v = text.split("=", 1)
    if not k.strip():
        raise ValueError(f"empty key in override {text!r}")
    return k.strip(), read_yaml(v)


def apply_overrides(profile: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict:
    """A deep-copied plain dict of ``profile`` with ``overrides`` (nested dicts merge; dotted keys address leaves).

    Unknown sections and top-level keys are errors naming the nearest valid one; unknown keys inside a
    section are caught when the result is validated (:func:`profile_from_mapping`).
    """
    out = copy.deepcopy(profile.to_dict() if isinstance(profile, Profile) else dict(profile))
    for key, value in (overrides or {}).items():
        parts = str(key).split(".")
        if len(parts) > 2:
            raise ValueError(f"override {key!r}: use section.key (profiles are two levels deep)")
        if parts[0] not in TOP_LEVEL_KEYS:
            what = "no section" if len(parts) == 2 else "unknown top-level key"
            raise ValueError(f"override {key!r}: {what} {parts[0]!r} in the profile"
                             + did_you_mean(parts[0], TOP_LEVEL_KEYS))
        if len(parts) == 1:
            if isinstance(value, Mapping) and isinstance(out.get(parts[0]), dict):
                out[parts[0]] = {**out[parts[0]], **copy.deepcopy(dict(value))}
            else:
                out[parts[0]] = copy.deepcopy(value)
            continue
        sec, leaf = parts
        if sec not in SECTIONS:
            raise ValueError(f"override {key!r}: no section {sec!r} in the profile ({sec!r} is a value)")
        node = out.setdefault(sec, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {key!r}: no section {sec!r} in the profile (it is not a mapping)")
        if leaf not in SECTIONS[sec].keys_():
            raise ValueError(f"override {key!r}: {SECTIONS[sec].unknown_key(leaf)}")
        node[leaf] = copy.deepcopy(value)
    return out


def profile_from_mapping(p: Mapping[str, Any], origin: str = "given as a dict", *, strict: bool = True) -> Profile:
    """Validate a plain profile dict into a :class:`Profile` (a :class:`Profile` is returned as is).

    ``strict``: every top-level key and the ``REQUIRED`` keys of each section must be present (profile
    files); otherwise missing sections take their defaults. Errors name ``origin``.
    """
    if isinstance(p, Profile):
        return p
    if not isinstance(p, Mapping):
        raise ValueError(f"profile {origin} must be a mapping, got {type(p).__name__}")
    extra = [k for k in p if k not in TOP_LEVEL_KEYS]
    if extra:
        raise ValueError(f"profile {origin}: unknown keys {extra}" + did_you_mean(extra[0], TOP_LEVEL_KEYS))
    needed = TOP_LEVEL_KEYS if strict else ("name", "seed")
    missing = [k for k in needed if k not in p]
    if missing:
        raise ValueError(f"profile {origin}: missing keys {missing}")
    try:
        secs = {name: cls.from_mapping(p.get(name), strict=strict) for name, cls in SECTIONS.items()}
        return Profile(name=p["name"], seed=p["seed"], device=p.get("device", "auto"), **secs)
    except ValueError as exc:
        raise ValueError(f"profile {origin}: {exc}") from None


def load_profile(name_or_path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> Profile:
    """Load a profile by name (``smoke``, ``cpu``, ``paper``) or YAML path, apply ``overrides``, validate.

    ``overrides``: dotted keys (``{"train.epochs": 2, "seed": 1}``) or nested dicts; they pass the same
    checks as the file. Returns a frozen :class:`Profile`.
    """
    s = str(name_or_path)
    path = Path(s)
    if not (s.endswith((".yaml", ".yml")) or path.is_file()):
        path = PROFILE_DIR / f"{s}.yaml"
        if not path.is_file():
            raise ValueError(f"unknown profile {s!r}; choose one of {list_profiles()} or give a YAML path")
    elif not path.is_file():
        raise ValueError(f"profile file {path} does not exist")
    with open(path, encoding="utf-8") as fh:
        raw = read_yaml(fh)
    profile = profile_from_mapping(raw, str(path))
    if not overrides:
        return profile
    return profile_from_mapping(apply_overrides(raw, overrides), f"{path} with overrides {dict(overrides)}")
