"""The package's layout holds what ARCHITECTURE.md says: floors, no cycles, no private names across modules,
small modules, and old import paths that still resolve with a warning."""
from __future__ import annotations

import ast
import importlib
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "fmask"
#: the floor of each folder (and top-level module) of fmask; a module imports only its floor and below
FLOORS = {"core": 1, "infra": 1, "models": 1, "data": 2, "learners": 2, "plots": 2, "analysis": 3,
          "training": 4, "experiment": 5, "claims": 6, "book": 7, "cli": 8, "__main__": 8}
#: the old import paths (stubs that only re-export, with a warning) and names users import from them
DEPRECATED = {"fmask.learn": ["PerImageMasks", "DatasetMask", "MaskResult", "learn_masks"],
              "fmask.mask": ["filter_images", "pixel_offset"],
              "fmask.spectral": ["centered", "radial_bands", "band_energy"],
              "fmask.ownmodel": ["learn_own_masks", "prepare_model", "load_images", "run_own_masks"]}
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        rel = f.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = f
    return out


def _home(module: str) -> str | None:
    """The folder (or top-level module) of fmask that ``module`` lives in; None for the package root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _imports(f: Path) -> list[tuple[str, list[str]]]:
    """Every ``fmask`` import in the file, at any depth: (module, imported names)."""
    out = []
    for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and \
                node.module.split(".")[0] == "fmask":
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.split(".")[0] == "fmask"]
    return out


def _is_stub(module: str) -> bool:
    return module in DEPRECATED


def test_every_folder_has_a_floor_and_a_line_in_the_architecture_page():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    homes = {_home(m) for m in _modules() if _home(m) and not _is_stub(m)}
    assert homes <= set(FLOORS), f"folders without a floor: {sorted(homes - set(FLOORS))}"
    named = {h for h in homes if f"`fmask/{h}/`" in text or f"`fmask/{h}.py`" in text}
    assert homes - {"__main__"} == named, f"ARCHITECTURE.md does not name {sorted(homes - named - {'__main__'})}"
    assert len(text.split()) < 900, "ARCHITECTURE.md should stay one page"


def test_no_module_imports_from_a_floor_above_its_own():
    up = []
    for mod, f in _modules().items():
        if _is_stub(mod) or _home(mod) is None:
            continue
        for target, _ in _imports(f):
            t = _home(target)
            if t is not None and not _is_stub(target) and FLOORS[t] > FLOORS[_home(mod)]:
                up.append(f"{mod} -> {target}")
    assert not up, "imports that run up the floors: " + ", ".join(up)


def test_no_import_cycles_between_modules():
    mods = _modules()
    graph = {m: set() for m in mods}
    for m, f in mods.items():
        for target, names in _imports(f):
            for cand in [f"{target}.{n}" for n in names] + [target]:
                if cand in mods and cand != m:
                    graph[m].add(cand)
                    break
    # packages import their own submodules for re-export; only cycles between distinct modules count
    state: dict[str, int] = {}
    cycles = []

    def visit(n, stack):
        state[n] = 1
        for t in graph[n]:
            if t.startswith(n + ".") or n.startswith(t + "."):
                continue
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack + [t])
        state[n] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_private_name_is_imported_across_modules():
    bad = []
    for mod, f in _modules().items():
        for target, names in _imports(f):
            bad += [f"{mod} imports {target}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
    assert not bad, bad


@pytest.mark.parametrize("mod", sorted(_modules()))
def test_module_is_small(mod):
    n = _modules()[mod].read_text(encoding="utf-8").count("\n")
    assert n <= MAX_LINES, f"{mod} has {n} lines (at most {MAX_LINES}): split it by concept"


def test_docstrings_carry_no_history():
    bad = []
    for mod, f in _modules().items():
        text = f.read_text(encoding="utf-8")
        for word in ("issue #", "Issue #"):
            if word in text:
                bad.append(mod)
    assert not bad, f"history belongs in git, not in {sorted(set(bad))}"


@pytest.mark.parametrize("old", sorted(DEPRECATED))
def test_old_import_paths_resolve_with_a_warning_naming_the_new_home(old):
    from fmask.infra.deprecation import MOVED

    new = importlib.import_module(MOVED[old])
    stub = importlib.import_module(old)
    for name in DEPRECATED[old]:
        with pytest.warns(DeprecationWarning, match=f"{MOVED[old]}.{name}"):
            value = getattr(stub, name)
        assert value is getattr(new, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="no attribute"):
            getattr(stub, "no_such_name")


def test_old_import_statement_in_the_readme_style_still_works():
    with pytest.warns(DeprecationWarning):
        from fmask.learn import PerImageMasks  # noqa: F401
    from fmask.learners import PerImageMasks as new

    assert PerImageMasks is new
