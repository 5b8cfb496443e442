"""The book tooling, kept apart from the library (:mod:`fmask` computes; this package publishes).

* :mod:`fmask.book.runner` -- choose the chapters, execute them in order (``fmask book``);
* :mod:`fmask.book.execute` -- one chapter through papermill (safe re-runs) and the notebook the reader gets;
* :mod:`fmask.book.publish` -- the Jupyter Book build (only completed chapters are published);
* :mod:`fmask.book.buildinfo` -- the build record: code, packages, machine, profile, data;
* :mod:`fmask.book.determinism` / :mod:`fmask.book.drift` -- compare two runs' result files (bitwise on one
  CPU kind, by drift against a reference built on another);
* :mod:`fmask.book.chapter` -- the one set-up every chapter starts with (``ch = chapter.open(...)``) and its
  bookkeeping helpers (glue, tables, result files, numbered figures);
* :mod:`fmask.book.tables` -- Markdown tables: paper vs ours (with footnoted sources), runtimes per chapter,
  profile settings that differ from the paper's;
* :mod:`fmask.book.findings` -- the numbers behind the report chapter's "text vs code" section;
* :mod:`fmask.book.html` -- the headless-Chromium check of a built book.

The command line is ``fmask book`` (:mod:`fmask.cli`).
"""
from __future__ import annotations

from fmask.book import chapter
from fmask.book.errors import BookError
from fmask.book.html import PageCheck, check_html, find_chromium
from fmask.book.execute import convert_notebook, execute_notebook, notebook_status, postprocess_notebook
from fmask.book.publish import build_book, ensure_writable, prepare_book_dir, unpublishable
from fmask.book.runner import (
    DEFAULT_PROFILE,
    REPO_ROOT,
    BookRun,
    default_out,
    discover_notebooks,
    resolve_artifacts,
    run_book,
    select_notebooks,
)

__all__ = [
    "chapter",
    "BookError",
    "PageCheck",
    "check_html",
    "find_chromium",
    "DEFAULT_PROFILE",
    "REPO_ROOT",
    "BookRun",
    "build_book",
    "convert_notebook",
    "default_out",
    "discover_notebooks",
    "resolve_artifacts",
    "ensure_writable",
    "execute_notebook",
    "notebook_status",
    "postprocess_notebook",
    "prepare_book_dir",
    "run_book",
    "select_notebooks",
    "unpublishable",
]
