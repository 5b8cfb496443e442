"""Execute one chapter with papermill and make the executed notebook fit for the reader.

* :func:`convert_notebook` -- jupytext percent ``notebooks/NN_name.py`` -> ``.ipynb`` (the ``parameters`` cell
  tagged ``remove-cell``);
* :func:`execute_notebook` -- run it into a temporary file. Only a run that completes replaces
  ``book/NN_name.ipynb`` (atomically); a failed or killed run leaves the previous good notebook untouched and
  keeps its own partial output beside it as ``book/NN_name.failed.ipynb``;
* :func:`notebook_status` -- papermill's verdict on an executed notebook (only ``completed`` is published);
* :func:`postprocess_notebook` -- what the reader gets: the injected-parameters cell papermill adds is
  removed, the ``parameters`` cell is tagged ``remove-cell``, widget outputs and widget metadata are dropped,
  machine-local paths in metadata and outputs are replaced by placeholders (``<data>``, ``<artifacts>``,
  ``<repo>``; :func:`path_replacements`), and figures shown with :meth:`fmask.book.chapter.Chapter.figure`
  become numbered MyST figures with caption and alt text.

What the person at the terminal gets while a chapter runs: papermill's per-cell bar (on stdout), the stages'
own progress relayed from the kernel, and the kernel's stderr filtered of :data:`BENIGN_KERNEL_NOISE`.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from fmask.book.errors import BookError
from fmask.infra.host import REPO_ROOT

__all__ = [
    "FAILED_SUFFIX",
    "BENIGN_KERNEL_NOISE",
    "convert_notebook",
    "notebook_status",
    "path_replacements",
    "postprocess_notebook",
    "execute_notebook",
]

FAILED_SUFFIX = ".failed.ipynb"
#: kernel stderr lines that are noise for the person running the book (shutdown, debugger, widget hints)
BENIGN_KERNEL_NOISE = re.compile(
    r"KeyboardInterrupt|^\s*$|IProgress not found|frozen modules|Xfrozen_modules|PYDEVD_DISABLE_FILE_VALIDATION"
    r"|Debugger warning|debugging will be slow|make the debugger|font cache|^\s*warnings\.warn\(|^\s*0\.00s - "
    r"|running over TCP without encryption"
)



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
