"""pyproject.toml is the one list of Python dependencies; environment.yml (Binder/conda) only adds CPU PyTorch.

The rule: environment.yml gets ``torch``/``torchvision`` as CPU builds from conda-forge (the PyPI wheels pull
~4 GB of CUDA libraries), installs fmask with ``pip: [-e .[dev]]`` and repeats no other dependency of
pyproject.toml. Binder reads environment.yml and postBuild from the repository root, so there must be no
``binder/`` folder (which would make Binder ignore both).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*$")
_CONDA = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*?)\s*$")
# conda-forge package -> the PyPI distribution it provides
CONDA_TO_PYPI = {"pytorch-cpu": "torch", "pytorch": "torch", "torchvision": "torchvision"}
FROM_CONDA = {"torch", "torchvision"}


def _parse(req: str) -> tuple[str, str]:
    """'Torch >= 2.4, <3' -> ('torch', '<3,>=2.4'): normalised name and sorted specifiers (no spaces)."""
    m = _REQ.match(req.split(";")[0].split("#")[0])
    assert m, f"cannot parse requirement {req!r}"
    name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
    spec = ",".join(sorted(s.replace(" ", "") for s in m.group(3).split(",") if s.strip()))
    return name, spec


def _conda_parse(dep: str) -> tuple[str, str]:
    """'pytorch-cpu>=2.4' -> ('pytorch-cpu', '>=2.4'); 'python=3.11' -> ('python', '=3.11')."""
    m = _CONDA.match(dep)
    assert m, f"cannot parse conda dependency {dep!r}"
    return m.group(1).lower(), m.group(2).replace(" ", "")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _env() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def _pyproject_reqs() -> dict[str, str]:
    project = _pyproject()
    reqs = list(project["dependencies"]) + list(project["optional-dependencies"]["dev"])
    out: dict[str, str] = {}
    for r in reqs:
        name, spec = _parse(r)
        assert name not in out, f"{name} listed twice in pyproject.toml"
        out[name] = spec
    return out


_SPEC = re.compile(r"^(==|>=|<=|!=|~=|<|>)[A-Za-z0-9.*+!]+$")
_CONDA_SPEC = re.compile(r"^(=|==|>=|<=|!=|<|>)[A-Za-z0-9.*]+(,(=|==|>=|<=|!=|<|>)[A-Za-z0-9.*]+)*$")


def test_every_declared_dependency_is_read_whole_by_the_checks():
    """The checks below compare names and version bounds read by ``_parse`` / ``_conda_parse``; a dependency
    they would misread (a direct URL ``name @ url``, a specifier they cannot split) must fail here rather than
    slip through them."""
    project = _pyproject()
    for r in list(project["dependencies"]) + list(project["optional-dependencies"]["dev"]):
        assert "@" not in r.split(";")[0], f"pyproject.toml: direct reference {r!r} has no version to compare"
        name, spec = _parse(r)
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name), (r, name)
        assert all(_SPEC.match(s) for s in spec.split(",") if s), f"pyproject.toml: cannot read the bounds of {r!r}"
    for d in _env()["dependencies"]:
        if isinstance(d, str):
            name, spec = _conda_parse(d)
            assert spec == "" or _CONDA_SPEC.match(spec), f"environment.yml: cannot read the bounds of {d!r}"


def test_environment_installs_fmask_from_pyproject_and_repeats_nothing():
    env = _env()
    deps = env["dependencies"]
    pip_lists = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml must have exactly one pip: section"
    pip = [r.strip() for r in pip_lists[0]]
    assert pip == ["-e .[dev]"], f"the pip section installs fmask with its dev extra and nothing else, got {pip}"
    assert "pip" in deps, "conda must install pip for the pip: section"
    conda = dict(_conda_parse(d) for d in deps if isinstance(d, str))
    provided = {CONDA_TO_PYPI.get(n, re.sub(r"[-_.]+", "-", n)) for n in conda}
    py = _pyproject_reqs()
    duplicated = sorted((set(py) - FROM_CONDA) & provided)
    assert duplicated == [], f"declared in pyproject.toml, must not be repeated in environment.yml: {duplicated}"
    # conda gives exactly python, pip, torch and torchvision
    assert provided == {"python", "pip"} | FROM_CONDA, sorted(provided)


def test_torch_comes_as_cpu_build_with_pyproject_bounds():
    env = _env()
    conda = dict(_conda_parse(d) for d in env["dependencies"] if isinstance(d, str))
    assert "pytorch-cpu" in conda, "torch must come from conda-forge's CPU-only pytorch-cpu"
    assert "pytorch" not in conda and not any("cuda" in n for n in conda), sorted(conda)
    assert "torchvision" in conda
    assert env["channels"][0] == "conda-forge", "pytorch-cpu is a conda-forge package"
    assert "defaults" not in env["channels"]
    py = _pyproject_reqs()
    # the conda lower bounds are pyproject's (pip then sees torch/torchvision satisfied and installs nothing)
    assert conda["pytorch-cpu"] == py["torch"], (conda["pytorch-cpu"], py["torch"])
    assert conda["torchvision"] == py["torchvision"], (conda["torchvision"], py["torchvision"])
    # conda's python pin agrees with requires-python
    lo = re.search(r">=\s*(\d+)\.(\d+)", _pyproject()["requires-python"])
    ver = re.search(r"(\d+)\.(\d+)", conda["python"])
    assert lo and ver and (int(ver[1]), int(ver[2])) >= (int(lo[1]), int(lo[2]))


def test_offline_maths_extension_is_a_dev_dependency():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "sphinx-mathjax-offline" in cfg["sphinx"]["extra_extensions"]
    assert "sphinx-mathjax-offline" in _pyproject_reqs()
    assert "jupyter-book" in _pyproject_reqs()


def test_binder_reads_the_root_files():
    # repo2docker uses binder/ (or .binder/) INSTEAD of the root files when such a folder exists
    assert not (ROOT / "binder").exists() and not (ROOT / ".binder").exists()
    post = ROOT / "postBuild"
    assert post.is_file() and os.access(post, os.X_OK), "postBuild must exist and be executable"
    assert post.read_text().startswith("#!/usr/bin/env bash\n")
    mode = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-s", "postBuild"], capture_output=True,
                          text=True).stdout.split()
    if mode:  # tracked: the executable bit must be committed, not only set in this checkout
        assert mode[0] == "100755", mode


def test_postbuild_makes_jupyterlab_open_py_sources_as_notebooks(tmp_path):
    """Run postBuild in a fake home: it must write JupyterLab's default-viewer override for .py files."""
    assert shutil.which("bash"), "bash is needed to run postBuild"
    env = {k: v for k, v in os.environ.items()
           if k not in ("JUPYTER_CONFIG_DIR", "NB_PYTHON_PREFIX", "KERNEL_PYTHON_PREFIX")}
    env["HOME"] = str(tmp_path)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(["bash", str(ROOT / "postBuild")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    settings = tmp_path / ".jupyter" / "labconfig" / "default_setting_overrides.json"
    data = json.loads(settings.read_text())
    viewers = data["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["python"] == "Jupytext Notebook"
