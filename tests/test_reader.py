"""The reader's book: claims ledger, build info, repository/Binder links, bibliography, hidden folders and maths
that renders without network (a real jupyter-book build opened in headless Chromium behind a dead proxy)."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from fmask import book

from fmask.book import buildinfo

from fmask.claims import ledger

from fmask.book import site

ROOT = Path(__file__).resolve().parents[1]


def _notebook(path: Path, cells: list[dict]) -> Path:
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                      "language": "python"},
                                       "language_info": {"name": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


def _md(i: int, text: str) -> dict:
    return {"cell_type": "markdown", "id": f"m{i}", "metadata": {}, "source": text}


def _claim(**kw) -> dict:
    base = {"id": "c1", "claim": "masked accuracy stays close", "paper": 89.2, "ours": 88.13,
            "interval": [86.0, 90.25], "n": 500, "verdict": "reproduced",
            "rule": "paper value inside our 95% interval", "chapter": "04_dataset_masks"}
    base.update(kw)
    return base


# ------------------------------------------------------------------------------------------ ledger
def test_chapter_titles_from_notebooks_and_sources(tmp_path):
    _notebook(tmp_path / "04_x.ipynb", [_md(0, "Some text\n\n# 4. Dataset masks\n\nmore")])
    src = tmp_path / "src"
    src.mkdir()
    (src / "05_y.py").write_text("# %% [markdown]\n# # 5. Energies\n#\n# text\n")
    (tmp_path / "06_z.md").write_text("---\ntitle: x\n---\n# 6. Single images\n")
    titles = ledger.chapter_titles(["04_x", "05_y", "06_z", "07_missing"], tmp_path, src)
    assert titles == {"04_x": "4. Dataset masks", "05_y": "5. Energies", "06_z": "6. Single images",
                      "07_missing": None}


def test_repository_chapters_have_titles_that_match_their_sources():
    """Every chapter has a first heading, and the executed notebook's title is its source's title (sidebar)."""
    names = book.discover_notebooks()
    from_src = ledger.chapter_titles(names, ROOT / "no-such-dir", ROOT / "notebooks")
    assert all(from_src.values()), from_src
    for n in names:
        executed = ledger.chapter_title(ROOT / "book" / f"{n}.ipynb")
        if executed is not None:
            assert executed == from_src[n], n


def test_claims_table_rows_links_and_tally(tmp_path):
    _notebook(tmp_path / "04_dataset_masks.ipynb", [_md(0, "# 4. Dataset masks\n")])
    _notebook(tmp_path / "07_class_specificity.ipynb", [_md(0, "# 7. Are masks class specific?\n")])
    claims = [
        _claim(),
        _claim(id="c2", claim="probe | shuffled labels at chance", paper="16.42 %", ours=None, interval=None,
               n=None, verdict="not reproduced", rule="interval excludes chance", chapter="07_class_specificity"),
        _claim(id="c3", claim="blue shift", paper=None, ours=0.5, interval=[0.25, 0.75], n=12,
               verdict="inconclusive", rule="too few samples", chapter="01_blue_shift"),
        _claim(id="c4", claim="energies", verdict="inconclusive", chapter="05_energies"),
    ]
    src = tmp_path / "src"
    src.mkdir()
    (src / "05_energies.py").write_text("# %% [markdown]\n# # 5. Energies\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "claims.json").write_text(json.dumps(claims))
    out = ledger.write_claims_table(tmp_path, notebooks_dir=src)
    assert out == tmp_path / "_generated" / "claims_table.md"
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| claim")
            and not line.startswith("| ---")]
    assert len(rows) == len(claims)
    # each row: claim, paper, ours [interval] (n), verdict, chapter link
    assert rows[0] == ("| masked accuracy stays close | 89.2 | 88.13 [86, 90.25] (n=500) | ✓ reproduced | "
                       "[4. Dataset masks](04_dataset_masks) |")
    assert r"probe \| shuffled labels" in rows[1] and "| 16.42 % | — |" in rows[1]
    assert "[7. Are masks class specific?](07_class_specificity)" in rows[1]
    assert rows[2].endswith("| `01_blue_shift` |")  # neither page nor source: the bare name, no link
    assert rows[3].endswith("| 5. Energies |")      # title from the source, but no page in this build: no link
    tally = {v: sum(c["verdict"] == v for c in claims) for v in ledger.VERDICTS[:3]}
    assert (f"Of {len(claims)} claims that could have come out either way: "
            + ", ".join(f"{tally[v]} {v}" for v in ledger.VERDICTS[:3]) + ".") in text
    assert text.index("claims that could have come out") < text.index("| claim |")  # the tally comes first
    for c in claims:
        assert f"**{c['id']}**: {c['rule']}" in text


def test_missing_or_empty_claims_file_says_so_in_one_line(tmp_path):
    text = ledger.write_claims_table(tmp_path).read_text()
    assert len(text.strip().splitlines()) == 1 and "results/claims.json" in text and "not found" in text
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "claims.json").write_text("[]")
    text = ledger.write_claims_table(tmp_path).read_text()
    assert len(text.strip().splitlines()) == 1 and "no claims" in text


@pytest.mark.parametrize("bad, match", [
    ({"verdict": "maybe"}, "verdict"),
    ({"interval": [2.0, 1.0]}, "lo <= hi"),
    ({"interval": [1.0]}, "interval"),
    ({"chapter": ""}, "chapter"),
])
def test_claims_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        ledger.validate_claims([_claim(**bad)])


def test_claims_validation_structure(tmp_path):
    entry = _claim()
    del entry["rule"]
    with pytest.raises(ValueError, match="missing key"):
        ledger.validate_claims([entry])
    with pytest.raises(ValueError, match="duplicate id"):
        ledger.validate_claims([_claim(), _claim()])
    with pytest.raises(ValueError, match="JSON list"):
        ledger.validate_claims({"id": "x"})
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ledger.load_claims(tmp_path / "c.json")


# -------------------------------------------------------------------------------------- build info
def _git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@x", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@x")
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def test_git_state_commit_and_dirty_flag(tmp_path):
    repo = tmp_path / "repo"
    (repo / "book" / "results").mkdir(parents=True)
    _git(tmp_path, "init", "-q", str(repo))
    (repo / "a.py").write_text("x = 1\n")
    (repo / "book" / "01_a.ipynb").write_text("{}")
    (repo / "book" / "intro.md").write_text("# hi\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "init")
    state = buildinfo.git_state(repo)
    assert state == {"commit": _git(repo, "rev-parse", "--short", "HEAD"), "full": _git(repo, "rev-parse", "HEAD"),
                     "dirty": False}
    (repo / "book" / "01_a.ipynb").write_text('{"executed": 1}')   # what a book run writes: not dirty
    (repo / "book" / "results" / "r.json").write_text("{}")       # untracked: not dirty
    assert buildinfo.git_state(repo)["dirty"] is False
    (repo / "book" / "intro.md").write_text("# changed\n")         # a source page: dirty
    assert buildinfo.git_state(repo)["dirty"] is True
    assert buildinfo.git_state(tmp_path / "not-a-repo-dir") is None
    (tmp_path / "plain").mkdir()
    assert buildinfo.git_state(tmp_path / "plain") is None


def _tree(root: Path, files: list[str]) -> None:
    for f in files:
        p = root / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f.encode())


def test_data_fingerprint_names_and_counts(tmp_path):
    files = ["train/n1/a.JPEG", "train/n1/b.JPEG", "train/n2/c.JPEG", "val/n1/d.JPEG", "val/n2/e.JPEG",
             "val/n3/f.JPEG"]
    _tree(tmp_path / "copy1" / "imagenette2-160", files + [".DS_Store", "train/.hidden/x.JPEG"])
    _tree(tmp_path / "copy2" / "imagenette2-160", files)
    fp = buildinfo.data_fingerprint(tmp_path / "copy1" / "imagenette2-160")
    expected = hashlib.sha256("\n".join(sorted(files)).encode()).hexdigest()
    assert fp["sha256"] == expected and fp["folder"] == "imagenette2-160" and fp["files"] == len(files)
    assert fp["splits"] == {"train": {"files": 3, "classes": 2}, "val": {"files": 3, "classes": 3}}
    # same names elsewhere -> same fingerprint; one renamed file -> a different one
    assert buildinfo.data_fingerprint(tmp_path / "copy2" / "imagenette2-160")["sha256"] == expected
    (tmp_path / "copy2" / "imagenette2-160" / "val/n3/f.JPEG").rename(tmp_path / "copy2" / "imagenette2-160" / "val/n3/g.JPEG")
    assert buildinfo.data_fingerprint(tmp_path / "copy2" / "imagenette2-160")["sha256"] != expected
    with pytest.raises(ValueError, match="does not exist"):
        buildinfo.data_fingerprint(tmp_path / "nope")


def test_build_info_contents_and_rendering(tmp_path):
    _tree(tmp_path / "data", ["train/n1/a.JPEG", "val/n1/b.JPEG"])
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    info = buildinfo.build_info(ROOT, "smoke", tmp_path / "data", now=now)
    assert info["date"] == "2026-01-02T03:04:05+00:00"
    assert set(info["versions"]) == {"python", "torch", "torchvision", "numpy", "fmask", "jupyter-book",
                                     "papermill"}
    import fmask
    import torch

    assert info["versions"]["fmask"] == fmask.__version__
    assert info["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    prof = info["profile"]
    assert prof["name"] == "smoke" and prof["file"] == "fmask/params/smoke.yaml"
    assert prof["sha256"] == hashlib.sha256((ROOT / "fmask/params/smoke.yaml").read_bytes()).hexdigest()
    text = buildinfo.render_build_info(info)
    for needle in ("`smoke`", "2026-01-02T03:04:05+00:00", "folder `data`", "2 files", info["data"]["sha256"],
                   f"torch {info['versions']['torch']}", f"papermill {info['versions']['papermill']}"):
        assert needle in text, needle
    if info["git"] is not None:  # a git checkout (always, in CI's clean clone)
        assert f"commit `{info['git']['commit']}`" in text and info["git"]["full"] in text
    # nothing recorded -> said so, not guessed
    bare = buildinfo.render_build_info(buildinfo.build_info(tmp_path, None, None, now=now))
    assert "not a git checkout" in bare and "profile | not recorded" in bare and "data | not recorded" in bare
    with pytest.raises(ValueError):
        buildinfo.build_info(ROOT, "smoke", None, now=dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        buildinfo.profile_info("")


def test_build_info_names_the_machine_that_computed_the_numbers(tmp_path):
    from fmask.infra import host

    info = buildinfo.build_info(tmp_path, None, None, threads=3)
    m = info["machine"]
    assert m["cpu"] == host.cpu_info() and m["threads"] == 3 and m["kind"].endswith("|3 threads")
    assert m["torch"].split("+")[0] == info["versions"]["torch"].split("+")[0]
    text = buildinfo.render_build_info(info)
    assert f"| machine | {m['cpu']['model']}" in text and "3 torch threads" in text and f"`{m['kind']}`" in text
    fake = {"cpu": {"model": "Intel Xeon Platinum 8480", "vendor": "GenuineIntel",
                    "flags": ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]},
            "torch": "2.9.0+cpu", "blas": "mkl", "mkl": "2025.0", "onednn": "3.7.1", "cpu_capability": "AVX512",
            "threads": 1, "kind": "k"}
    line = buildinfo.render_machine(fake)
    for needle in ("Intel Xeon Platinum 8480", "kernel flags avx2, avx512f, avx512_bf16, amx_bf16, amx_tile",
                   "(no avx512_vnni)", "dispatches to AVX512", "torch 2.9.0+cpu", "BLAS mkl (MKL 2025.0)",
                   "oneDNN 3.7.1", "1 torch thread"):
        assert needle in line, needle
    bare = buildinfo.render_machine({"cpu": {"model": "m", "vendor": "v", "flags": []}, "torch": "2", "threads": 2})
    assert "none of avx2" in bare and "BLAS" not in bare


def test_write_build_info_writes_both_generated_pages(tmp_path):
    book_dir = tmp_path / "book"
    info = buildinfo.write_build_info(book_dir, repo_root=ROOT, profile="cpu", data_root=None, threads=5)
    gen = book_dir / ledger.GENERATED_DIR
    assert (gen / buildinfo.BUILD_INFO).read_text() == buildinfo.render_build_info(info)
    assert info["machine"]["threads"] == 5 and "5 torch threads" in (gen / buildinfo.BUILD_INFO).read_text()
    assert "not found" in (gen / ledger.CLAIMS_TABLE).read_text()


# ------------------------------------------------------------------------------- config, intro, links
def test_config_excludes_hidden_folders_and_loads_extensions():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    for pat in (".*", "**/.*", "book/_generated/*"):
        assert pat in cfg["exclude_patterns"], pat
    assert {"sphinx-mathjax-offline", "fmask.book.site"} <= set(cfg["sphinx"]["extra_extensions"])
    assert cfg["launch_buttons"]["binderhub_url"] == site.MYBINDER
    assert "use_repository_button" not in (cfg.get("html") or {}), "fmask.book.site sets it from repository.url"


def test_repository_url_has_one_place_and_readme_badge_follows_it(tmp_path):
    repo = site.repository_settings()
    badges = re.findall(r"\[!\[Binder\]\([^)]*\)\]\([^)]*\)", (ROOT / "README.md").read_text())
    assert badges == [site.readme_badge(repo["url"], repo["branch"], binderhub_url=repo["binderhub_url"])], (
        f"README's Binder badge must be exactly: "
        f"{site.readme_badge(repo['url'], repo['branch'], binderhub_url=repo['binderhub_url'])}")
    (tmp_path / "c.yml").write_text("title: x\n")
    with pytest.raises(ValueError, match="repository"):
        site.repository_settings(tmp_path / "c.yml")


def test_binder_urls_and_button_rule():
    assert site.binder_url("https://github.com/o/r", "main") == "https://mybinder.org/v2/gh/o/r/main?urlpath=lab"
    assert site.binder_url("https://github.com/o/r.git/", "HEAD", urlpath=None) == "https://mybinder.org/v2/gh/o/r/HEAD"
    assert site.binder_url("https://gitlab.com/o/r", "main").startswith("https://mybinder.org/v2/gl/o%2Fr/main")
    assert site.binder_url("https://git.example.org/x/y", "b").startswith(
        "https://mybinder.org/v2/git/https%3A%2F%2Fgit.example.org%2Fx%2Fy/b")
    with pytest.raises(ValueError):
        site.binder_url("", "main")
    assert site.readme_badge("") == "[![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org)"
    off = site.configure_site({"repository_url": "", "launch_buttons": {"binderhub_url": "https://mybinder.org",
                                                                       "notebook_interface": "jupyterlab"}})
    assert off["use_repository_button"] is False and off["launch_buttons"] == {"notebook_interface": "jupyterlab"}
    on = site.configure_site({"repository_url": "https://github.com/o/r",
                              "launch_buttons": {"binderhub_url": "https://mybinder.org"}})
    assert on["use_repository_button"] is True and on["launch_buttons"]["binderhub_url"] == "https://mybinder.org"


def test_intro_cites_known_keys_and_includes_generated_pages():
    intro = (ROOT / "book" / "intro.md").read_text()
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    cited = set(re.findall(r"\{cite:[pt]\}`([^`]+)`", intro))
    cited = {k.strip() for c in cited for k in c.split(",")}
    assert cited and cited <= keys, cited - keys
    # the works the book rests on are all there, the paper with its DOI
    for key in ("karantzas2022", "fouriermasks_code", "yin2019", "imagenette", "madry2018", "kim2020torchattacks"):
        assert key in cited, key
    assert "10.3389/frai.2022.890016" in bib and "github.com/nkarantzas/FourierMasks" in bib
    assert "```{bibliography}" in intro and "```{tableofcontents}" in intro
    inc = re.findall(r"```\{include\} (\S+)", intro)
    assert inc == [f"{ledger.GENERATED_DIR}/{ledger.CLAIMS_TABLE}", f"{ledger.GENERATED_DIR}/{buildinfo.BUILD_INFO}"]
    # findings first: the claims table comes before the paper summary
    assert intro.index(ledger.CLAIMS_TABLE) < intro.index("## What the paper claims")
    assert "{{ profile }}" in intro


def test_visible_text_and_raw_tex_on_a_dom():
    dom = ("<html><head><script>var s = '\\\\(x\\\\)';</script><style>p{}</style></head><body>"
           "<p>ok <mjx-container><mjx-math>x</mjx-math><mjx-assistive-mml>$$y$$</mjx-assistive-mml>"
           "</mjx-container> text<br>more</p><div>left: \\(a+b\\) and \\[c\\] and $$d$$</div></body></html>")
    assert site.visible_text(dom) == "ok  textmoreleft: \\(a+b\\) and \\[c\\] and $$d$$"
    assert [s[:3] for s in site.raw_tex(dom)] == ["\\(a", "\\[c", "$$d"]
    assert site.raw_tex("<p>no maths here: 5 $ and 6 $</p>") == []


# ------------------------------------------------------------------------- a real build, in Chromium
MATHS_PAGE = [
    _md(0, "# Maths page\n\nInline $x^2 + y$ and display\n\n"
           "$$\\bar x = \\operatorname{Re}\\,\\mathcal F^{-1}\\!\\left(M \\odot \\mathcal F x\\right)$$\n\n"
           "```{math}\n\\lambda\\,\\operatorname{mean}(M)\n```\n"),
    {"cell_type": "code", "id": "c0", "execution_count": 1, "metadata": {}, "source": "show()",
     "outputs": [
         {"output_type": "display_data", "metadata": {},
          "data": {"text/latex": "$$\\frac{a}{b}$$", "text/plain": "<IPython.core.display.Latex object>"}},
         {"output_type": "display_data", "metadata": {},
          "data": {"text/markdown": "inline $a+b$ and\n\n$$c+d$$\n", "text/plain": "<Markdown>"}},
     ]},
]
N_MATHS = 6  # on the maths page: $x^2+y$, $$..$$, {math}, the latex output, the markdown output's two
# (Sphinx writes them all as \(..\) / \[..\] for MathJax; a markdown "\(" is only an escaped parenthesis)


def _build(root: Path, *, repo_url: str = "") -> Path:
    """Build a small book at ``root`` with the repository's _config.yml / intro / bibliography; return html dir."""
    (root / "book" / "results").mkdir(parents=True)
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    cfg["repository"]["url"] = repo_url
    cfg.setdefault("parse", {}).setdefault("myst_substitutions", {})["profile"] = "smoke"
    (root / "_config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/maths\n")
    for f in ("intro.md", "references.bib"):
        shutil.copy2(ROOT / "book" / f, root / "book" / f)
    _notebook(root / "book" / "maths.ipynb", MATHS_PAGE)
    # hidden folders that must not become pages (nor search hits)
    for hidden in (".pytest_cache/README.md", "book/.hidden/secret.md", "book/.ipynb_checkpoints/maths-checkpoint.md"):
        (root / hidden).parent.mkdir(parents=True, exist_ok=True)
        (root / hidden).write_text("# Hiddenpagetitle\n")
    claims = [_claim(chapter="maths", claim="the maths page exists")]
    (root / "book" / "results" / "claims.json").write_text(json.dumps(claims))
    data = root / "imagenette-mini"
    _tree(data, ["train/n1/a.JPEG", "val/n1/b.JPEG"])
    buildinfo.write_build_info(root / "book", repo_root=ROOT, profile="smoke", data_root=data)
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "jupyter_book.cli.main"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(cmd + ["build", str(root), "--all"], cwd=root, capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return root / "_build" / "html"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("reader-book"))


def test_build_excludes_hidden_folders(built):
    pages = sorted(p.relative_to(built).as_posix() for p in built.rglob("*.html")
                   if not p.relative_to(built).parts[0] == "_static")
    assert pages == ["book/intro.html", "book/maths.html", "genindex.html", "index.html", "search.html"], pages
    assert "hiddenpagetitle" not in (built / "searchindex.js").read_text().lower()


def test_build_ships_mathjax(built):
    page = (built / "book" / "maths.html").read_text()
    srcs = re.findall(r'<script[^>]+src="([^"]*mathjax[^"]*)"', page, flags=re.I)
    assert srcs and all(not s.startswith(("http:", "https:", "//")) for s in srcs), srcs
    local = (built / "book" / srcs[0].split("?")[0]).resolve()
    assert local.is_file() and local.stat().st_size > 100_000, local


def test_build_intro_has_ledger_links_references_and_build_info(built):
    intro = (built / "book" / "intro.html").read_text()
    assert re.search(r'<a class="reference internal" href="maths.html">.{0,80}Maths page', intro, flags=re.S)
    assert "the maths page exists" in intro and "88.13 [86, 90.25] (n=500)" in intro
    assert "10.3389/frai.2022.890016" in intro and "Yin" in intro and "Madry" in intro
    state = buildinfo.git_state(ROOT)
    if state is not None:
        assert state["commit"] in intro
    assert "imagenette-mini" in intro and "smoke" in intro
    # repository URL empty: neither a repository button nor a Binder link, and the build did not fail on the
    # notebook page (sphinx-book-theme crashes there when a Binder URL is set without a repository URL)
    maths = (built / "book" / "maths.html").read_text()
    assert "mybinder.org/v2" not in maths and "executablebooks/jupyter-book" not in maths


def test_build_with_repository_url_gets_binder_button(tmp_path):
    html = _build(tmp_path, repo_url="https://github.com/example-org/fmask-book")
    maths = (html / "book" / "maths.html").read_text()
    branch = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["branch"]
    expected = site.binder_url("https://github.com/example-org/fmask-book", branch, urlpath="lab/tree/book/maths.ipynb")
    assert expected in maths
    assert 'href="https://github.com/example-org/fmask-book"' in maths  # repository button


def test_maths_renders_offline_in_chromium(built, chromium):
    exe = chromium
    for name in ("maths", "intro"):
        dom = site.render_dom(built / "book" / f"{name}.html", chromium=exe, budget_ms=10000)
        assert site.raw_tex(dom) == [], (name, site.raw_tex(dom))
        n = dom.count("<mjx-container")
        assert n >= (N_MATHS if name == "maths" else 4), (name, n)  # the intro has several formulas too


def test_check_maths_over_the_whole_build(built, chromium):
    exe = chromium
    assert site.check_maths(built, chromium=exe) == {}
    with pytest.raises(ValueError):
        site.check_maths(built / "no-such-dir", chromium=exe)


def test_raw_tex_check_catches_untypeset_maths(tmp_path, chromium):
    """Control: a page whose MathJax cannot load (CDN behind the dead proxy) keeps its TeX, and is caught."""
    exe = chromium
    page = tmp_path / "cdn.html"
    page.write_text(textwrap.dedent("""\
        <html><head><script defer src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script></head>
        <body><p>inline \\(x^2\\)</p><div class="math">$$y$$</div></body></html>"""))
    dom = site.render_dom(page, chromium=exe, budget_ms=3000)
    assert [s[:2] for s in site.raw_tex(dom)] == ["\\(", "$$"]
    assert site.check_maths(tmp_path, chromium=exe, budget_ms=3000) == {"cdn.html": site.raw_tex(dom)}


def test_bare_build_fallback_writes_missing_generated_pages_only(tmp_path, monkeypatch):
    """A bare `jupyter-book build` (no runner) still gets both includes; pages the runner wrote are kept."""
    from types import SimpleNamespace

    monkeypatch.delenv("FMASK_DATA", raising=False)
    (tmp_path / "book").mkdir()
    config = SimpleNamespace(myst_substitutions={"profile": "(set by fmask book)"})
    site.ensure_generated_pages(tmp_path, config)
    gen = tmp_path / "book" / ledger.GENERATED_DIR
    info = (gen / buildinfo.BUILD_INFO).read_text()
    assert "Built without `fmask book`" in info and "profile | not recorded" in info  # placeholder not shown
    assert "not found" in (gen / ledger.CLAIMS_TABLE).read_text()
    # a later bare build refreshes its own fallback pages ...
    site.ensure_generated_pages(tmp_path, SimpleNamespace(myst_substitutions={"profile": "smoke"}))
    assert "| profile | `smoke`" in (gen / buildinfo.BUILD_INFO).read_text()
    # ... but keeps what the runner wrote
    buildinfo.write_build_info(tmp_path / "book", repo_root=ROOT, profile="cpu")
    runner = {p.name: p.read_text() for p in gen.iterdir()}
    site.ensure_generated_pages(tmp_path, SimpleNamespace(myst_substitutions={"profile": "smoke"}))
    assert {p.name: p.read_text() for p in gen.iterdir()} == runner
    assert not any(t.startswith(site.FALLBACK_MARK) for t in runner.values())
