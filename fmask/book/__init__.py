"""The book tooling, kept apart from the library (:mod:`fmask` computes; this package publishes).

* :mod:`fmask.book.runner` -- execute the chapters with papermill (safe re-runs) and build the Jupyter Book;
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
from fmask.book.runner import (
    DEFAULT_PROFILE,
    REPO_ROOT,
    BookRun,
    _resolve_artifacts,  # the artifact folder handed to the chapters (tests check it equals store.default_root)
    build_book,
    convert_notebook,
    default_out,
    discover_notebooks,
    ensure_writable,
    execute_notebook,
    notebook_status,
    postprocess_notebook,
    prepare_book_dir,
    run_book,
    select_notebooks,
    unpublishable,
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
    "ensure_writable",
    "execute_notebook",
    "notebook_status",
    "postprocess_notebook",
    "prepare_book_dir",
    "run_book",
    "select_notebooks",
    "unpublishable",
]
