"""Run the notebooks with papermill and build the Jupyter Book.

Layout (relative to an *output root*, the repository root by default, or ``out``)::

    <root>/_config.yml, <root>/_toc.yml      book configuration (copied into ``out`` when given)
    <root>/book/intro.md, other *.md          static pages (copied into ``out``)
    <root>/book/NN_name.ipynb                 executed notebooks (from notebooks/NN_name.py via jupytext)
    <root>/book/results/                      result files and per-notebook runtimes (fmask.report)
    <root>/_build/html/index.html             the built book

:func:`run_book` converts every ``notebooks/NN_*.py`` (jupytext percent format) to a notebook, executes it
with papermill in order, passing the parameters ``profile``, ``data_root``, ``artifacts_dir`` and
``results_dir`` (each notebook has a cell tagged ``parameters``), records the runtime of each notebook,
and then runs ``jupyter-book build`` with execution off. A failing cell raises :class:`BookError`
naming the notebook and the cell; the partly executed notebook is kept where it was written.

:func:`check_html` opens every built page in headless Chromium and reports images that did not load and
error outputs / tracebacks.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import json
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
from typing import Callable, Iterable, Sequence

import yaml

from fmask import report

__all__ = [
    "REPO_ROOT",
    "BookError",
    "BookRun",
    "discover_notebooks",
    "select_notebooks",
    "convert_notebook",
    "execute_notebook",
    "prepare_book_dir",
    "build_book",
    "run_book",
    "find_chromium",
    "check_html",
    "PageCheck",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_RE = re.compile(r"^(\d\d)_[A-Za-z0-9_]+$")
DEFAULT_PROFILE = "cpu"
STATIC_SUFFIXES = (".md", ".png", ".jpg", ".jpeg", ".svg", ".bib")


class BookError(RuntimeError):
    """A notebook failed (names the notebook and cell) or the book did not build."""


@dataclass
class BookRun:
    """What :func:`run_book` did: where things are, which notebooks ran, how long each took (s)."""

    root: Path
    book_dir: Path
    results_dir: Path
    html_dir: Path | None
    profile: str
    notebooks: list[str] = field(default_factory=list)
    runtimes: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- notebooks
def discover_notebooks(src_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Names (no suffix) of the jupytext sources ``NN_name.py`` in ``src_dir`` (default notebooks/), in order."""
    src = Path(src_dir) if src_dir is not None else REPO_ROOT / "notebooks"
    if not src.is_dir():
        raise BookError(f"notebook source folder {src} does not exist")
    return sorted(p.stem for p in src.glob("*.py") if NOTEBOOK_RE.match(p.stem))


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


def convert_notebook(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """jupytext percent ``.py`` -> ``.ipynb`` (no outputs), with the python3 kernel spec."""
    import jupytext
    import nbformat

    nb = jupytext.read(str(src))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    nb.metadata.pop("jupytext", None)
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise BookError(f"{src} has no cell tagged 'parameters' (papermill needs one)")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(dest))
    return dest


def _error_location(nb_path: Path) -> str:
    """Describe the first error output of an executed notebook (cell number and source head)."""
    try:
        import nbformat

        nb = nbformat.read(str(nb_path), as_version=4)
    except Exception:
        return "unknown cell"
    code_no = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            code_no += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                head = cell.source.strip().splitlines()[0][:80] if cell.source.strip() else ""
                return f"cell {i} (code cell {code_no}, starting {head!r})"
    return "unknown cell"


def execute_notebook(
    src_py: str | os.PathLike[str],
    out_ipynb: str | os.PathLike[str],
    parameters: dict,
    *,
    cwd: str | os.PathLike[str] | None = None,
    kernel_name: str = "python3",
    cell_timeout: int | None = None,
) -> Path:
    """Convert ``src_py`` and execute it with papermill into ``out_ipynb``; raise :class:`BookError` on failure.

    The output notebook is written even when a cell fails (papermill saves it with the error), so it
    can be inspected.
    """
    import papermill as pm

    src_py, out_ipynb = Path(src_py), Path(out_ipynb)
    name = src_py.stem
    with tempfile.TemporaryDirectory(prefix="fmask-nb-") as tmp:
        raw = convert_notebook(src_py, Path(tmp) / f"{name}.ipynb")
        out_ipynb.parent.mkdir(parents=True, exist_ok=True)
        # Progress bars are for people watching; in executed pages they are noise (and, without a widget
        # front end, warnings). The kernel inherits this environment; users' own runs keep their bars.
        prev = os.environ.get("TQDM_DISABLE")
        os.environ["TQDM_DISABLE"] = "1"
        try:
            pm.execute_notebook(
                str(raw),
                str(out_ipynb),
                parameters=parameters,
                kernel_name=kernel_name,
                cwd=str(cwd) if cwd is not None else None,
                progress_bar=False,
                log_output=False,
                execution_timeout=cell_timeout,
            )
        except pm.PapermillExecutionError as exc:
            where = _error_location(out_ipynb)
            raise BookError(
                f"notebook {name} failed in {where}, execution count {exc.exec_count}: "
                f"{exc.ename}: {exc.evalue}\n  partly executed notebook kept at {out_ipynb}"
            ) from exc
        except Exception as exc:  # kernel death, timeouts, ...
            raise BookError(
                f"notebook {name} could not be executed: {type(exc).__name__}: {exc}\n"
                f"  partly executed notebook (if any) at {out_ipynb}"
            ) from exc
        finally:
            if prev is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = prev
    return out_ipynb


# ------------------------------------------------------------------------------------------------ book
def _static_files(src_book: Path) -> list[Path]:
    return sorted(p for p in src_book.iterdir() if p.is_file() and p.suffix.lower() in STATIC_SUFFIXES)


def prepare_book_dir(out_root: Path, source_root: Path = REPO_ROOT) -> Path:
    """Copy ``_config.yml``, ``_toc.yml`` and the static pages of ``source_root/book`` to ``out_root``.

    Nothing is copied when ``out_root`` is ``source_root``. Returns ``out_root/book``.
    """
    out_root, source_root = Path(out_root).resolve(), Path(source_root).resolve()
    book_dir = out_root / "book"
    book_dir.mkdir(parents=True, exist_ok=True)
    if out_root != source_root:
        for cfg in ("_config.yml", "_toc.yml"):
            shutil.copy2(source_root / cfg, out_root / cfg)
        for f in _static_files(source_root / "book"):
            shutil.copy2(f, book_dir / f.name)
    return book_dir


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


def build_book(
    root: str | os.PathLike[str],
    *,
    profile: str,
    log: Callable[[str], None] = print,
    timeout: float | None = 1800,
) -> Path:
    """``jupyter-book build`` of ``root`` (execution off) into ``root/_build/html``; returns that folder.

    The build uses a generated config (the profile is available to pages as the MyST substitution
    ``{{ profile }}``) and a toc restricted to the chapters that exist. Raises :class:`BookError` with
    the tail of the build log on failure.
    """
    root = Path(root).resolve()
    with open(root / "_config.yml", encoding="utf-8") as fh:
        config = yaml.safe_load(fh) or {}
    with open(root / "_toc.yml", encoding="utf-8") as fh:
        toc = yaml.safe_load(fh) or {}
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    parse = config.setdefault("parse", {})
    subs = dict(parse.get("myst_substitutions") or {})
    subs["profile"] = profile
    parse["myst_substitutions"] = subs
    gen = root / "_build" / ".fmask"
    gen.mkdir(parents=True, exist_ok=True)
    cfg_path, toc_path = gen / "_config.yml", gen / "_toc.yml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    toc_path.write_text(yaml.safe_dump(_filtered_toc(toc, root), sort_keys=False), encoding="utf-8")
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "jupyter_book.cli.main"]
    cmd += ["build", str(root), "--all", "--config", str(cfg_path), "--toc", str(toc_path)]
    log(f"[fmask book] building the book: {' '.join(cmd)}")
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout)
    html = root / "_build" / "html"
    if proc.returncode != 0 or not (html / "index.html").exists():
        tail = "\n".join((proc.stdout + "\n" + proc.stderr).strip().splitlines()[-40:])
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}):\n{tail}")
    return html


def _resolve_artifacts(artifacts: str | os.PathLike[str] | None) -> str:
    if artifacts is not None:
        return str(Path(artifacts).resolve())
    env = os.environ.get("FMASK_ARTIFACTS")
    return str(Path(env).resolve()) if env else str(REPO_ROOT / "artifacts")


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
) -> BookRun:
    """Execute the notebooks in order with papermill and build the book (``fmask book``, ``make book``).

    ``profile``: profile name or YAML path passed to every notebook. ``out``: output root (default: the
    repository, so ``book/`` receives the executed notebooks); a different folder gets copies of the
    config, toc and static pages, so tests never overwrite the committed notebooks. ``data``: Imagenette
    root (default: ``$FMASK_DATA``, else the notebooks' own default). ``artifacts``: model/mask store
    (default ``$FMASK_ARTIFACTS`` or ``<repo>/artifacts``). ``only``: subset of notebooks (names or NN
    prefixes, comma-separated). ``build=False`` skips ``jupyter-book build``.
    """
    if not isinstance(profile, str) or not profile:
        raise ValueError(f"profile must be a non-empty string (smoke, cpu, paper or a YAML path); got {profile!r}")
    src = Path(src_dir) if src_dir is not None else REPO_ROOT / "notebooks"
    names = select_notebooks(discover_notebooks(src), only)
    if not names:
        raise BookError(f"no notebooks NN_name.py found in {src}")
    root = Path(out).resolve() if out is not None else REPO_ROOT
    book_dir = prepare_book_dir(root)
    results_dir = report.results_dir_for(book_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    data_root = str(Path(data).resolve()) if data is not None else os.environ.get("FMASK_DATA")
    profile_name = Path(profile).stem if profile.endswith((".yml", ".yaml")) else profile
    params = {
        "profile": profile,
        "data_root": data_root,
        "artifacts_dir": _resolve_artifacts(artifacts),
        "results_dir": str(results_dir),
    }
    if extra_parameters:
        params.update(extra_parameters)
    run = BookRun(root=root, book_dir=book_dir, results_dir=results_dir, html_dir=None, profile=profile_name)
    log(f"[fmask book] profile {profile!r}: {len(names)} notebook(s) -> {book_dir}")
    t_all = time.perf_counter()
    for i, name in enumerate(names, 1):
        log(f"[fmask book] ({i}/{len(names)}) {name} ...")
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
            )
            ok = True
        finally:
            secs = time.perf_counter() - t0
            report.record_runtime(results_dir, name, secs, profile=profile_name, ok=ok)
            run.runtimes[name] = secs
            log(f"[fmask book] ({i}/{len(names)}) {name} {'done' if ok else 'FAILED'} in {secs:.1f} s")
        run.notebooks.append(name)
    if build:
        t0 = time.perf_counter()
        run.html_dir = build_book(root, profile=profile_name, log=log)
        secs = time.perf_counter() - t0
        report.record_runtime(results_dir, "book_build", secs, profile=profile_name)
        run.runtimes["book_build"] = secs
        log(f"[fmask book] built {run.html_dir / 'index.html'} in {secs:.1f} s")
    log(f"[fmask book] total {time.perf_counter() - t_all:.1f} s")
    return run


# --------------------------------------------------------------------------------------- html checking
@dataclass
class PageCheck:
    """Result of loading one built page in Chromium."""

    page: str
    loaded: bool
    images: int
    broken_images: list[str]
    errors: list[str]

    @property
    def ok(self) -> bool:
        return self.loaded and not self.broken_images and not self.errors


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable (``$FMASK_CHROMIUM``, ``/usr/bin/chromium``, ...) or None."""
    cands = [os.environ.get("FMASK_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
             shutil.which("chromium-browser"), shutil.which("google-chrome")]
    for c in cands:
        if c and Path(c).exists() and os.access(c, os.X_OK):
            return c
    return None


_CHECK_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>fmask page check</title></head>
<body><pre id="fmask-result">pending</pre>
<iframe id="f" style="width:1200px;height:900px"></iframe>
<script>
const pages = __PAGES__;
const frame = document.getElementById('f');
const out = [];
function wait(ms) { return new Promise(r => setTimeout(r, ms)); }
function load(url) {
  return new Promise(resolve => {
    let done = false;
    frame.onload = () => { if (!done) { done = true; resolve(true); } };
    setTimeout(() => { if (!done) { done = true; resolve(false); } }, 20000);
    frame.src = url;
  });
}
async function imagesSettled(doc) {
  const imgs = Array.from(doc.images);
  for (let k = 0; k < 50 && imgs.some(i => !i.complete); k++) await wait(100);
  return imgs;
}
async function run() {
  for (const p of pages) {
    const ok = await load(p);
    const rec = {page: p, loaded: ok, images: 0, broken: [], errors: []};
    try {
      const doc = frame.contentDocument;
      const imgs = await imagesSettled(doc);
      rec.images = imgs.length;
      for (const im of imgs) {
        if (!(im.complete && im.naturalWidth > 0)) rec.broken.push(im.getAttribute('src') || '(no src)');
      }
      const bad = doc.querySelectorAll('.traceback, .output.error, .output_error, div.output.traceback');
      for (const b of bad) rec.errors.push('error output: ' + b.textContent.trim().slice(0, 200));
      const text = doc.body ? doc.body.innerText : '';
      if (text.includes('Traceback (most recent call last)')) rec.errors.push('traceback text in page');
      if (!doc.body || text.trim().length === 0) rec.errors.push('empty page');
    } catch (e) { rec.loaded = false; rec.errors.push('could not inspect: ' + e); }
    out.push(rec);
  }
  document.getElementById('fmask-result').textContent = 'RESULT:' + JSON.stringify(out) + ':END';
}
run();
</script></body></html>
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args, **kwargs) -> None:  # noqa: D401 - silence the request log
        pass


@contextlib.contextmanager
def _serve(directory: Path):
    """Serve ``directory`` on 127.0.0.1 (random free port) in a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _is_redirect(page: Path) -> bool:
    """True for Sphinx's root ``index.html`` that only redirects (meta refresh) to the first page."""
    head = page.read_text(encoding="utf-8", errors="replace")[:2000].lower()
    return 'http-equiv="refresh"' in head


def check_html(
    html_dir: str | os.PathLike[str],
    *,
    chromium: str | None = None,
    pages: Sequence[str] | None = None,
    timeout: float = 240,
) -> list[PageCheck]:
    """Load every built page (or ``pages``, paths relative to ``html_dir``) in headless Chromium.

    Serves ``html_dir`` from a local http.server bound to 127.0.0.1, loads a small check page that opens
    each page in an iframe and records, per page, whether it loaded, its images that have
    ``naturalWidth == 0`` and any error output / traceback; the result is read back with ``--dump-dom``.
    Raises :class:`BookError` if Chromium is missing or returns no result.
    """
    html_dir = Path(html_dir).resolve()
    exe = chromium or find_chromium()
    if exe is None:
        raise BookError("no Chromium found (install the Debian package 'chromium' or set FMASK_CHROMIUM)")
    if pages is None:
        pages = sorted(
            str(p.relative_to(html_dir))
            for p in html_dir.rglob("*.html")
            if not any(part.startswith(("_", ".")) for part in p.relative_to(html_dir).parts)
            and p.name not in ("search.html", "genindex.html", "fmask-check.html")
            and not _is_redirect(p)
        )
    if not pages:
        raise BookError(f"no HTML pages found in {html_dir}")
    check_name = "fmask-check.html"
    (html_dir / check_name).write_text(_CHECK_PAGE.replace("__PAGES__", json.dumps(["/" + p for p in pages])),
                                       encoding="utf-8")
    try:
        with _serve(html_dir) as base, tempfile.TemporaryDirectory(prefix="fmask-chromium-") as profile_dir:
            cmd = [
                exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={profile_dir}",
                f"--virtual-time-budget={int(30000 * len(pages))}", "--dump-dom", f"{base}/{check_name}",
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    finally:
        with contextlib.suppress(FileNotFoundError):
            (html_dir / check_name).unlink()
    m = re.search(r"RESULT:(.*?):END", proc.stdout, flags=re.S)
    if not m:
        raise BookError(
            f"Chromium returned no check result (exit {proc.returncode}); stderr tail:\n"
            + "\n".join(proc.stderr.strip().splitlines()[-15:])
        )
    import html as _html

    records = json.loads(_html.unescape(m.group(1)))
    return [
        PageCheck(page=r["page"].lstrip("/"), loaded=bool(r["loaded"]), images=int(r["images"]),
                  broken_images=list(r["broken"]), errors=list(r["errors"]))
        for r in records
    ]



def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fmask.book`` (same options as ``fmask book``): run the notebooks and build the book."""
    import argparse

    ap = argparse.ArgumentParser(prog="fmask book", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default=DEFAULT_PROFILE, help="profile name (smoke, cpu, paper) or YAML path")
    ap.add_argument("--out", default=None, help="output root (default: the repository; book/ gets the notebooks)")
    ap.add_argument("--data", default=None, help="Imagenette root (default: $FMASK_DATA)")
    ap.add_argument("--artifacts", default=None, help="artifact store (default: $FMASK_ARTIFACTS or ./artifacts)")
    ap.add_argument("--only", default=None, help="comma-separated notebook names or NN prefixes")
    ap.add_argument("--no-build", action="store_true", help="execute the notebooks but skip jupyter-book build")
    args = ap.parse_args(argv)
    try:
        run_book(profile=args.profile, out=args.out, data=args.data, artifacts=args.artifacts,
                 only=args.only, build=not args.no_build)
    except (BookError, ValueError) as exc:
        print(f"fmask book: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
