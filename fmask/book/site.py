"""The book as a web site: repository / Binder links from one setting, and checks of the rendered maths.

**One place for the repository URL.** ``_config.yml``'s ``repository.url`` is the only place the book's public
repository is written (with ``repository.branch``). This module is loaded by the build as a Sphinx extension
(``sphinx.extra_extensions: [fmask.book.site]``) and, at ``config-inited``:

* with a URL: turns on the repository button and keeps the launch buttons of ``launch_buttons``
  (Binder at ``launch_buttons.binderhub_url``) on every notebook page;
* without one (the default while the URL is not known): turns the repository button off and drops the launch
  providers that need a repository, so the build neither links to a wrong repository nor crashes
  (sphinx-book-theme fails on notebook pages when a Binder URL is set without a repository URL).

It also makes sure the pages generated at build time exist (``book/_generated/build_info.md`` and
``claims_table.md``, included by ``book/intro.md``): the runner writes them with
:func:`fmask.book.buildinfo.write_build_info`; a bare ``jupyter-book build`` gets a fallback written here, from what
the build knows (the ``profile`` substitution, ``$FMASK_DATA``), so the includes never break.

:func:`binder_url` / :func:`readme_badge` give the Binder link and README badge for a repository URL (the test
suite checks the README against ``_config.yml``).

**Maths offline.** :func:`render_dom` loads a page in headless Chromium with every network request sent to a
dead proxy (so nothing can come from a CDN) and returns the DOM after scripts ran; :func:`raw_tex` lists the TeX
delimiters (``\\(``, ``\\[``, ``$$``) left in the visible text, i.e. maths MathJax did not typeset.
"""
from __future__ import annotations

import html.parser
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote

import yaml

from fmask.infra.host import REPO_ROOT

__all__ = [
    "REPO_ROOT",
    "repository_settings",
    "binder_url",
    "readme_badge",
    "configure_site",
    "ensure_generated_pages",
    "setup",
    "render_dom",
    "visible_text",
    "raw_tex",
    "check_maths",
]

MYBINDER = "https://mybinder.org"
BADGE_IMAGE = "https://mybinder.org/badge_logo.svg"
# Launch providers that need the repository URL (sphinx-book-theme's launch_buttons keys; thebe runs on Binder).
_REPO_LAUNCHERS = ("binderhub_url", "jupyterhub_url", "colab_url", "deepnote_url", "thebe")


# --------------------------------------------------------------------------------------- repository
def repository_settings(config_path: str | os.PathLike[str] = REPO_ROOT / "_config.yml") -> dict[str, str]:
    """``{"url", "branch", "binderhub_url"}`` from a Jupyter Book ``_config.yml`` (empty strings when unset).

    Raises ``ValueError`` if the file has no ``repository`` section with a ``url`` key: Jupyter Book would
    then silently use its own repository as default.
    """
    cfg = yaml.safe_load(Path(config_path).read_text(encoding="utf-8")) or {}
    repo = cfg.get("repository")
    if not isinstance(repo, Mapping) or "url" not in repo:
        raise ValueError(f"{config_path}: needs 'repository: url:' (empty string if not known); otherwise "
                         "Jupyter Book falls back to its own repository URL")
    launch = cfg.get("launch_buttons") or {}
    return {"url": str(repo.get("url") or "").strip().rstrip("/"),
            "branch": str(repo.get("branch") or "HEAD"),
            "binderhub_url": str(launch.get("binderhub_url") or "").rstrip("/")}


def binder_url(repo_url: str, branch: str = "HEAD", *, binderhub_url: str = MYBINDER,
               urlpath: str | None = "lab") -> str:
    """The Binder launch link for a git repository (GitHub/GitLab short forms, any other git URL in full)."""
    repo_url = repo_url.strip().rstrip("/")
    if not repo_url:
        raise ValueError("binder_url needs a repository URL (set repository.url in _config.yml)")
    hub = binderhub_url.rstrip("/")
    m = re.match(r"^https://(github|gitlab)\.com/([^/]+)/([^/]+?)(?:\.git)?$", repo_url)
    if m and m.group(1) == "github":
        url = f"{hub}/v2/gh/{m.group(2)}/{m.group(3)}/{branch}"
    elif m:
        url = f"{hub}/v2/gl/{m.group(2)}%2F{m.group(3)}/{branch}"
    else:
        url = f"{hub}/v2/git/{quote(repo_url, safe='')}/{branch}"
    return url + (f"?urlpath={urlpath}" if urlpath else "")


def readme_badge(repo_url: str, branch: str = "HEAD", *, binderhub_url: str = MYBINDER) -> str:
    """The README's Binder badge (markdown): a launch link when the URL is known, else mybinder.org's form."""
    target = binder_url(repo_url, branch, binderhub_url=binderhub_url) if repo_url else (binderhub_url or MYBINDER)
    return f"[![Binder]({BADGE_IMAGE})]({target})"


# ------------------------------------------------------------------------------------ Sphinx extension
def configure_site(theme_options: dict[str, Any]) -> dict[str, Any]:
    """Apply the one-URL rule to sphinx-book-theme's ``html_theme_options`` (in place; also returned)."""
    url = str(theme_options.get("repository_url") or "").strip()
    launch = dict(theme_options.get("launch_buttons") or {})
    if url:
        theme_options["use_repository_button"] = True
    else:
        theme_options["use_repository_button"] = False
        theme_options["use_edit_page_button"] = False
        theme_options["use_issues_button"] = False
        for key in _REPO_LAUNCHERS:
            launch.pop(key, None)
    theme_options["launch_buttons"] = launch
    return theme_options


def _config_inited(app: Any, config: Any) -> None:
    opts = dict(config.html_theme_options or {})
    config.html_theme_options = configure_site(opts)
    ensure_generated_pages(Path(app.srcdir), config)


FALLBACK_MARK = "% written by fmask.book.site (a MyST comment): this build did not run through fmask book"


def _is_fallback_or_missing(path: Path) -> bool:
    if not path.exists():
        return True
    with open(path, encoding="utf-8") as fh:
        return fh.readline().rstrip("\n") == FALLBACK_MARK


def ensure_generated_pages(srcdir: Path, config: Any) -> None:
    """Write the fallback build-info / claims pages unless the runner wrote them.

    Pages written by :func:`fmask.book.buildinfo.write_build_info` are kept; missing pages, and fallback pages of an
    earlier bare build (first line :data:`FALLBACK_MARK`), are (re)written.
    """
    from fmask.book import buildinfo
    from fmask.claims import ledger
    from fmask.infra.atomic import atomic_write

    gen = srcdir / "book" / ledger.GENERATED_DIR
    if not (srcdir / "book").is_dir():
        return
    subs = getattr(config, "myst_substitutions", None) or {}
    profile = subs.get("profile")
    if profile is not None and not re.fullmatch(r"[A-Za-z0-9_.\-/]+", str(profile)):
        profile = None  # e.g. the placeholder "(set by fmask book)" of a bare build
    if _is_fallback_or_missing(gen / buildinfo.BUILD_INFO):
        data = os.environ.get("FMASK_DATA")
        data = data if data and Path(data).is_dir() else None
        info = buildinfo.build_info(REPO_ROOT, profile, data)
        text = (f"{FALLBACK_MARK}\n\n*Built without `fmask book`: the data folder shown is `$FMASK_DATA` (if "
                "set), not necessarily the one the notebooks used.*\n\n" + buildinfo.render_build_info(info))
        atomic_write(gen / buildinfo.BUILD_INFO, lambda fh: fh.write(text), binary=False)
    table = gen / ledger.CLAIMS_TABLE
    if _is_fallback_or_missing(table):
        ledger.write_claims_table(srcdir / "book", notebooks_dir=REPO_ROOT / "notebooks")
        text = table.read_text(encoding="utf-8")
        atomic_write(table, lambda fh: fh.write(f"{FALLBACK_MARK}\n\n{text}"), binary=False)


def setup(app: Any) -> dict[str, Any]:
    """Sphinx entry point (``sphinx.extra_extensions: [fmask.book.site]`` in ``_config.yml``)."""
    app.connect("config-inited", _config_inited, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


# ----------------------------------------------------------------------------------- rendered maths
def render_dom(page: str | os.PathLike[str], *, chromium: str | None = None, budget_ms: int = 10000,
               timeout: float = 120) -> str:
    """The DOM of a local HTML file after its scripts ran, from headless Chromium with no network.

    Uses ``--headless --no-sandbox --disable-gpu --disable-background-networking --dump-dom
    --virtual-time-budget=<budget_ms>`` and ``--proxy-server`` pointing at a closed local port, so any request
    that leaves the machine fails (a MathJax from a CDN would not load). Raises ``ValueError`` for a missing
    page and ``RuntimeError`` if Chromium is missing or prints nothing.
    """
    from fmask.book import find_chromium

    page = Path(page).resolve()
    if not page.is_file():
        raise ValueError(f"page {page} does not exist")
    exe = chromium or find_chromium()
    if exe is None:
        raise RuntimeError("no Chromium found (install the Debian package 'chromium' or set FMASK_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="fmask-chromium-") as profile_dir:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
               "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
               f"--user-data-dir={profile_dir}", f"--virtual-time-budget={int(budget_ms)}", "--dump-dom",
               page.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not proc.stdout.strip():
        raise RuntimeError(f"Chromium printed no DOM for {page} (exit {proc.returncode}):\n"
                           + "\n".join(proc.stderr.strip().splitlines()[-10:]))
    return proc.stdout


class _TextExtractor(html.parser.HTMLParser):
    """Visible text of a DOM: drops <script>, <style>, <template> and MathJax's own output elements."""

    _SKIP = {"script", "style", "template", "noscript", "mjx-container", "mjx-assistive-mml", "svg"}
    _VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self._VOID:
            return
        if self.depth or tag in self._SKIP:
            self.depth += 1

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if tag in self._VOID:
            return
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.depth:
            self.parts.append(data)


def visible_text(dom: str) -> str:
    """Text of ``dom`` outside scripts, styles and typeset maths (MathJax ``mjx-container`` elements)."""
    parser = _TextExtractor()
    parser.feed(dom)
    parser.close()
    return "".join(parser.parts)


# An opening delimiter, with its formula and closing delimiter when they follow within 200 characters.
_RAW_TEX = re.compile(r"\\\((?:.{0,200}?\\\))?|\\\[(?:.{0,200}?\\\])?|\$\$(?:.{0,200}?\$\$)?", re.S)


def raw_tex(dom: str) -> list[str]:
    """Untypeset maths in the visible text: each ``\\(..\\)``, ``\\[..\\]`` or ``$$..$$`` (first 60 characters)."""
    return [m.group(0).strip()[:60] for m in _RAW_TEX.finditer(visible_text(dom))]


def check_maths(html_dir: str | os.PathLike[str], *, chromium: str | None = None,
                budget_ms: int = 10000) -> dict[str, list[str]]:
    """Untypeset maths per built page: ``{page: raw_tex(...)}`` for the pages that have any (empty dict: all good).

    Every ``*.html`` under ``html_dir`` except Sphinx's own (``_static``/hidden folders, ``search.html``,
    ``genindex.html``, the root redirect) is opened with :func:`render_dom` (no network).
    """
    html_dir = Path(html_dir)
    if not html_dir.is_dir():
        raise ValueError(f"{html_dir} is not a built book (no such folder)")
    bad: dict[str, list[str]] = {}
    for page in sorted(html_dir.rglob("*.html")):
        rel = page.relative_to(html_dir)
        if any(p.startswith(("_", ".")) for p in rel.parts) or rel.name in ("search.html", "genindex.html"):
            continue
        if 'http-equiv="refresh"' in page.read_text(encoding="utf-8", errors="replace")[:2000].lower():
            continue
        raw = raw_tex(render_dom(page, chromium=chromium, budget_ms=budget_ms))
        if raw:
            bad[rel.as_posix()] = raw
    return bad
