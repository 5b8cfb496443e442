"""Build the Jupyter Book from executed chapters -- and refuse to publish one that did not complete.

Layout (relative to an *output root*; see :func:`fmask.book.runner.default_out`)::

    <root>/_config.yml, <root>/_toc.yml      book configuration (copied into the root when it is not the repo)
    <root>/book/intro.md, other *.md          static pages (copied likewise)
    <root>/book/NN_name.ipynb                 executed chapters (from notebooks/NN_name.py via jupytext)
    <root>/book/NN_name.failed.ipynb          the last failed attempt of a chapter, kept for inspection
    <root>/book/results/                      result files and per-chapter runtimes (fmask.experiment.results)
    <root>/_build/html/index.html             the built book

* :func:`ensure_writable` -- the output folders are checked for write access *before* anything runs (a
  read-only ``--out`` fails at once, with the folder named);
* :func:`prepare_book_dir` -- copy the configuration and static pages into an output root;
* :func:`unpublishable` / :func:`build_book` -- ``jupyter-book build`` refuses a notebook whose papermill
  status is not ``completed`` and names it; the number of Sphinx warnings is reported at the end.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import yaml

from fmask.book.errors import BookError
from fmask.book.execute import notebook_status
from fmask.infra.host import REPO_ROOT

__all__ = [
    "STATIC_SUFFIXES",
    "ensure_writable",
    "prepare_book_dir",
    "unpublishable",
    "count_sphinx_warnings",
    "build_book",
]

STATIC_SUFFIXES = (".md", ".png", ".jpg", ".jpeg", ".svg", ".bib")


def _static_files(src_book: Path) -> list[Path]:
    return sorted(p for p in src_book.iterdir() if p.is_file() and p.suffix.lower() in STATIC_SUFFIXES)


def _toc_files(toc: dict) -> list[str]:
    files = []
    for part in toc.get("parts", []) or []:
        files += [c["file"] for c in part.get("chapters", []) if "file" in c]
    files += [c["file"] for c in toc.get("chapters", []) or [] if "file" in c]
    return files


def _filtered_toc(toc: dict, root: Path) -> dict:
    """The toc without chapters whose source (.ipynb/.md) does not exist under ``root``."""

    def exists(entry: dict) -> bool:
        f = entry.get("file")
        if f is None:
            return True
        return any((root / f"{f}{ext}").exists() for ext in ("", ".ipynb", ".md"))

    out = dict(toc)
    if "chapters" in out:
        out["chapters"] = [c for c in out["chapters"] if exists(c)]
    if "parts" in out:
        out["parts"] = [dict(p, chapters=[c for c in p.get("chapters", []) if exists(c)]) for p in out["parts"]]
        out["parts"] = [p for p in out["parts"] if p["chapters"]]
    return out


def ensure_writable(folder: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Create ``folder`` if needed and prove it is writable (a temporary file is created and removed).

    Raises ``OSError`` with a message naming the folder and what to do (read-only file system, permission
    denied, disk full).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".fmask-write-test.", dir=str(folder))
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write to the {what} {folder} ({exc.strerror or exc}); "
                                 f"choose another --out or fix its permissions") from exc
    return folder


def prepare_book_dir(out_root: Path, source_root: Path = REPO_ROOT) -> Path:
    """Copy ``_config.yml``, ``_toc.yml`` and the static pages of ``source_root/book`` to ``out_root``.

    Nothing is copied when ``out_root`` is ``source_root``. Returns ``out_root/book``.
    """
    out_root, source_root = Path(out_root).resolve(), Path(source_root).resolve()
    book_dir = ensure_writable(out_root / "book", "book folder")
    if out_root != source_root:
        for cfg in ("_config.yml", "_toc.yml"):
            shutil.copy2(source_root / cfg, out_root / cfg)
        for f in _static_files(source_root / "book"):
            shutil.copy2(f, book_dir / f.name)
    return book_dir


def unpublishable(root: str | os.PathLike[str]) -> dict[str, str]:
    """``{notebook: status}`` for every chapter under ``root/book`` listed in the toc whose papermill status
    is not ``completed`` (see :func:`notebook_status`)."""
    root = Path(root)
    with open(root / "_toc.yml", encoding="utf-8") as fh:
        toc = yaml.safe_load(fh) or {}
    bad = {}
    for f in _toc_files(toc):
        nb = root / f"{f}.ipynb"
        if nb.exists():
            status = notebook_status(nb)
            if status != "completed":
                bad[str(Path(f).name)] = status
    return bad


def count_sphinx_warnings(output: str) -> list[str]:
    """The ``WARNING`` lines of a Sphinx / jupyter-book build log."""
    return [line for line in output.splitlines() if "WARNING" in line]


def build_book(
    root: str | os.PathLike[str],
    *,
    profile: str,
    log: Callable[[str], None] = print,
    timeout: float | None = 1800,
) -> Path:
    """``jupyter-book build`` of ``root`` (execution off) into ``root/_build/html``; returns that folder.

    Refuses (:class:`BookError`, naming them) to publish chapters whose papermill status is not
    ``completed``. The build uses a generated config (the profile is available to pages as the MyST
    substitution ``{{ profile }}``) and a toc restricted to the chapters that exist. Logs the number of
    Sphinx warnings (and the first ten). Raises :class:`BookError` with the tail of the build log on failure.
    """
    root = Path(root).resolve()
    bad = unpublishable(root)
    if bad:
        listing = ", ".join(f"{n} ({s})" for n, s in bad.items())
        raise BookError(f"refusing to publish chapters that did not complete: {listing}; "
                        f"re-run them with `fmask book --only {','.join(n.split('_', 1)[0] for n in bad)}`")
    with open(root / "_config.yml", encoding="utf-8") as fh:
        config = yaml.safe_load(fh) or {}
    with open(root / "_toc.yml", encoding="utf-8") as fh:
        toc = yaml.safe_load(fh) or {}
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    parse = config.setdefault("parse", {})
    subs = dict(parse.get("myst_substitutions") or {})
    subs["profile"] = profile
    parse["myst_substitutions"] = subs
    gen = ensure_writable(root / "_build" / ".fmask", "build folder")
    cfg_path, toc_path = gen / "_config.yml", gen / "_toc.yml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    filtered = _filtered_toc(toc, root)
    missing = sorted(set(_toc_files(toc)) - set(_toc_files(filtered)))
    if missing:
        log(f"[fmask book] not in this build (never executed here): {', '.join(Path(m).name for m in missing)}")
    toc_path.write_text(yaml.safe_dump(filtered, sort_keys=False), encoding="utf-8")
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "jupyter_book.cli.main"]
    cmd += ["build", str(root), "--all", "--config", str(cfg_path), "--toc", str(toc_path)]
    log("[fmask book] building the book with jupyter-book ...")
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout)
    html = root / "_build" / "html"
    if proc.returncode != 0 or not (html / "index.html").exists():
        tail = "\n".join((proc.stdout + "\n" + proc.stderr).strip().splitlines()[-40:])
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}):\n{tail}")
    warnings = count_sphinx_warnings(proc.stdout + "\n" + proc.stderr)
    log(f"[fmask book] Sphinx reported {len(warnings)} warning(s)")
    for w in warnings[:10]:
        log(f"  {w}")
    build_book.last_warnings = warnings  # type: ignore[attr-defined]
    return html
