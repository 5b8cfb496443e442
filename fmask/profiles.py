"""Parameter profiles: YAML files in ``fmask/params/`` (``smoke``, ``cpu``, ``paper``) loaded as plain dicts.

Top-level keys (all required): ``name``, ``seed``, ``device`` (``auto``|``cpu``|``cuda``), ``data``, ``model``,
``train``, ``dataset_mask``, ``single_mask``, ``analysis``. Sections are dicts; callers take their own
section. Overrides are a nested dict or dotted keys, e.g. ``{"train.epochs": 2, "seed": 1}``.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping

import yaml

__all__ = ["PROFILE_DIR", "TOP_LEVEL_KEYS", "REQUIRED", "list_profiles", "load_profile", "apply_overrides", "parse_override"]

PROFILE_DIR = Path(__file__).parent / "params"
TOP_LEVEL_KEYS = ("name", "seed", "device", "data", "model", "train", "dataset_mask", "single_mask", "analysis")
#: keys every profile must define in each section (sections may hold more)
REQUIRED: dict[str, tuple[str, ...]] = {
    "data": ("root", "classes", "image_size", "channels", "max_per_class"),
    "model": ("arch",),
    "train": ("regimes", "epochs", "batch_size", "lr", "pct_start", "adv_eps", "adv_steps"),
    "dataset_mask": ("lam", "lr", "epochs", "batch_size", "patience", "schedule"),
    "single_mask": ("lam", "lr", "steps", "patience", "batch_size", "n_images", "schedule"),
    "analysis": ("n_bands",),
}
REGIMES = ("vanilla", "scale", "translate", "rotate", "adversarial")


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
    return k.strip(), yaml.safe_load(v)


def apply_overrides(profile: dict, overrides: Mapping[str, Any] | None) -> dict:
    """Return a deep copy of ``profile`` with ``overrides`` (nested dicts merge; dotted keys address leaves)."""
    out = copy.deepcopy(profile)
    for key, value in (overrides or {}).items():
        parts = str(key).split(".")
        node = out
        for p in parts[:-1]:
            if p not in node or not isinstance(node[p], dict):
                raise ValueError(f"override {key!r}: no section {p!r} in the profile")
            node = node[p]
        leaf = parts[-1]
        if len(parts) == 1 and leaf not in TOP_LEVEL_KEYS:
            raise ValueError(f"override {key!r}: unknown top-level key; expected one of {TOP_LEVEL_KEYS}")
        if isinstance(value, Mapping) and isinstance(node.get(leaf), dict):
            node[leaf] = _merge(node[leaf], value)
        else:
            node[leaf] = copy.deepcopy(value)
    return out


def _merge(base: dict, upd: Mapping[str, Any]) -> dict:
    out = copy.deepcopy(base)
    for k, v in upd.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _validate(p: Any, origin: str) -> dict:
    if not isinstance(p, dict):
        raise ValueError(f"profile {origin} must be a mapping, got {type(p).__name__}")
    missing = [k for k in TOP_LEVEL_KEYS if k not in p]
    extra = [k for k in p if k not in TOP_LEVEL_KEYS]
    if missing or extra:
        raise ValueError(f"profile {origin}: missing keys {missing}, unknown keys {extra}")
    if p["device"] not in ("auto", "cpu", "cuda"):
        raise ValueError(f"profile {origin}: device must be auto, cpu or cuda, got {p['device']!r}")
    if not isinstance(p["seed"], int):
        raise ValueError(f"profile {origin}: seed must be an integer, got {p['seed']!r}")
    for sec, keys in REQUIRED.items():
        if not isinstance(p[sec], dict):
            raise ValueError(f"profile {origin}: section {sec!r} must be a mapping")
        miss = [k for k in keys if k not in p[sec]]
        if miss:
            raise ValueError(f"profile {origin}: section {sec!r} lacks {miss}")
    bad = [r for r in p["train"]["regimes"] if r not in REGIMES]
    if bad:
        raise ValueError(f"profile {origin}: unknown regimes {bad}; choose from {REGIMES}")
    for sec, key in (("train", "epochs"), ("train", "batch_size"), ("data", "image_size")):
        v = p[sec][key]
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"profile {origin}: {sec}.{key} must be a positive integer, got {v!r}")
    return p


def load_profile(name_or_path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> dict:
    """Load a profile by name (``smoke``, ``cpu``, ``paper``) or YAML path, apply ``overrides``, validate.

    Returns a fresh plain dict (safe to mutate).
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
        prof = yaml.safe_load(fh)
    _validate(prof, str(path))
    return _validate(apply_overrides(prof, overrides), f"{path} with overrides {dict(overrides or {})}")
