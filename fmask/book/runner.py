"""Execute the chapters with papermill and build the Jupyter Book -- safely.

Layout (relative to an *output root*; see :func:`default_out`)::

    <root>/_config.yml, <root>/_toc.yml      book configuration (copied into the root when it is not the repo)
    <root>/book/intro.md, other *.md          static pages (copied likewise)
    <root>/book/NN_name.ipynb                 executed chapters (from notebooks/NN_name.py via jupytext)
    <root>/book/NN_name.failed.ipynb          the last failed attempt of a chapter, kept for inspection
    <root>/book/results/                      result files and per-chapter runtimes (fmask.experiment.results)
    <root>/_build/html/index.html             the built book

Safety rules (the reasons for this module's shape):

* A chapter is executed into a temporary file. Only a run that completes replaces ``book/NN_name.ipynb``
  (atomically); a failed or killed run leaves the previous good notebook untouched and keeps its own
  partial output beside it as ``book/NN_name.failed.ipynb``.
* :func:`build_book` refuses to publish a notebook whose papermill status is not ``completed`` and names it.
* The output folders are checked for write access *before* anything runs (a read-only ``--out`` fails at
  once, with the folder named).
* The default output root depends on the profile: the default profile (``cpu``) writes the committed book in
  the repository; any other profile writes to ``_build/<profile>/`` unless an output root is given, so
  ``fmask book --profile smoke`` never overwrites the committed chapters.

What the reader gets: the injected-parameters cell papermill adds is removed, the ``parameters`` cell is
tagged ``remove-cell``, widget outputs and widget metadata are dropped, machine-local paths in metadata and
outputs are replaced by placeholders (``<data>``, ``<artifacts>``, ``<repo>``), and figures shown with
:meth:`fmask.book.chapter.Chapter.figure` become numbered MyST figures with caption and alt text.

Reproducibility (``docs/guarantees.md``, :mod:`fmask.book.determinism`): every kernel runs with a fixed torch
thread count (:func:`fmask.infra.runtime.book_threads`: ``threads``, else ``$FMASK_THREADS``, else 2), because the
CPU thread count changes trained weights; the runner says how many artifacts the store already held and how
many each chapter added (a result made from an artifact computed by older code is the usual reason a book
differs from a fresh clone's), and ``fresh=True`` (``fmask book --fresh``) runs on a new, empty store.

What the person at the terminal gets: one progress line per chapter with the time it took last time
(from the runtimes in the results folder), papermill's per-cell bar (on stdout), the kernel's stderr
filtered of benign noise, and the number of Sphinx warnings at the end.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import yaml

from fmask.experiment import results as report
from fmask.book.errors import BookError
from fmask.book.buildinfo import REPO_ROOT  # the one definition (re-exported: fmask.book.REPO_ROOT)

__all__ = [
    "REPO_ROOT",
    "execution_order",
    "DEFAULT_PROFILE",
    "BookError",
    "BookRun",
    "discover_notebooks",
    "select_notebooks",
    "convert_notebook",
    "execute_notebook",
    "postprocess_notebook",
    "notebook_status",
    "unpublishable",
    "default_out",
    "ensure_writable",
    "prepare_book_dir",
    "build_book",
    "run_book",
]

NOTEBOOK_RE = re.compile(r"^(\d\d)_[A-Za-z0-9_]+$")
DEFAULT_PROFILE = "cpu"
STATIC_SUFFIXES = (".md", ".png", ".jpg", ".jpeg", ".svg", ".bib")
FAILED_SUFFIX = ".failed.ipynb"
#: kernel stderr lines that are noise for the person running the book (shutdown, debugger, widget hints)
BENIGN_KERNEL_NOISE = re.compile(
    r"KeyboardInterrupt|^\s*$|IProgress not found|frozen modules|Xfrozen_modules|PYDEVD_DISABLE_FILE_VALIDATION"
    r"|Debugger warning|debugging will be slow|make the debugger|font cache|^\s*warnings\.warn\(|^\s*0\.00s - "
    r"|running over TCP without encryption"
)


@dataclass
class BookRun:
    """What :func:`run_book` did: where things are, which chapters ran, how long each took (s)."""

    root: Path
    book_dir: Path
    results_dir: Path
    html_dir: Path | None
    profile: str
    notebooks: list[str] = field(default_factory=list)
    runtimes: dict[str, float] = field(default_factory=dict)
    sphinx_warnings: int | None = None


# ------------------------------------------------------------------------------------------- notebooks
def discover_notebooks(src_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Names (no suffix) of the jupytext sources ``NN_name.py`` in ``src_dir`` (default notebooks/), in order."""
    src = Path(src_dir) if src_dir is not None else REPO_ROOT / "notebooks"
    if not src.is_dir():
        raise BookError(f"notebook source folder {src} does not exist")
    return sorted(p.stem for p in src.glob("*.py") if NOTEBOOK_RE.match(p.stem))


#: chapters that read every other chapter's results (the report writes ``claims.json``): executed last, after
#: the chapters numbered after them, while the table of contents keeps the numbered order
READS_ALL_RESULTS = ("report",)


def execution_order(names: Sequence[str]) -> list[str]:
    """``names`` in the order the runner executes them: numbered order, except that the chapters in
    :data:`READS_ALL_RESULTS` (the report, which evaluates the claims ledger from every result file,
    including those of chapters 9-11) run after all others."""
    last = [n for n in names if n.split("_", 1)[-1] in READS_ALL_RESULTS]
    return [n for n in names if n not in last] + last


def select_notebooks(available: Sequence[str], only: str | Iterable[str] | None) -> list[str]:
    """Subset of ``available`` chosen by ``only``: names, stems or two-digit prefixes, comma-separated or a list.

    ``only=None`` keeps everything. Unknown selections raise ``ValueError`` listing what exists.
    """
    if only is None:
        return list(available)
    items = [s.strip() for part in ([only] if isinstance(only, str) else only) for s in str(part).split(",")]
    items = [s[:-3] if s.endswith(".py") else s[:-6] if s.endswith(".ipynb") else s for s in items if s]
    if not items:
        raise ValueError("--only was given but names no notebook")
    chosen = []
    for item in items:
        matches = [n for n in available if n == item or n.split("_", 1)[0] == item.zfill(2) or n.split("_", 1)[1] == item]
        if not matches:
            raise ValueError(f"--only {item!r} matches no notebook; available: {', '.join(available)}")
        chosen.extend(m for m in matches if m not in chosen)
    return [n for n in available if n in chosen]  # keep book order


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


def convert_notebook(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """jupytext percent ``.py`` -> ``.ipynb`` (no outputs), with the python3 kernel spec.

    The cell tagged ``parameters`` (papermill needs exactly one) is also tagged ``remove-cell``, so the
    reader never sees it; raises :class:`BookError` if there is none.
    """
    import jupytext
    import nbformat

    nb = jupytext.read(str(src))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    nb.metadata.pop("jupytext", None)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        raise BookError(f"{src} has no cell tagged 'parameters' (papermill needs one)")
    for c in tagged:
        if "remove-cell" not in c.metadata["tags"]:
            c.metadata["tags"].append("remove-cell")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(dest))
    return dest


def notebook_status(path: str | os.PathLike[str]) -> str:
    """Papermill status of an executed notebook: ``"completed"`` only if papermill recorded no exception and
    every code cell's status is ``completed``; else ``"failed"`` (a cell failed), ``"running"`` /
    ``"pending"`` (the run stopped or was killed), ``"not executed"`` (no papermill metadata) or
    ``"unreadable"``."""
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception:
        return "unreadable"
    pm = nb.metadata.get("papermill")
    if not isinstance(pm, Mapping):
        return "not executed"
    statuses = [c.metadata.get("papermill", {}).get("status") for c in nb.cells if c.cell_type == "code"]
    if pm.get("exception") or "failed" in statuses:
        return "failed"
    for s in ("running", "pending"):
        if s in statuses:
            return s
    if any(s != "completed" for s in statuses):
        return "not executed"
    return "completed"


def _scrub_text(text: str, replacements: Sequence[tuple[str, str]]) -> str:
    for old, new in replacements:
        if old:
            text = text.replace(old, new)
    return text


def _scrub(obj: Any, replacements: Sequence[tuple[str, str]]) -> Any:
    """``obj`` (JSON-like) with every string's machine-local paths replaced (longest path first)."""
    if isinstance(obj, str):
        return _scrub_text(obj, replacements)
    if isinstance(obj, list):
        return [_scrub(v, replacements) for v in obj]
    if isinstance(obj, dict):
        return type(obj)((k, _scrub(v, replacements)) for k, v in obj.items())
    return obj


def path_replacements(paths: Mapping[str, str | os.PathLike[str] | None]) -> list[tuple[str, str]]:
    """``[(absolute path, placeholder)]`` for the given ``{placeholder: path}``, plus the repository root and
    the home folder, longest path first (so ``/a/b`` is replaced before ``/a``)."""
    pairs: dict[str, str] = {}
    for label, p in {**paths, "<repo>": REPO_ROOT, "~": Path.home()}.items():
        if p in (None, ""):
            continue
        for variant in {str(Path(p)), str(Path(p).resolve())}:
            if variant not in ("/", ".") and len(variant) > 1:
                pairs.setdefault(variant, label)
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def _is_widget(key: str) -> bool:
    return key.startswith("application/vnd.jupyter.widget")


#: outputs myst-nb renders as figure-like content (a book figure's cell may hold only one of them)
_RICH_OUTPUTS = ("image/png", "image/svg+xml", "image/jpeg", "text/html", "text/markdown")


def postprocess_notebook(nb, *, replacements: Sequence[tuple[str, str]] = (), status: str | None = None):
    """Make an executed notebook fit for the reader (in place; returns ``nb``).

    * removes papermill's ``injected-parameters`` cell and tags the ``parameters`` cell ``remove-cell``;
    * drops widget outputs (``application/vnd.jupyter.widget-*``) and the notebook's widget metadata;
    * turns a display output carrying ``metadata["fmask"]["figure"]`` (see
      :meth:`fmask.book.chapter.Chapter.figure`) into cell metadata ``mystnb.figure`` (caption, name) and
      ``mystnb.image.alt``, which myst-nb renders as a numbered figure (``BookError`` if that cell shows any
      other rich output: myst-nb would label it with the same name);
    * replaces machine-local paths (``replacements``, see :func:`path_replacements`) in outputs and in the
      papermill metadata, and drops papermill's input/output paths;
    * records ``status`` in ``metadata["fmask"]``.
    """
    cells = []
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags:
            continue
        if "parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
        if cell.cell_type == "code":
            outs = []
            for out in cell.get("outputs", []):
                data = out.get("data")
                if data is not None:
                    for key in [k for k in data if _is_widget(k)]:
                        del data[key]
                    if not data:
                        continue
                fig = out.get("metadata", {}).get("fmask", {}).get("figure")
                if isinstance(fig, Mapping):
                    mystnb = cell.metadata.setdefault("mystnb", {})
                    mystnb["figure"] = {k: fig[k] for k in ("caption", "name") if fig.get(k)}
                    if fig.get("alt"):
                        mystnb["image"] = {"alt": fig["alt"]}
                    del out["metadata"]["fmask"]
                outs.append(_scrub(out, replacements) if replacements else out)
            cell["outputs"] = outs
            if cell.metadata.get("mystnb", {}).get("figure"):
                shown = [k for o in outs for k in o.get("data", {}) if k in _RICH_OUTPUTS]
                if len(shown) > 1:  # myst-nb would give every rich output the figure's label (duplicate targets)
                    raise BookError(f"cell {len(cells)} shows a book figure and {len(shown) - 1} other rich "
                                    f"output(s) ({', '.join(shown)}): give `ch.figure(...)` a cell of its own")
        cells.append(cell)
    nb.cells = cells
    nb.metadata.pop("widgets", None)
    pm = nb.metadata.get("papermill")
    if isinstance(pm, dict):
        for key in ("input_path", "output_path"):
            pm.pop(key, None)
        nb.metadata["papermill"] = _scrub(pm, replacements) if replacements else pm
    if status is not None:
        nb.metadata.setdefault("fmask", {})["status"] = status
    return nb


def _error_location(nb) -> str:
    """Describe the first error output of an executed notebook (cell number and source head)."""
    if nb is None:
        return "an unknown cell"
    code_no = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            code_no += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                head = cell.source.strip().splitlines()[0][:80] if cell.source.strip() else ""
                return f"cell {i} (code cell {code_no}, starting {head!r})"
    return "an unknown cell"


def _write_notebook(nb, path: Path) -> Path:
    import nbformat

    from fmask.infra.atomic import atomic_write

    return atomic_write(path, lambda fh: nbformat.write(nb, fh), binary=False)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@contextlib.contextmanager
def _relay_progress(enabled: bool, out: Any = None, poll: float = 1.0) -> Iterator[None]:
    """Stage progress from the kernel to this terminal while the block runs.

    Sets ``$FMASK_PROGRESS_FILE`` (read by :func:`fmask.infra.runtime.progress_bar` in the kernel) to a temporary
    file and copies each new bar state from it to ``out`` (default ``sys.stdout``) as one indented line, so
    training epochs and masks done / left show on the terminal while nothing reaches the executed page.
    """
    from fmask.infra.runtime import PROGRESS_FILE_ENV

    if not enabled:
        yield
        return
    out = out if out is not None else sys.stdout
    prev = os.environ.get(PROGRESS_FILE_ENV)
    with tempfile.TemporaryDirectory(prefix="fmask-progress-") as tmp:
        path = Path(tmp) / "progress.log"
        path.touch()
        stop = threading.Event()

        def pump() -> None:
            pos, last = 0, ""
            while True:
                finished = stop.wait(poll)
                with open(path, "rb") as fh:
                    fh.seek(pos)
                    chunk = fh.read()
                    pos += len(chunk)
                for part in re.split(r"[\r\n]+", _ANSI.sub("", chunk.decode("utf-8", "replace"))):
                    part = part.strip()
                    if part and part != last:
                        out.write(f"\n    {part}\n")
                        out.flush()
                        last = part
                if finished:
                    return

        os.environ[PROGRESS_FILE_ENV] = str(path)
        thread = threading.Thread(target=pump, name="fmask-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            if prev is None:
                os.environ.pop(PROGRESS_FILE_ENV, None)
            else:
                os.environ[PROGRESS_FILE_ENV] = prev
            stop.set()
            thread.join(timeout=10)


@contextlib.contextmanager
def _kernel_stderr(log: Callable[[str], None] | None) -> Iterator[None]:
    """While the block runs, file descriptor 2 (inherited by the kernel process) goes to a temporary file;
    afterwards the lines that are not :data:`BENIGN_KERNEL_NOISE` are passed to ``log``. ``log=None``
    leaves stderr alone."""
    if log is None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines = tmp.read().decode("utf-8", "replace").splitlines()
            for line in lines:
                if not BENIGN_KERNEL_NOISE.search(line):
                    log(f"[kernel] {line}")


def execute_notebook(
    src_py: str | os.PathLike[str],
    out_ipynb: str | os.PathLike[str],
    parameters: dict,
    *,
    cwd: str | os.PathLike[str] | None = None,
    kernel_name: str = "python3",
    cell_timeout: int | None = None,
    progress: bool = False,
    replacements: Sequence[tuple[str, str]] = (),
    kernel_log: Callable[[str], None] | None = None,
) -> Path:
    """Convert ``src_py`` and execute it with papermill; replace ``out_ipynb`` only if every cell ran.

    The run writes into a temporary folder. On success the notebook is post-processed
    (:func:`postprocess_notebook`) and moved onto ``out_ipynb`` atomically, and a stale
    ``NN_name.failed.ipynb`` is removed. On failure (an exception in a cell, a dead kernel, a timeout, Ctrl-C)
    the previous ``out_ipynb`` is left as it was, the partial output is kept as ``NN_name.failed.ipynb`` beside
    it, and :class:`BookError` names the chapter, the cell and both files.

    ``progress``: papermill's per-cell bar on stdout, and the stages' own progress (training epochs, masks
    done / left) relayed from the kernel through ``$FMASK_PROGRESS_FILE`` (:func:`_relay_progress`).
    ``kernel_log``: receives the kernel's stderr lines that are not benign noise (None: the kernel writes to
    this process's stderr). The kernel runs with ``TQDM_DISABLE=1``, so no progress bar reaches the page.
    """
    import nbformat
    import papermill as pm

    src_py, out_ipynb = Path(src_py), Path(out_ipynb)
    name = src_py.stem
    failed_path = out_ipynb.with_name(name + FAILED_SUFFIX)
    with tempfile.TemporaryDirectory(prefix="fmask-nb-") as tmp:
        raw = convert_notebook(src_py, Path(tmp) / f"{name}.in.ipynb")
        tmp_out = Path(tmp) / f"{name}.ipynb"
        prev = os.environ.get("TQDM_DISABLE")
        os.environ["TQDM_DISABLE"] = "1"  # inherited by the kernel: no bars (or widgets) inside the pages
        error: BaseException | None = None
        try:
            with _kernel_stderr(kernel_log), _relay_progress(progress):
                pm.execute_notebook(
                    str(raw),
                    str(tmp_out),
                    parameters=parameters,
                    kernel_name=kernel_name,
                    cwd=str(cwd) if cwd is not None else None,
                    progress_bar={"disable": False, "file": sys.stdout, "leave": False, "desc": name}
                    if progress else False,
                    log_output=False,
                    execution_timeout=cell_timeout,
                )
        except BaseException as exc:  # noqa: BLE001 - cell errors, dead kernels, timeouts, KeyboardInterrupt
            error = exc
        finally:
            if prev is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = prev
        nb = None
        if tmp_out.exists():
            with contextlib.suppress(Exception):
                nb = nbformat.read(str(tmp_out), as_version=4)
        if error is None and nb is not None and notebook_status(tmp_out) == "completed":
            postprocess_notebook(nb, replacements=replacements, status="completed")
            try:
                _write_notebook(nb, out_ipynb)  # the only place a good notebook is (atomically) replaced
            except OSError as exc:
                keep = "the previous notebook is unchanged" if out_ipynb.exists() else "nothing was written"
                raise OSError(exc.errno, f"could not write {out_ipynb} ({exc.strerror or exc}); {keep}",
                              str(out_ipynb)) from exc
            with contextlib.suppress(FileNotFoundError):
                failed_path.unlink()
            return out_ipynb
        kept = "no partial output was written"
        if nb is not None:
            try:
                postprocess_notebook(nb, replacements=replacements, status="failed")
                _write_notebook(nb, failed_path)
                kept = f"partial output kept at {failed_path}"
            except OSError as exc:
                kept = f"could not keep the partial output ({exc.strerror or exc})"
        previous = (f"the previous good notebook {out_ipynb} was left unchanged" if out_ipynb.exists()
                    else f"{out_ipynb} was not written")
        if isinstance(error, pm.PapermillExecutionError):
            what = (f"failed in {_error_location(nb)}, execution count {error.exec_count}: "
                    f"{error.ename}: {error.evalue}")
        elif isinstance(error, KeyboardInterrupt):
            raise KeyboardInterrupt(f"notebook {name} interrupted; {previous}; {kept}") from error
        elif error is not None:
            what = f"could not be executed: {type(error).__name__}: {error}"
        else:
            what = f"did not complete (papermill status {notebook_status(tmp_out)!r})"
        raise BookError(f"notebook {name} {what}\n  {kept}\n  {previous}") from error


# ------------------------------------------------------------------------------------------------ book
def default_out(profile: str) -> Path:
    """The output root for ``profile`` when none is given: the repository for the default profile
    (``cpu``, the committed book), ``<repo>/_build/<profile>`` for every other one."""
    name = report.profile_name(profile)
    return REPO_ROOT if name == DEFAULT_PROFILE else REPO_ROOT / "_build" / name


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


def _resolve_artifacts(artifacts: str | os.PathLike[str] | None) -> str:
    """The artifact store the chapters use: ``artifacts`` made absolute, else :func:`fmask.infra.store.default_root`
    (the one default store, whatever the working directory: ``$FMASK_ARTIFACTS``, ``<repo>/artifacts`` in a
    source checkout, else the user cache)."""
    if artifacts is not None:
        return str(Path(artifacts).resolve())
    from fmask.infra.store import default_root

    return str(default_root())


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` updated with ``values`` inside the block (inherited by the kernels), restored after."""
    prev = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in prev.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def store_snapshot(root: str | os.PathLike[str]) -> dict[str, float]:
    """``{"kind/key": mtime}`` of every finished artifact (metadata sidecar ``<kind>/<key>.json``) in a store
    folder; empty for a missing folder. Two snapshots tell which artifacts a chapter added or rewrote."""
    root = Path(root)
    if not root.is_dir():
        return {}
    out = {}
    for js in root.glob("*/*.json"):
        with contextlib.suppress(OSError):
            out[f"{js.parent.name}/{js.stem}"] = js.stat().st_mtime
    return out


def _fmt_secs(secs: float) -> str:
    return f"{secs:.0f} s" if secs < 90 else f"{secs / 60:.1f} min"


def run_book(
    profile: str = DEFAULT_PROFILE,
    out: str | os.PathLike[str] | None = None,
    data: str | os.PathLike[str] | None = None,
    artifacts: str | os.PathLike[str] | None = None,
    only: str | Iterable[str] | None = None,
    *,
    build: bool = True,
    src_dir: str | os.PathLike[str] | None = None,
    kernel_name: str = "python3",
    cell_timeout: int | None = None,
    extra_parameters: dict | None = None,
    log: Callable[[str], None] = print,
    progress: bool = False,
    quiet_kernel: bool = True,
    threads: int | None = None,
    fresh: bool = False,
) -> BookRun:
    """Execute the chapters in order with papermill and build the book (``fmask book``, ``make book``).

    ``profile``: profile name or YAML path passed to every chapter. ``out``: output root (default
    :func:`default_out`: the repository for ``cpu``, ``_build/<profile>`` otherwise); a root other than the
    repository gets copies of the config, toc and static pages. ``data``: Imagenette root (default
    ``$FMASK_DATA``). ``artifacts``: model/mask store (default :func:`fmask.infra.store.default_root`:
    ``$FMASK_ARTIFACTS``, else ``<repo>/artifacts`` in a source checkout, else ``~/.cache/fmask/artifacts``).
    ``only``: chapters to run (numbers ``4``/``04``, names ``04_dataset_masks`` or ``dataset_masks``,
    comma-separated or a list). ``build=False`` skips ``jupyter-book build``. ``progress``: papermill's
    per-cell bar. ``quiet_kernel``: filter the kernel's stderr through :data:`BENIGN_KERNEL_NOISE`.
    ``threads``: torch threads of every kernel (default :func:`fmask.infra.runtime.book_threads`). ``fresh``: run on
    a new empty artifact store (a temporary folder, removed afterwards; not with ``artifacts``), so every
    model and mask is computed by this code.

    A chapter that fails stops the run with :class:`BookError`; its previous good notebook stays. After the
    chapters (so after chapter 8 has written ``results/claims.json``) the build information and the claims
    ledger the introduction includes are regenerated (:func:`fmask.book.buildinfo.write_build_info`).
    """
    if not isinstance(profile, str) or not profile:
        raise ValueError(f"profile must be a non-empty string (smoke, cpu, paper or a YAML path); got {profile!r}")
    if fresh and artifacts is not None:
        raise ValueError("fresh=True runs on a new empty store: do not also give artifacts")
    from fmask.infra.runtime import book_threads, thread_env

    n_threads = book_threads(threads)  # a bad count fails here, before any folder is made
    src = Path(src_dir) if src_dir is not None else REPO_ROOT / "notebooks"
    names = execution_order(select_notebooks(discover_notebooks(src), only))
    if not names:
        raise BookError(f"no notebooks NN_name.py found in {src}")
    root = Path(out).resolve() if out is not None else default_out(profile)
    book_dir = prepare_book_dir(root)
    results_dir = ensure_writable(report.results_dir_for(book_dir), "results folder")
    data_root = str(Path(data).resolve()) if data is not None else os.environ.get("FMASK_DATA")
    fresh_dir = tempfile.mkdtemp(prefix="fmask-fresh-store-") if fresh else None
    try:
        return _run_book(profile, root, book_dir, results_dir, data_root,
                         _resolve_artifacts(fresh_dir if fresh else artifacts), names, src, n_threads,
                         thread_env(n_threads), build=build, kernel_name=kernel_name, cell_timeout=cell_timeout,
                         extra_parameters=extra_parameters, log=log, progress=progress, quiet_kernel=quiet_kernel,
                         fresh=fresh)
    finally:
        if fresh_dir is not None:
            shutil.rmtree(fresh_dir, ignore_errors=True)


def _run_book(profile, root, book_dir, results_dir, data_root, artifacts_dir, names, src, n_threads, env, *,
              build, kernel_name, cell_timeout, extra_parameters, log, progress, quiet_kernel, fresh) -> BookRun:
    """The body of :func:`run_book` once the folders, store and thread count are settled."""
    profile_name = report.profile_name(profile)
    params = {
        "profile": profile,
        "data_root": data_root,
        "artifacts_dir": artifacts_dir,
        "results_dir": report.RESULTS_SUBDIR,  # relative to the kernel's cwd (the book folder)
    }
    if extra_parameters:
        params.update(extra_parameters)
    replacements = path_replacements({"<data>": data_root, "<artifacts>": artifacts_dir, "<results>": results_dir,
                                      "<book>": book_dir, "<out>": root,
                                      "<profile>": profile if profile.endswith((".yml", ".yaml")) else None})
    previous = report.load_runtimes(results_dir)
    run = BookRun(root=root, book_dir=book_dir, results_dir=results_dir, html_dir=None, profile=profile_name)
    log(f"[fmask book] profile {profile_name!r}: {len(names)} chapter(s) -> {book_dir} "
        f"({n_threads} torch thread{'s' if n_threads != 1 else ''})")
    before = store_snapshot(artifacts_dir)
    if fresh:
        log("[fmask book] fresh: a new empty artifact store; every model and mask is computed now")
    elif before:
        log(f"[fmask book] the artifact store {artifacts_dir} already holds {len(before)} artifact(s); chapters "
            f"load them instead of recomputing (use --fresh to compute everything with this code)")
    t_all = time.perf_counter()
    with _environ(env):  # inherited by every kernel: the same thread count on every machine
        for i, name in enumerate(names, 1):
            last = previous.get(name)
            hint = f" (last run: {_fmt_secs(last['seconds'])})" if last and last.get("ok", True) else ""
            log(f"[fmask book] ({i}/{len(names)}) {name} ...{hint}")
            t0 = time.perf_counter()
            ok = False
            try:
                execute_notebook(
                    src / f"{name}.py",
                    book_dir / f"{name}.ipynb",
                    params,
                    cwd=book_dir,
                    kernel_name=kernel_name,
                    cell_timeout=cell_timeout,
                    progress=progress,
                    replacements=replacements,
                    kernel_log=log if quiet_kernel else None,
                )
                ok = True
            finally:
                secs = time.perf_counter() - t0
                run.runtimes[name] = secs
                with contextlib.suppress(OSError):  # a full disk must not hide the chapter's own error
                    report.record_runtime(results_dir, name, secs, profile=profile_name, ok=ok)
                log(f"[fmask book] ({i}/{len(names)}) {name} {'done' if ok else 'FAILED'} in {_fmt_secs(secs)}")
            run.notebooks.append(name)
            now = store_snapshot(artifacts_dir)
            added = sorted(k for k, m in now.items() if before.get(k) != m)
            if added:
                log(f"[fmask book] ({i}/{len(names)}) {name} computed {len(added)} artifact(s): "
                    f"{', '.join(added[:6])}{' ...' if len(added) > 6 else ''}")
            before = now
    from fmask.book import buildinfo

    (book_dir / "_generated").mkdir(parents=True, exist_ok=True)
    buildinfo.write_build_info(book_dir, repo_root=REPO_ROOT, profile=profile_name, data_root=data_root,
                               notebooks_dir=src)
    if build:
        t0 = time.perf_counter()
        run.html_dir = build_book(root, profile=profile_name, log=log)
        run.sphinx_warnings = len(getattr(build_book, "last_warnings", []))
        secs = time.perf_counter() - t0
        report.record_runtime(results_dir, "book_build", secs, profile=profile_name)
        run.runtimes["book_build"] = secs
        log(f"[fmask book] built {run.html_dir / 'index.html'} in {_fmt_secs(secs)}")
    log(f"[fmask book] total {_fmt_secs(time.perf_counter() - t_all)}")
    return run
