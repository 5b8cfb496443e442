"""Check a built book in headless Chromium: every page loads, every image loads, no error output, and every
image in the page's content column has alt text and fits the column's width (no horizontal overflow).

:func:`check_html` serves the HTML folder on 127.0.0.1, opens each page in an iframe of a small check page
and reads the per-page verdicts back with ``--dump-dom``. :func:`find_chromium` locates the browser
(``$FMASK_CHROMIUM``, ``/usr/bin/chromium``, ``chromium`` / ``chromium-browser`` / ``google-chrome`` on PATH).
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
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from fmask.book.errors import BookError

__all__ = ["PageCheck", "find_chromium", "check_html"]


# --------------------------------------------------------------------------------------- html checking
@dataclass
class PageCheck:
    """Result of loading one built page in Chromium."""

    page: str
    loaded: bool
    images: int
    broken_images: list[str]
    errors: list[str]
    #: content images wider than their column or reaching past its right edge: "src (image px > column px)"
    too_wide: list[str] = field(default_factory=list)
    #: content images without (non-empty) alt text
    no_alt: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.loaded and not self.broken_images and not self.errors and not self.too_wide and not self.no_alt


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
    const rec = {page: p, loaded: ok, images: 0, broken: [], errors: [], wide: [], noalt: []};
    try {
      const doc = frame.contentDocument;
      const imgs = await imagesSettled(doc);
      rec.images = imgs.length;
      for (const im of imgs) {
        if (!(im.complete && im.naturalWidth > 0)) rec.broken.push(im.getAttribute('src') || '(no src)');
      }
      // the content column: the theme's article, else main, else the body
      const col = doc.querySelector('article') || doc.querySelector('main') || doc.body;
      if (col) {
        const cr = col.getBoundingClientRect();
        for (const im of col.querySelectorAll('img')) {
          const src = im.getAttribute('src') || '(no src)';
          const r = im.getBoundingClientRect();
          if (r.width > cr.width + 1 || r.right > cr.right + 1)
            rec.wide.push(src + ' (' + Math.round(r.width) + ' px > column ' + Math.round(cr.width) + ' px)');
          if (!(im.getAttribute('alt') || '').trim()) rec.noalt.push(src);
        }
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
    ``naturalWidth == 0``, any error output / traceback, and the images of the content column (``article``, else
    ``main``, else ``body``) that are wider than it or reach past its right edge (``too_wide``) or have no alt
    text (``no_alt``), in a 1200 px wide frame; the result is read back with ``--dump-dom``.
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
                  broken_images=list(r["broken"]), errors=list(r["errors"]), too_wide=list(r.get("wide", [])),
                  no_alt=list(r.get("noalt", [])))
        for r in records
    ]
