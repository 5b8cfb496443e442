"""The book machinery: notebook selection, failure reporting, the smoke-profile end-to-end build and its
check in headless Chromium; plus the blue-shift library behind chapter 1.

The end-to-end run (all notebooks with the ``smoke`` profile, then ``jupyter-book build``) is one
module-scoped fixture shared by the build test and the Chromium test. It needs the Imagenette copy
(``FMASK_DATA``); when that variable is unset it skips with a reason, when set it must work.
"""
from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from fmask import book

from fmask.analysis import blueshift

from fmask.experiment import results as report
from fmask.book import tables



# ----------------------------------------------------------------------------------------- unit tests
def test_discover_and_select_notebooks(tmp_path):
    for name in ("01_a.py", "02_b_c.py", "10_z.py", "helper.py", "3_bad.py"):
        (tmp_path / name).write_text("# %%\n")
    names = book.discover_notebooks(tmp_path)
    assert names == ["01_a", "02_b_c", "10_z"]
    assert book.select_notebooks(names, None) == names
    assert book.select_notebooks(names, "02") == ["02_b_c"]
    assert book.select_notebooks(names, "10_z,01_a.py") == ["01_a", "10_z"]  # book order kept
    assert book.select_notebooks(names, ["b_c"]) == ["02_b_c"]
    assert book.select_notebooks(names, ["10,01", "02"]) == names  # CLI nargs="+" with commas inside
    with pytest.raises(ValueError, match="available: 01_a, 02_b_c, 10_z"):
        book.select_notebooks(names, "05")


def test_report_chapter_executes_last_but_keeps_its_place_in_the_toc():
    from fmask.book import runner

    names = ["01_a", "08_report", "09_heatmaps", "11_architectures"]
    assert runner.execution_order(names) == ["01_a", "09_heatmaps", "11_architectures", "08_report"]
    assert runner.execution_order(["01_a", "02_b"]) == ["01_a", "02_b"]
    # the repository's chapters: the report (which writes claims.json) runs after every chapter it reads
    order = runner.execution_order(book.discover_notebooks())
    assert order[-1] == "08_report" and sorted(order) == book.discover_notebooks()


def test_repository_notebooks_have_parameters_cells():
    names = book.discover_notebooks()
    assert {"01_blue_shift", "02_data", "08_report"} <= set(names)
    import jupytext

    for n in names:
        nb = jupytext.read(str(book.REPO_ROOT / "notebooks" / f"{n}.py"))
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{n} needs exactly one cell tagged 'parameters'"
        assert "profile" in tagged[0].source, n
        assert "profile: str" in tagged[0].source, f"{n}: parameters need type annotations (papermill --help-notebook)"
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "chapter.open(" in code, f"{n} must start with the chapter helper"
        assert "matplotlib.pyplot" not in code and "display=False" not in code, n
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{n} has outputs"


def test_toc_lists_every_notebook_and_config_disables_execution():
    import yaml

    toc = yaml.safe_load((book.REPO_ROOT / "_toc.yml").read_text())
    cfg = yaml.safe_load((book.REPO_ROOT / "_config.yml").read_text())
    assert toc["root"] == "book/intro"
    files = [c["file"] for c in toc["chapters"]]
    assert files == sorted(files) and len(files) == len(book.discover_notebooks())
    for n in book.discover_notebooks():
        assert f"book/{n}" in files, n
    assert cfg["execute"]["execute_notebooks"] == "off"
    for pat in ("notebooks/*", ".venv/*", "artifacts/*", "tests/*", "_build/*", "README.md", "CONTRIBUTING.md"):
        assert pat in cfg["exclude_patterns"], pat


def test_failing_cell_names_notebook_and_cell_and_keeps_partial_notebook(tmp_path):
    src = tmp_path / "nbs"
    src.mkdir()
    (src / "01_ok.py").write_text(textwrap.dedent('''\
        # %% tags=["parameters"]
        profile = "x"
        results_dir = "results"
        # %%
        print("fine", profile)
        '''))
    (src / "02_broken.py").write_text(textwrap.dedent('''\
        # %% tags=["parameters"]
        profile = "x"
        # %%
        a = 1
        # %%
        raise ValueError("deliberate failure")
        # %%
        print("never")
        '''))
    (src / "03_after.py").write_text('# %% tags=["parameters"]\nprofile = "x"\n')
    out = tmp_path / "out"
    with pytest.raises(book.BookError) as err:
        book.run_book("smoke", out=out, src_dir=src, build=False, log=lambda s: None)
    msg = str(err.value)
    assert "02_broken" in msg and "cell" in msg and "deliberate failure" in msg
    partial = out / "book" / "02_broken.failed.ipynb"
    assert partial.exists() and str(partial) in msg
    assert not (out / "book" / "02_broken.ipynb").exists(), "a failed chapter must not be published"
    nb = json.loads(partial.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert any(o.get("output_type") == "error" for o in outputs)
    assert not (out / "book" / "03_after.ipynb").exists(), "the run must stop at the failing notebook"
    rts = report.load_runtimes(out / "book" / "results")
    assert rts["01_ok"]["ok"] is True and rts["02_broken"]["ok"] is False
    # parameters reached the kernel (the injected cell itself is removed from the page)
    ok_nb = json.loads((out / "book" / "01_ok.ipynb").read_text())
    assert not any("injected-parameters" in c["metadata"].get("tags", []) for c in ok_nb["cells"])
    text = "".join("".join(o.get("text", "")) for c in ok_nb["cells"] for o in c.get("outputs", []))
    assert "fine smoke" in text


def _write_chapter(src, body):
    (src / "01_x.py").write_text('# %% tags=["parameters"]\nprofile = "x"\n# %%\n' + textwrap.dedent(body))


def test_failed_or_killed_rerun_never_replaces_a_good_notebook(tmp_path):
    src, out = tmp_path / "nbs", tmp_path / "out"
    src.mkdir()
    _write_chapter(src, 'print("good run", profile)\n')
    book.run_book("smoke", out=out, src_dir=src, build=False, log=lambda s: None)
    good = out / "book" / "01_x.ipynb"
    good_bytes = good.read_bytes()
    assert book.notebook_status(good) == "completed"
    # 1. a cell raises
    _write_chapter(src, 'print("second run")\nraise RuntimeError("boom")\n')
    with pytest.raises(book.BookError, match="boom") as err:
        book.run_book("smoke", out=out, src_dir=src, build=False, log=lambda s: None)
    assert "left unchanged" in str(err.value)
    assert good.read_bytes() == good_bytes
    failed = out / "book" / "01_x.failed.ipynb"
    assert book.notebook_status(failed) == "failed"
    # 2. the kernel dies mid-run (like a killed process)
    _write_chapter(src, 'import os\nos._exit(1)\n')
    with pytest.raises(book.BookError, match="01_x"):
        book.run_book("smoke", out=out, src_dir=src, build=False, log=lambda s: None)
    assert good.read_bytes() == good_bytes
    # 3. a good run replaces the notebook and removes the stale failed copy
    _write_chapter(src, 'print("third run")\n')
    book.run_book("smoke", out=out, src_dir=src, build=False, log=lambda s: None)
    assert "third run" in good.read_text() and not failed.exists()


def test_build_refuses_to_publish_an_incomplete_chapter(tmp_path):
    import nbformat

    root = tmp_path / "site"
    book.prepare_book_dir(root)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    nb.cells[0].metadata["papermill"] = {"status": "failed"}
    nb.metadata["papermill"] = {"exception": True}
    nbformat.write(nb, str(root / "book" / "03_training.ipynb"))
    nb.cells[0].metadata["papermill"] = {"status": "pending"}
    nb.metadata["papermill"] = {"exception": None}
    nbformat.write(nb, str(root / "book" / "04_dataset_masks.ipynb"))
    assert book.unpublishable(root) == {"03_training": "failed", "04_dataset_masks": "pending"}
    with pytest.raises(book.BookError, match=r"refusing to publish.*03_training \(failed\).*04_dataset_masks"):
        book.build_book(root, profile="smoke", log=lambda s: None)


def test_postprocess_removes_plumbing_widgets_and_paths_and_makes_figures():
    import nbformat

    v4 = nbformat.v4
    nb = v4.new_notebook(cells=[
        v4.new_code_cell('profile = "cpu"', metadata={"tags": ["parameters"]}),
        v4.new_code_cell('profile = "smoke"\ndata_root = "/work/data"', metadata={"tags": ["injected-parameters"]}),
        v4.new_code_cell("x", outputs=[
            v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "1"}}),
            v4.new_output("stream", name="stdout", text="read /work/data/train and /home/u/x\n"),
            v4.new_output("display_data", data={"image/png": "AAAA", "text/plain": "fig"},
                          metadata={"fmask": {"figure": {"name": "fig-a", "caption": "A caption", "alt": "Alt"}}}),
        ]),
    ])
    nb.metadata["widgets"] = {"state": {}}
    nb.metadata["papermill"] = {"input_path": "/tmp/in.ipynb", "output_path": "/tmp/out.ipynb",
                                "parameters": {"data_root": "/work/data"}}
    book.postprocess_notebook(nb, replacements=[("/work/data", "<data>"), ("/home/u", "~")], status="completed")
    assert len(nb.cells) == 2 and "remove-cell" in nb.cells[0].metadata["tags"]
    outs = nb.cells[1].outputs
    assert len(outs) == 2 and outs[0].text == "read <data>/train and ~/x\n"
    assert nb.cells[1].metadata["mystnb"] == {"figure": {"caption": "A caption", "name": "fig-a"},
                                              "image": {"alt": "Alt"}}
    assert "fmask" not in outs[1].metadata and "widgets" not in nb.metadata
    assert nb.metadata["papermill"] == {"parameters": {"data_root": "<data>"}}
    assert nb.metadata["fmask"]["status"] == "completed"


def test_non_default_profiles_do_not_write_the_committed_book():
    assert book.default_out("cpu") == book.REPO_ROOT
    assert book.default_out("smoke") == book.REPO_ROOT / "_build" / "smoke"
    assert book.default_out("/x/mine.yaml") == book.REPO_ROOT / "_build" / "mine"


def test_missing_parameters_cell_is_an_error(tmp_path):
    (tmp_path / "01_x.py").write_text("# %%\nprint(1)\n")
    with pytest.raises(book.BookError, match="parameters"):
        book.convert_notebook(tmp_path / "01_x.py", tmp_path / "o.ipynb")


def test_html_checker_detects_broken_images_and_tracebacks(tmp_path, chromium):
    exe = chromium
    import base64

    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
    )
    (tmp_path / "ok.png").write_bytes(png)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "good.html").write_text('<html><body><article style="width:600px"><p>hello</p>'
                                        '<img src="ok.png" alt="a dot" style="width:500px"></article></body></html>')
    (tmp_path / "wide.html").write_text('<html><body><article style="width:600px"><p>x</p><img src="ok.png" alt="a dot" '
                                        'style="width:900px"><img src="ok.png"></article></body></html>')
    (tmp_path / "bad.html").write_text(
        '<html><body><p>x</p><img src="empty.png"><img src="missing.png">'
        '<div class="output traceback">Traceback (most recent call last): boom</div></body></html>'
    )
    res = {r.page: r for r in book.check_html(tmp_path, chromium=exe)}
    assert set(res) == {"good.html", "bad.html", "wide.html"}
    assert res["good.html"].ok and res["good.html"].images == 1
    wide = res["wide.html"]  # a 900 px image in a 600 px column, and an image without alt text
    assert not wide.ok and len(wide.too_wide) == 1 and "900 px > column 600 px" in wide.too_wide[0]
    assert wide.no_alt == ["ok.png"] and not wide.broken_images
    assert not res["bad.html"].ok
    assert sorted(res["bad.html"].broken_images) == ["empty.png", "missing.png"]
    assert res["bad.html"].errors


# ------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory):
    """All notebooks executed with the smoke profile into a temp dir, and the book built there."""
    data = os.environ.get("FMASK_DATA")
    if not data:
        pytest.skip("FMASK_DATA is not set: the end-to-end book run needs the Imagenette copy")
    if not Path(data).is_dir():
        pytest.fail(f"FMASK_DATA={data} does not exist")
    out = tmp_path_factory.mktemp("book")
    artifacts = tmp_path_factory.mktemp("artifacts")
    lines: list[str] = []
    run = book.run_book("smoke", out=out, data=data, artifacts=artifacts, log=lines.append)
    return run, lines


def test_smoke_book_executes_every_notebook_and_builds(smoke_book):
    run, lines = smoke_book
    names = book.discover_notebooks()
    assert run.notebooks == book.runner.execution_order(names)  # the report runs last
    for n in names:
        nb = json.loads((run.book_dir / f"{n}.ipynb").read_text())
        outs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
        assert not any(o.get("output_type") == "error" for o in outs), n
        assert (run.html_dir / "book" / f"{n}.html").exists(), n
        assert any(n in line and "done" in line for line in lines), f"no progress line for {n}"
    rts = report.load_runtimes(run.results_dir)
    assert set(names) <= set(rts) and all(rts[n]["ok"] for n in names)
    assert (run.html_dir / "book" / "intro.html").exists()
    intro = (run.html_dir / "book" / "intro.html").read_text()
    assert "smoke" in intro  # the profile is stated on the static page too
    # the committed notebooks in the repository were not touched by the test run
    assert run.book_dir != book.REPO_ROOT / "book"
    results = report.load_results(run.results_dir)
    assert "blue_shift" in results and "data" in results
    # the reader's page: no plumbing, no widget state, no machine-local paths, captioned figures
    local = [str(book.REPO_ROOT), "/work/", "/home/", "/tmp/", "/root/", str(run.root)]
    n_figures = 0
    for n in names:
        text = (run.book_dir / f"{n}.ipynb").read_text()
        assert "application/vnd.jupyter.widget" not in text, n
        assert '"widgets"' not in text, n
        for p in local:
            assert p not in text, f"{n} contains the machine-local path {p}"
        nb = json.loads(text)
        assert not any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"]), n
        assert book.notebook_status(run.book_dir / f"{n}.ipynb") == "completed"
        for c in nb["cells"]:
            fig = c["metadata"].get("mystnb", {}).get("figure")
            if fig:
                n_figures += 1
                assert fig["caption"] and fig["name"] and c["metadata"]["mystnb"]["image"]["alt"], n
            for o in c.get("outputs", []):
                assert o.get("name") != "stderr", f"{n} has stderr output: {o.get('text', '')[:200]}"
    assert n_figures >= 8
    assert run.sphinx_warnings is not None
    assert results["data"]["subsets"]["paper"]["train"] > 0
    if "08_report" in names:
        html = (run.html_dir / "book" / "08_report.html").read_text()
        assert "Table 1" in html and "Runtime of every stage" in html and "The claims ledger" in html
        # chapter 8 wrote the ledger beside the results (skipped by load_results), with every claim
        doc = json.loads((run.results_dir / "claims.json").read_text())
        assert len(doc["claims"]) >= 12 and "claims" not in results
        assert sum(n for group in doc["counts"].values() for n in group.values()) == len(doc["claims"])
        # the introduction opens with the generated ledger table, linked to the chapters, and the build info
        assert '<table' in intro and "reproduced" in intro
        linked = {e["chapter"] for e in doc["claims"]}
        assert any(f'href="{c}.html' in intro for c in linked), "no chapter link in the intro's ledger table"
        assert (run.book_dir / "_generated" / "build_info.md").is_file()
        assert (run.book_dir / "_generated" / "claims_table.md").read_text().count("\n| ") >= len(doc["claims"])


def test_smoke_book_pages_render_in_chromium(smoke_book, chromium):
    exe = chromium
    run, _ = smoke_book
    checks = book.check_html(run.html_dir, chromium=exe)
    pages = {c.page for c in checks}
    for n in run.notebooks:
        assert f"book/{n}.html" in pages
    bad = [c for c in checks if not c.ok]
    assert not bad, bad
    # chapters with figures really have (loaded) images
    by_page = {c.page: c for c in checks}
    assert by_page["book/01_blue_shift.html"].images >= 2
    assert by_page["book/02_data.html"].images >= 2
    html = (run.html_dir / "book" / "04_dataset_masks.html").read_text()
    assert "Fig. " in html and "figcaption" in html  # numbered, captioned figures


# ------------------------------------------------------------------------------------ blue shift

from fmask.analysis import blueshift


def test_linear_has_no_blue_shift_nonlinear_do():
    res = blueshift.activation_spectra(n=128, base=4)
    assert res.shifted["identity"] < 1e-12
    for name in ("softplus", "tanh", "relu", "hardtanh"):
        assert res.shifted[name] > 1e-3, name
    # odd activations: no even harmonic; relu: even harmonic present
    assert res.spectra["tanh"][8] < 1e-10 and res.spectra["tanh"][12] > 1e-6
    assert res.spectra["relu"][8] > 1e-3


def test_intermodulation_products():
    im = blueshift.intermodulation(n=256, f1=5, f2=12, activation="relu")
    assert all(p["present"] for p in im["products"].values())
    lin = blueshift.intermodulation(n=256, f1=5, f2=12, activation="identity")
    assert lin["new"] == [] and lin["present"] == [5, 12]


def test_bad_input():
    with pytest.raises(ValueError):
        blueshift.sinusoid(64, [40])
    with pytest.raises(ValueError):
        blueshift.activation_spectra(activations=("nope",))


def test_default_artifacts_are_the_store_default_root(tmp_path, monkeypatch):
    from fmask.book import runner
    from fmask.infra.store import default_root

    monkeypatch.delenv("FMASK_ARTIFACTS", raising=False)
    monkeypatch.chdir(tmp_path)  # wherever it runs from
    assert runner.resolve_artifacts(None) == str(default_root())
    monkeypatch.setenv("FMASK_ARTIFACTS", str(tmp_path / "store"))
    assert runner.resolve_artifacts(None) == str(tmp_path / "store")
    assert runner.resolve_artifacts(tmp_path / "x") == str((tmp_path / "x").resolve())


def test_stage_progress_reaches_the_terminal_not_the_page(tmp_path, capsys):
    """A bar opened with fmask.infra.runtime.progress_bar inside a chapter shows on the runner's stdout (relayed
    through $FMASK_PROGRESS_FILE) while the executed notebook carries no trace of it."""
    src, out = tmp_path / "nbs", tmp_path / "out"
    src.mkdir()
    _write_chapter(src, '''
        import time
        from fmask.infra.runtime import progress_bar
        for i in progress_bar(range(3), desc="stage-xyz", progress=True, mininterval=0):
            time.sleep(0.4)
        print("chapter done")
    ''')
    book.run_book("smoke", out=out, src_dir=src, build=False, log=lambda s: None, progress=True)
    captured = capsys.readouterr().out
    assert "stage-xyz" in captured and "3/3" in captured
    import nbformat

    nb = nbformat.read(str(out / "book" / "01_x.ipynb"), as_version=4)
    outputs = json.dumps([o for c in nb.cells for o in c.get("outputs", [])])
    assert "chapter done" in outputs and "stage-xyz" not in outputs


def test_progress_bar_writes_to_the_progress_file_only_when_asked(tmp_path, monkeypatch):
    import fmask.infra.runtime as rt

    f = tmp_path / "p.log"
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv(rt.PROGRESS_FILE_ENV, str(f))
    for _ in rt.progress_bar(range(2), desc="kept", progress=True):
        pass
    for _ in rt.progress_bar(range(2), desc="silenced", progress=False):
        pass
    text = f.read_text()
    assert "kept" in text and "silenced" not in text
    monkeypatch.delenv(rt.PROGRESS_FILE_ENV)
    assert rt.progress_bar(range(2), desc="x").disable  # TQDM_DISABLE alone: no bar at all


def test_committed_book_is_clean_and_complete():
    """The executed cpu book committed in book/: one completed notebook per chapter source, no papermill
    injected cell, no widget state, no machine-local path, and the ledger the intro includes."""
    import nbformat

    committed = sorted((book.REPO_ROOT / "book").glob("*.ipynb"))
    names = [p.stem for p in committed]
    assert names == book.discover_notebooks(), "re-run `make book` so that book/ matches notebooks/"
    local = ["/work/", "/home/", "/tmp/", "/root/", str(book.REPO_ROOT)]
    for p in committed:
        text = p.read_text()
        assert book.notebook_status(p) == "completed", p.name
        assert "application/vnd.jupyter.widget" not in text and '"widgets"' not in text, p.name
        assert not [s for s in local if s in text], (p.name, [s for s in local if s in text])
        nb = nbformat.read(str(p), as_version=4)
        assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells), p.name
    for p in sorted((book.REPO_ROOT / "book" / "results").rglob("*.json")):
        text = p.read_text()
        assert not [s for s in local if s in text], (p.name, [s for s in local if s in text])
    claims = json.loads((book.REPO_ROOT / "book" / "results" / "claims.json").read_text())
    entries = claims["claims"] if isinstance(claims, dict) else claims
    assert len(entries) >= 12


def test_a_figure_cell_with_other_rich_outputs_is_refused():
    """myst-nb labels every rich output of a figure cell with the figure's name (a duplicate target): the
    runner refuses such a chapter instead of publishing a warning-ridden page."""
    from nbformat import v4

    def fig_out():
        return v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"},
                             metadata={"fmask": {"figure": {"name": "fig-x", "caption": "c", "alt": "a"}}})

    table = v4.new_output("display_data", data={"text/markdown": "| a |\n| - |\n| 1 |", "text/plain": "t"})
    nb = v4.new_notebook(cells=[v4.new_code_cell("ch.figure(...); ch.table(...)", outputs=[fig_out(), table])])
    with pytest.raises(book.BookError, match="cell of its own"):
        book.postprocess_notebook(nb)
    nb = v4.new_notebook(cells=[v4.new_code_cell("ch.figure(...)", outputs=[fig_out()])])
    assert book.postprocess_notebook(nb).cells[0].metadata["mystnb"]["figure"]["name"] == "fig-x"
