"""Run the book: choose the chapters, execute them in order, record what they cost, build the site.

* :func:`discover_notebooks` / :func:`select_notebooks` / :func:`execution_order` -- which chapters exist
  (``notebooks/NN_name.py``), which ``--only`` chooses, and the order they run in (the report last);
* :func:`default_out` -- the output root depends on the profile: the default profile (``cpu``) writes the
  committed book in the repository; any other profile writes to ``_build/<profile>/`` unless an output root
  is given, so ``fmask book --profile smoke`` never overwrites the committed chapters;
* :func:`run_book` -- execute every chosen chapter (:func:`fmask.book.execute.execute_notebook`), write the
  build record (:func:`fmask.book.buildinfo.write_build_info`) and build the book
  (:func:`fmask.book.publish.build_book`).

Reproducibility (``docs/guarantees.md``, :mod:`fmask.book.determinism`): every kernel runs with a fixed torch
thread count (:func:`fmask.infra.runtime.book_threads`: ``threads``, else ``$FMASK_THREADS``, else 2), because
the CPU thread count changes trained weights; the runner says how many artifacts the store already held and
how many each chapter added (a result made from an artifact computed by other code is the usual reason a book
differs from a fresh clone's), and ``fresh=True`` (``fmask book --fresh``) runs on a new, empty store.

What the person at the terminal gets: one progress line per chapter with the time it took last time (from
the runtimes in the results folder), and the total time at the end.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from fmask.book.chapter import BOOK_PROFILE as DEFAULT_PROFILE  # the profile of the committed book
from fmask.book.errors import BookError
from fmask.book.execute import execute_notebook, path_replacements
from fmask.book.publish import build_book, ensure_writable, prepare_book_dir
from fmask.experiment import results as report
from fmask.infra.host import REPO_ROOT

__all__ = [
    "REPO_ROOT",
    "DEFAULT_PROFILE",
    "READS_ALL_RESULTS",
    "BookRun",
    "discover_notebooks",
    "execution_order",
    "select_notebooks",
    "default_out",
    "resolve_artifacts",
    "store_snapshot",
    "run_book",
]

NOTEBOOK_RE = re.compile(r"^(\d\d)_[A-Za-z0-9_]+$")


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


def default_out(profile: str) -> Path:
    """The output root for ``profile`` when none is given: the repository for the default profile
    (``cpu``, the committed book), ``<repo>/_build/<profile>`` for every other one."""
    name = report.profile_name(profile)
    return REPO_ROOT if name == DEFAULT_PROFILE else REPO_ROOT / "_build" / name


def resolve_artifacts(artifacts: str | os.PathLike[str] | None) -> str:
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
    per-cell bar. ``quiet_kernel``: filter the kernel's stderr through :data:`fmask.book.execute.BENIGN_KERNEL_NOISE`.
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
                         resolve_artifacts(fresh_dir if fresh else artifacts), names, src, n_threads,
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
                               notebooks_dir=src, threads=n_threads)
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
