"""The one set-up every chapter starts with, and its bookkeeping helpers.

Every notebook in ``notebooks/`` begins with the same two lines after its ``parameters`` cell::

    from fmask.book import chapter
    ch = chapter.open(profile=profile, data_root=data_root, artifacts_dir=artifacts_dir,
                      results_dir=results_dir, device=device)

:func:`open` glues the profile name (``{glue:text}`profile```), silences the warnings that are noise on a
page, and returns a :class:`Chapter`. Its bookkeeping methods return ``None``, so a call as the last line
of a cell prints nothing:

* ``ch.glue(name, value, fmt=None)`` / ``ch.glue_pct(name, fraction)`` -- a value for the prose (never
  displayed where it is computed); ``None`` becomes ``"n/a"``;
* ``ch.table(rows, columns=None, digits=1, notes=())`` -- a Markdown table (list of dicts);
* ``ch.save(name, values, meta=None)`` -- a result file (:func:`fmask.experiment.results.save_result`, profile and seed
  recorded);
* ``ch.figure(fig, name, caption, alt=None)`` -- show a Matplotlib figure as a numbered figure with caption
  and alt text (a high-dpi PNG, displayed at its size in inches at 96 px/in);
* ``ch.timed(stage)`` -- record the time of a block in the results folder.

Profile values are read through :meth:`Chapter.setting` (dict profiles and typed profile objects alike), so
a change of the profile API is a change here, not in eight notebooks. The pipeline :class:`fmask.experiment.run.Run`
is created on first use of :attr:`Chapter.run`.
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from fmask.experiment import results as report

__all__ = ["Chapter", "open", "figure_png", "profile_banner", "BOOK_PROFILE"]

_SCREEN_DPI = 96.0


def figure_png(fig) -> tuple[bytes, dict[str, int]]:
    """A Matplotlib figure as PNG bytes at :data:`fmask.plots.style.PNG_DPI` (2 × 96) dpi, and its display size ``{"width", "height"}``
    in CSS pixels (96 px per inch of figure size), so text set in points keeps its size on the page."""
    from fmask.plots.style import PNG_DPI

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI, bbox_inches="tight")
    data = buf.getvalue()
    import struct

    w, h = struct.unpack(">II", data[16:24])  # PNG IHDR: width, height in pixels
    scale = PNG_DPI / _SCREEN_DPI
    return data, {"width": int(round(w / scale)), "height": int(round(h / scale))}


class Chapter:
    """A chapter's context: profile, folders, the (lazy) pipeline run, and the bookkeeping helpers.

    Args mirror the papermill parameters every chapter declares: ``profile`` (name or YAML path),
    ``data_root`` (Imagenette; None -> profile / ``$FMASK_DATA``), ``artifacts_dir`` (None ->
    ``$FMASK_ARTIFACTS`` or ``./artifacts``), ``results_dir`` (result files; the runner passes ``results``,
    relative to the book folder) and ``device`` (None -> the profile's).
    """

    def __init__(self, profile: str | os.PathLike[str], *, data_root: str | os.PathLike[str] | None = None,
                 artifacts_dir: str | os.PathLike[str] | None = None,
                 results_dir: str | os.PathLike[str] = report.RESULTS_SUBDIR,
                 device: str | None = None) -> None:
        if profile in (None, ""):
            raise ValueError("profile must be a profile name (smoke, cpu, paper) or a YAML path")
        self.profile_arg = os.fspath(profile)
        self.name = report.profile_name(self.profile_arg)
        self.data_root = data_root
        self.artifacts_dir = artifacts_dir
        self.results_dir = Path(results_dir)
        self.device = device
        self._run = None
        self._profile = None

    def __repr__(self) -> str:  # no machine-local paths on the page
        return f"Chapter(profile={self.name!r})"

    # ------------------------------------------------------------------------------- profile and run
    @property
    def run(self):
        """The :class:`fmask.experiment.run.Run` of this chapter (created on first use)."""
        if self._run is None:
            from fmask.experiment.run import Run

            self._run = Run.from_profile(self.profile_arg, data_root=self.data_root, artifacts=self.artifacts_dir,
                                         results_dir=self.results_dir, device=self.device)
        return self._run

    @property
    def profile(self):
        """The loaded profile (the run's, if a run exists)."""
        if self._run is not None:
            return self._run.profile
        if self._profile is None:
            from fmask.experiment.profiles import load_profile

            self._profile = load_profile(self.profile_arg)
        return self._profile

    def setting(self, section: str, key: str, default: Any = None) -> Any:
        """``profile[section][key]`` (or ``profile.section.key`` for typed profiles), ``default`` if unset/None."""
        prof = self.profile
        sec = prof.get(section, {}) if isinstance(prof, Mapping) else getattr(prof, section, None)
        if sec is None:
            return default
        value = sec.get(key, default) if isinstance(sec, Mapping) else getattr(sec, key, default)
        return default if value is None else value

    @property
    def seed(self) -> int:
        prof = self.profile
        return int(prof["seed"] if isinstance(prof, Mapping) else prof.seed)

    # ------------------------------------------------------------------------------------ bookkeeping
    def glue(self, name: str, value: Any, fmt: str | None = None) -> None:
        """Glue ``value`` (formatted with ``fmt`` if given; ``None``/NaN -> ``"n/a"``) for ``{glue:text}`name```."""
        from myst_nb import glue

        if value is None or (isinstance(value, float) and value != value):
            value = "n/a"
        elif fmt is not None:
            value = format(value, fmt)
        glue(name, value, display=False)

    def glue_pct(self, name: str, fraction: float | None, digits: int = 1) -> None:
        """Glue a fraction in [0, 1] as a percentage string (``0.873`` -> ``"87.3%"``); None/NaN -> ``"n/a"``."""
        ok = fraction is not None and fraction == fraction
        self.glue(name, f"{100 * float(fraction):.{digits}f}%" if ok else None)

    def table(self, rows: Sequence[Mapping[str, Any]] | Any, columns: Sequence[str] | None = None, *,
              digits: int = 1, notes: Sequence[str] = ()) -> None:
        """Display ``rows`` as a Markdown table (numbers with ``digits`` decimals, None -> n/a) and ``notes``
        as lines below it."""
        from IPython.display import Markdown, display

        from fmask.book.tables import table_markdown

        md = table_markdown(rows, digits=digits, columns=list(columns) if columns else None)
        if notes:
            md += "\n\n" + "\n".join(f"{n}  " for n in notes)
        display(Markdown(md))

    def markdown(self, text: str) -> None:
        """Display Markdown text."""
        from IPython.display import Markdown, display

        display(Markdown(text))

    def save(self, name: str, values: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> None:
        """Write the result file ``<results>/<name>.json`` (profile, seed and ``meta`` recorded)."""
        m = {"seed": self.seed, **dict(meta or {})}
        report.save_result(self.results_dir, name, values, profile=self.name, meta=m)

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Record the wall-clock time of the block as ``<results>/runtimes/<stage>.json``."""
        with report.timed(self.results_dir, stage, profile=self.name):
            yield

    def figure(self, fig, name: str, caption: str, alt: str | None = None) -> None:
        """Show ``fig`` as a numbered figure: label ``name`` (``{numref}`name```), ``caption`` (MyST allowed)
        and ``alt`` text (default: the caption). The runner turns the output's ``fmask`` metadata into
        myst-nb cell metadata (``mystnb.figure`` / ``mystnb.image.alt``); in plain Jupyter the figure simply
        shows."""
        from IPython.display import display

        if not name or not caption:
            raise ValueError("a book figure needs a name (label) and a caption")
        data, size = figure_png(fig)
        alt = alt or caption
        display({"image/png": data, "text/plain": f"Figure: {alt}"}, raw=True,
                metadata={"image/png": size, "fmask": {"figure": {"name": name, "caption": caption, "alt": alt}}})


def open(profile: str | os.PathLike[str], *, data_root: str | os.PathLike[str] | None = None,  # noqa: A001
         artifacts_dir: str | os.PathLike[str] | None = None,
         results_dir: str | os.PathLike[str] = report.RESULTS_SUBDIR, device: str | None = None,
         **ignored: Any) -> Chapter:
    """Open a chapter from its papermill parameters: check the artifact store is writable, glue ``profile``,
    silence page noise, return a :class:`Chapter`. Extra keyword arguments (chapter-specific parameters) are
    ignored.

    ``artifacts_dir`` (None: :func:`fmask.infra.store.default_root`) goes through the same check as the command
    line (:meth:`fmask.infra.store.ArtifactStore.check_writable`): a folder that cannot be created or written
    raises :class:`fmask.infra.store.StoreError` (an ``OSError``) here, in one line naming the folder, before
    any data is loaded or model trained.
    """
    from fmask.infra.store import ArtifactStore

    ArtifactStore(artifacts_dir).check_writable()
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
    os.environ.setdefault("TQDM_DISABLE", "1")  # a chapter run by hand in Jupyter: no widget bars either
    from fmask.infra.runtime import apply_thread_env

    apply_thread_env()  # the runner's fixed thread count ($FMASK_THREADS): CPU results depend on it
    ch = Chapter(profile, data_root=data_root, artifacts_dir=artifacts_dir, results_dir=results_dir, device=device)
    ch.glue("profile", ch.name)
    banner = profile_banner(ch.name)
    if banner:
        from IPython.display import Markdown, display

        display(Markdown(banner))
    return ch


#: the profile the committed book was executed with (:data:`fmask.book.runner.DEFAULT_PROFILE`)
BOOK_PROFILE = "cpu"


def profile_banner(name: str) -> str | None:
    """The note a chapter shows when it runs with another profile than the book's: which profile ran, that its
    numbers are not the book's, and how to get them. None for the book's own profile."""
    if name == BOOK_PROFILE:
        return None
    return (f"**This chapter ran with the `{name}` profile**, a small run that finishes in minutes; its numbers "
            f"are not the book's. The book's numbers come from the `{BOOK_PROFILE}` profile: set "
            f"`profile = \"{BOOK_PROFILE}\"` in the parameters cell, or run `papermill ... -p profile "
            f"{BOOK_PROFILE}` or `fmask book --profile {BOOK_PROFILE}` (one to two hours on a 2-core CPU).")
