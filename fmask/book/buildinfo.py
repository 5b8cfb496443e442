"""Where a build of the book came from: code version, packages, profile and the exact data folder.

:func:`build_info` collects, as a JSON-able dict,

* ``git``: short commit hash, full hash, and whether the working tree differs from that commit (``dirty``;
  tracked files only, and not counting what the book run itself writes: ``book/*.ipynb``, ``book/results/``,
  ``book/_generated/``), or ``None`` outside a git checkout;
* ``date``: the build time, UTC, ISO 8601;
* ``versions``: python, torch, torchvision, numpy, fmask, jupyter-book, papermill (installed distributions);
* ``machine``: what computed the numbers (:func:`fmask.infra.host.machine`): CPU model and the kernel flags
  that pick torch's code paths (``avx512f``, ``avx512_bf16``, ``amx_*``), the torch build with its BLAS, MKL
  and oneDNN versions, the torch thread count of the chapters and the CPU kind key under which two builds
  are expected to give bitwise equal numbers (:mod:`fmask.book.determinism`);
* ``profile``: its name and, when it is a profile file (``fmask/params/<name>.yaml`` or a YAML path), that
  file's SHA-256;
* ``data``: which Imagenette copy: folder name, absolute path, SHA-256 of its sorted relative file list
  (POSIX paths, one per line, hidden files and folders skipped — names only, the image bytes are not read),
  the number of files, of files per top-level split (``train``, ``val``) and of class folders per split.

:func:`render_build_info` renders it as a short MyST page section; :func:`write_build_info` is the one call
the book runner makes after executing the notebooks and before ``jupyter-book build``: it writes
``book/_generated/build_info.md`` and the claims ledger ``book/_generated/claims_table.md``
(:mod:`fmask.claims.ledger`), both included by ``book/intro.md``.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Mapping

from fmask.infra import host
from fmask.infra.host import REPO_ROOT

__all__ = [
    "REPO_ROOT",
    "BUILD_INFO",
    "RUN_OUTPUTS",
    "git_state",
    "package_versions",
    "profile_info",
    "data_fingerprint",
    "render_machine",
    "build_info",
    "render_build_info",
    "write_build_info",
]

BUILD_INFO = "build_info.md"
# Paths a book run writes into the checkout itself; they do not make the *source* dirty.
RUN_OUTPUTS = ("book/*.ipynb", "book/results", "book/_generated")
PACKAGES = ("torch", "torchvision", "numpy", "fmask", "jupyter-book", "papermill")


def git_state(repo_root: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``{"commit": short, "full": sha, "dirty": bool}`` for the checkout at ``repo_root``; None if not a checkout.

    ``dirty`` considers tracked files only and ignores :data:`RUN_OUTPUTS` (what the book run writes).
    """
    root = Path(repo_root)

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                              timeout=60).stdout.strip()

    try:
        full = git("rev-parse", "HEAD")
        short = git("rev-parse", "--short", "HEAD")
        top = Path(git("rev-parse", "--show-toplevel")).resolve()
        excludes = []
        for pat in RUN_OUTPUTS:  # RUN_OUTPUTS are relative to the repository root
            rel = (root.resolve() / pat).relative_to(top).as_posix() if root.resolve() != top else pat
            excludes.append(f":(top,exclude,glob){rel}" if "*" in pat else f":(top,exclude){rel}")
        status = git("status", "--porcelain", "--untracked-files=no", "--", ":/", *excludes)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return {"commit": short, "full": full, "dirty": bool(status)}


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Python's version and each distribution's installed version (None when not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def profile_info(profile: str | None, repo_root: str | os.PathLike[str] = REPO_ROOT) -> dict[str, Any] | None:
    """``{"name", "file", "sha256"}`` of a profile given by name (``fmask/params/<name>.yaml``) or YAML path.

    ``file``/``sha256`` are None when no such file exists (e.g. the placeholder of a bare build).
    """
    if profile is None:
        return None
    if not isinstance(profile, str) or not profile.strip():
        raise ValueError(f"profile must be a name or a YAML path, got {profile!r}")
    p = Path(profile)
    is_path = profile.endswith((".yaml", ".yml"))
    candidates = [p] if is_path else [Path(repo_root) / "fmask" / "params" / f"{profile}.yaml",
                                      REPO_ROOT / "fmask" / "params" / f"{profile}.yaml"]
    name = p.stem if is_path else profile
    for c in candidates:
        if c.is_file():
            try:
                shown = c.resolve().relative_to(Path(repo_root).resolve()).as_posix()
            except ValueError:
                shown = str(c.resolve())
            return {"name": name, "file": shown, "sha256": _sha256_file(c)}
    return {"name": name, "file": None, "sha256": None}


def data_fingerprint(data_root: str | os.PathLike[str]) -> dict[str, Any]:
    """Identify an image folder by its file *names*: SHA-256 of the sorted relative paths, and counts.

    Returns ``{"folder", "path", "sha256", "files", "splits": {split: {"files", "classes"}}}``. Hidden
    files/folders (names starting with ``.``) are skipped. Raises ``ValueError`` if ``data_root`` is not a
    directory. Two copies with the same names give the same hash whatever their location or timestamps.
    """
    root = Path(data_root)
    if not root.is_dir():
        raise ValueError(f"data folder {root} does not exist or is not a directory")
    rels: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(dirpath).relative_to(root)
        rels += [(base / f).as_posix() for f in filenames if not f.startswith(".")]
    rels.sort()
    digest = hashlib.sha256("\n".join(rels).encode("utf-8")).hexdigest()
    splits: dict[str, dict[str, int]] = {}
    for r in rels:
        parts = r.split("/")
        if len(parts) < 2:
            continue
        s = splits.setdefault(parts[0], {"files": 0, "classes": 0})
        s["files"] += 1
    for name in splits:
        sub = root / name
        splits[name]["classes"] = sum(1 for d in sub.iterdir() if d.is_dir() and not d.name.startswith("."))
    return {"folder": root.resolve().name, "path": str(root.resolve()), "sha256": digest, "files": len(rels),
            "splits": dict(sorted(splits.items()))}


def render_machine(m: Mapping[str, Any]) -> str:
    """One line naming a :func:`fmask.infra.host.machine` record: CPU model, kernel flags present and absent,
    the CPU capability torch dispatches to, the torch build with BLAS / MKL / oneDNN, and the thread count."""
    cpu = m.get("cpu", {})
    have = list(cpu.get("flags", []))
    lacks = [f for f in host.KERNEL_FLAGS if f not in have]
    flags = ", ".join(have) if have else "none of " + ", ".join(host.KERNEL_FLAGS)
    if have and lacks:
        flags += f" (no {', '.join(lacks)})"
    libs = ", ".join(x for x in (
        f"BLAS {m['blas']}" + (f" (MKL {m['mkl']})" if m.get("mkl") else "") if m.get("blas") else None,
        f"oneDNN {m['onednn']}" if m.get("onednn") else None) if x)
    cap = f"; torch dispatches to {m['cpu_capability']}" if m.get("cpu_capability") else ""
    threads = m.get("threads")
    return (f"{cpu.get('model', 'unknown CPU')} ({cpu.get('vendor', 'unknown vendor')}), kernel flags {flags}{cap}; "
            f"torch {m.get('torch', '?')}" + (f" with {libs}" if libs else "") +
            f"; {threads} torch thread{'s' if threads != 1 else ''}")


def build_info(repo_root: str | os.PathLike[str] = REPO_ROOT, profile: str | None = None,
               data_root: str | os.PathLike[str] | None = None, *,
               now: _dt.datetime | None = None, threads: int | None = None) -> dict[str, Any]:
    """Everything :func:`render_build_info` shows (see the module docstring). ``now`` fixes the date (tests);
    ``threads``: the torch thread count the chapters ran with (default: this process's)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    data: dict[str, Any] | None
    if data_root is None:
        data = None
    else:
        data = data_fingerprint(data_root)
    return {
        "git": git_state(repo_root),
        "date": now.astimezone(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "machine": host.machine(threads),
        "profile": profile_info(profile, repo_root),
        "data": data,
    }


def render_build_info(info: Mapping[str, Any]) -> str:
    """A MyST markdown block (no heading; the including page provides it) describing one build."""
    g = info.get("git")
    if g:
        code = f"commit `{g['commit']}`" + (" with uncommitted changes (**dirty**)" if g["dirty"] else " (clean)")
    else:
        code = "not a git checkout (commit unknown)"
    prof = info.get("profile")
    if prof is None:
        prof_txt = "not recorded"
    elif prof.get("file"):
        prof_txt = f"`{prof['name']}` (`{prof['file']}`, SHA-256 `{prof['sha256'][:12]}…`)"
    else:
        prof_txt = f"`{prof['name']}`"
    d = info.get("data")
    if d is None:
        data_txt = "not recorded (no data folder was given to this build)"
    else:
        split_txt = ", ".join(f"{k}: {v['files']} files in {v['classes']} class folders"
                              for k, v in d["splits"].items())
        data_txt = (f"folder `{d['folder']}` — {d['files']} files ({split_txt}); SHA-256 of the sorted "
                    f"file list `{d['sha256'][:16]}…`")
    vers = info.get("versions", {})
    ver_txt = ", ".join(f"{k} {v if v is not None else '(not installed)'}" for k, v in vers.items())
    rows = [
        ("code", code),
        ("built", f"{info.get('date', '?')} (UTC)"),
        ("profile", prof_txt),
        ("data", data_txt),
        ("software", ver_txt),
    ]
    if info.get("machine"):
        rows.append(("machine", render_machine(info["machine"])))
    lines = ["| | |", "| --- | --- |"]
    lines += [f"| {k} | {v.replace('|', chr(92) + '|')} |" for k, v in rows]
    if g:
        lines += ["", f"Full commit: `{g['full']}`."]
    if d is not None:
        lines += [f"Data fingerprint (full): `{d['sha256']}`."]
    if info.get("machine"):
        lines += [f"CPU kind (results are bitwise comparable only within one kind): `{info['machine']['kind']}`."]
    return "\n".join(lines) + "\n"


def write_build_info(book_dir: str | os.PathLike[str], *, repo_root: str | os.PathLike[str] = REPO_ROOT,
                     profile: str | None = None, data_root: str | os.PathLike[str] | None = None,
                     claims_path: str | os.PathLike[str] | None = None,
                     notebooks_dir: str | os.PathLike[str] | None = None,
                     threads: int | None = None) -> dict[str, Any]:
    """Write ``book_dir/_generated/build_info.md`` and ``book_dir/_generated/claims_table.md``; return the info.

    The runner calls this once, after the notebooks ran and before ``jupyter-book build``::

        buildinfo.write_build_info(book_dir, repo_root=REPO_ROOT, profile=profile, data_root=data_root,
                                   notebooks_dir=src, threads=n_threads)

    ``claims_path`` defaults to ``book_dir/results/claims.json``; ``notebooks_dir`` (default
    ``repo_root/notebooks``) supplies chapter titles for chapters not executed in this build; ``threads``:
    the torch thread count the chapters ran with.
    """
    from fmask.claims import ledger
    from fmask.infra.atomic import atomic_write

    book_dir = Path(book_dir)
    info = build_info(repo_root, profile, data_root, threads=threads)
    text = render_build_info(info)
    dest = book_dir / ledger.GENERATED_DIR / BUILD_INFO
    atomic_write(dest, lambda fh: fh.write(text), binary=False)
    ledger.write_claims_table(book_dir, claims_path,
                              notebooks_dir=notebooks_dir if notebooks_dir is not None
                              else Path(repo_root) / "notebooks")
    return info
