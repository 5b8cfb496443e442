"""environment.yml (Binder/conda) and pyproject.toml must declare the same Python dependencies."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*$")


def _parse(req: str) -> tuple[str, str]:
    """'Torch >= 2.4, <3' -> ('torch', '<3,>=2.4'): normalised name and sorted specifiers (no spaces)."""
    m = _REQ.match(req.split(";")[0])
    assert m, f"cannot parse requirement {req!r}"
    name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
    spec = ",".join(sorted(s.replace(" ", "") for s in m.group(3).split(",") if s.strip()))
    return name, spec


def _as_dict(reqs: list[str], where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in reqs:
        name, spec = _parse(r)
        assert name not in out, f"{name} listed twice in {where}"
        out[name] = spec
    return out


def test_parser():
    assert _parse("Torch_Attacks >=3.5, <3.6") == ("torch-attacks", "<3.6,>=3.5")
    assert _parse("jupyter-book>=1,<2") == ("jupyter-book", "<2,>=1")
    assert _parse("numpy") == ("numpy", "")


def test_environment_yml_matches_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    py_reqs = list(project["dependencies"]) + list(project["optional-dependencies"]["dev"])
    py = _as_dict(py_reqs, "pyproject.toml")

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml must have exactly one pip: section"
    pip = [r for r in pip_lists[0] if not r.strip().startswith("-")]  # drop '-e .' and pip options
    assert any(r.strip() in ("-e .", "-e.") for r in pip_lists[0]), "environment.yml must install fmask (-e .)"
    yml = _as_dict(pip, "environment.yml")

    assert sorted(set(py) - set(yml)) == [], "in pyproject.toml but missing from environment.yml"
    assert sorted(set(yml) - set(py)) == [], "in environment.yml but missing from pyproject.toml"
    mismatched = {k: (py[k], yml[k]) for k in py if py[k] != yml[k]}
    assert mismatched == {}, f"version specifiers differ (pyproject, environment.yml): {mismatched}"
    # conda's python pin agrees with requires-python
    pins = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert pins, "environment.yml must pin python"
    lo = re.search(r">=\s*(\d+)\.(\d+)", project["requires-python"])
    ver = re.search(r"(\d+)\.(\d+)", pins[0])
    assert lo and ver and (int(ver[1]), int(ver[2])) >= (int(lo[1]), int(lo[2]))
