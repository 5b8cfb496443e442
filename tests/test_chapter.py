"""fmask.book.chapter (the set-up every chapter shares), fmask.analysis.datastats and fmask.analysis.probe."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fmask.analysis import probe
from fmask.book import chapter


@pytest.fixture
def displayed(monkeypatch):
    """Capture what the helper displays and glues instead of sending it to a kernel."""
    shown, glued = [], {}
    import IPython.display
    import myst_nb

    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: shown.append((a, k)))
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.__setitem__(name, (value, display)))
    return shown, glued


def test_open_glues_profile_and_bookkeeping_returns_none(tmp_path, displayed):
    shown, glued = displayed
    ch = chapter.open(profile="smoke", results_dir=tmp_path, extra_param=1)
    assert glued["profile"] == ("smoke", False)
    assert repr(ch) == "Chapter(profile='smoke')" and str(tmp_path) not in repr(ch)
    assert ch.glue("a", 0.1234, ".2f") is None and glued["a"] == ("0.12", False)
    assert ch.glue("b", None) is None and glued["b"] == ("n/a", False)
    assert ch.glue_pct("c", 0.5) is None and glued["c"] == ("50.0%", False)
    assert ch.glue_pct("d", float("nan")) is None and glued["d"] == ("n/a", False)
    assert ch.table([{"x": 1.0}]) is None and "| x |" in shown[-1][0][0].data
    assert ch.save("res", {"v": 1}) is None
    rec = json.loads((tmp_path / "res.json").read_text())
    assert rec["meta"]["profile"] == "smoke" and rec["meta"]["seed"] == ch.seed
    assert ch.setting("train", "epochs") == 1 and ch.setting("train", "nope", 7) == 7


def test_open_fails_at_once_on_an_unwritable_artifact_store(tmp_path, displayed, monkeypatch):
    from fmask.infra.integrity import StoreError

    blocker = tmp_path / "file"
    blocker.write_text("x")  # a folder below a regular file cannot be created, even by root
    store = blocker / "artifacts"
    with pytest.raises(StoreError, match="not writable") as err:
        chapter.open(profile="smoke", artifacts_dir=store, results_dir=tmp_path / "r")
    msg = str(err.value)
    assert str(store) in msg and "\n" not in msg
    _, glued = displayed
    assert "profile" not in glued  # failed before anything else happened
    monkeypatch.setenv("FMASK_ARTIFACTS", str(store))  # the default store is checked too
    with pytest.raises(StoreError, match="not writable"):
        chapter.open(profile="smoke", results_dir=tmp_path / "r")
    ok = tmp_path / "store"
    assert chapter.open(profile="smoke", artifacts_dir=ok, results_dir=tmp_path / "r").artifacts_dir == ok
    assert ok.is_dir()


def test_figure_sends_hidpi_png_with_size_and_caption_metadata(tmp_path, displayed):
    from fmask import plots

    shown, _ = displayed
    ch = chapter.Chapter("smoke", results_dir=tmp_path)
    fig = plots.band_partitions((16, 16), 4)
    assert ch.figure(fig, "fig-x", "A caption.", alt="Alt text") is None
    (bundle,), kw = shown[-1]
    assert kw["raw"] is True and bundle["image/png"][:4] == b"\x89PNG"
    meta = kw["metadata"]
    assert meta["fmask"]["figure"] == {"name": "fig-x", "caption": "A caption.", "alt": "Alt text"}
    w = meta["image/png"]["width"]
    assert w <= 7.2 * 96  # fits the ~690 px column at 96 px per inch
    import struct

    png_w = struct.unpack(">II", bundle["image/png"][16:24])[0]
    assert png_w == pytest.approx(2 * w, abs=2)  # twice the display resolution
    with pytest.raises(ValueError, match="caption"):
        ch.figure(fig, "fig-y", "")


def test_datastats_radial_spectrum_and_power_law():
    from fmask.analysis import datastats

    # an image with a known 1/f^2 power spectrum (amplitude 1/f), random phases, seeded
    g = torch.Generator().manual_seed(0)
    n = 64
    fy, fx = torch.meshgrid(torch.fft.fftfreq(n) * n, torch.fft.fftfreq(n) * n, indexing="ij")
    r = torch.sqrt(fx ** 2 + fy ** 2).clamp_min(1.0)
    phase = torch.rand(8, 1, n, n, generator=g) * 2 * torch.pi
    imgs = torch.fft.ifft2(torch.polar(1.0 / r, phase)).real
    radial = datastats.radial_power_spectrum(imgs)
    assert radial.shape == (n // 2,)
    assert datastats.power_law_exponent(radial) == pytest.approx(2.0, abs=0.3)
    with pytest.raises(ValueError):
        datastats.radial_power_spectrum(imgs[0])


def test_probe_study_is_seeded_and_handles_tiny_sets():
    from fmask.analysis import probe

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 4
    masks = torch.rand(40, 1, 8, 8, generator=g) * 0.1
    for k in range(4):  # class-specific frequencies
        masks[labels == k, 0, k + 1, k + 1] = 1.0
    a = probe.class_specificity_study(masks, labels, seed=3, repeats=2, umap_neighbors=5)
    b = probe.class_specificity_study(masks, labels, seed=3, repeats=2, umap_neighbors=5)
    assert a.table3 == b.table3 and a.test_repeats == b.test_repeats
    assert np.array_equal(a.embeddings["masks"], b.embeddings["masks"])
    assert a.table3["true_labels"]["test"] > a.table3["random_labels"]["test"]
    assert set(a.embeddings) == {"masks", "true_labels", "random_labels"} and len(a.test_repeats["true_labels"]) == 2
    tiny = probe.class_specificity_study(masks[:2], labels[:2], seed=0)
    assert tiny.table3 == {} and "too few" in tiny.reason and tiny.summary()["n_masks"] == 2 and not tiny.embeddings
    with pytest.raises(ValueError, match="labels"):
        probe.class_specificity_study(masks, labels[:5], seed=0)


def test_class_specificity_study_records_split_sizes_chance_and_null():
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(40) % 4
    masks = torch.rand(40, 1, 8, 8, generator=g) * 0.1
    for k in range(4):
        masks[labels == k, 0, k + 1, k + 1] = 1.0
    a = probe.class_specificity_study(masks, labels, seed=3, umap_neighbors=5, null_permutations=5)
    s = a.summary()
    # linear_probe's split: n_train = int(40 * 0.85) = 34, n_test = 6; four balanced classes -> chance 1/4
    assert (s["n_train"], s["n_test"], s["n_classes"], s["chance_uniform"]) == (34, 6, 4, 0.25)
    assert all(row["n_train"] == 34 and row["n_test"] == 6 for row in a.table3.values())
    assert s["null_permutations"] == 5 and len(s["null_train_accuracy"]) == 5
    null = probe.permutation_null(probe.mask_features(masks), labels.numpy(), seed=3, n_permutations=5)
    assert s["null_test_accuracy"] == null["test"].tolist()
    assert probe.class_specificity_study(masks, labels, seed=3, umap_neighbors=5).summary()["null_permutations"] == 0
    with pytest.raises(ValueError, match="null_permutations"):
        probe.class_specificity_study(masks, labels, seed=3, null_permutations=-1)


def test_a_chapter_run_with_another_profile_than_the_books_says_so(tmp_path, displayed):
    shown, _ = displayed
    chapter.open(profile="smoke", results_dir=tmp_path)
    text = shown[-1][0][0].data
    assert "`smoke` profile" in text and "profile cpu" in text and "not the book's" in text
    shown.clear()
    assert chapter.profile_banner("cpu") is None


def test_every_chapter_source_defaults_to_the_smoke_profile():
    """"Run all" in Binder or a plain papermill call finishes in minutes; the runner passes the book's profile."""
    import re
    from pathlib import Path

    sources = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.py"))
    assert sources
    for src in sources:
        m = re.search(r'(?m)^profile: str = "([^"]+)"', src.read_text(encoding="utf-8"))
        assert m and m.group(1) == "smoke", src.name
