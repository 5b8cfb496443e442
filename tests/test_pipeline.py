"""fmask.experiment.run: stages are cached by parameters (load, never recompute; new parameters, new artifact).

Runs on a tiny fake Imagenette written to a temporary folder (5 class folders, 32 px JPEGs), so it needs
neither the real data nor a network; two regimes, one epoch, a few mask steps.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fmask.experiment import run as pipeline
from fmask.data import IMAGENETTE_WNIDS, PAPER_CLASSES
from fmask.experiment.run import Run
from fmask.experiment.profiles import load_profile
from fmask.infra.store import ArtifactStore

N_PER_CLASS = 4


@pytest.fixture(scope="module")
def fake_imagenette(tmp_path_factory):
    """A folder in Imagenette's layout: train/ and val/ with N_PER_CLASS 40x40 JPEGs per paper class."""
    root = tmp_path_factory.mktemp("imagenette")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:40]
    for split in ("train", "val"):
        for k, idx in enumerate(PAPER_CLASSES):
            folder = root / split / IMAGENETTE_WNIDS[idx]
            folder.mkdir(parents=True)
            for i in range(N_PER_CLASS):
                grating = 0.5 + 0.4 * np.sin(2 * np.pi * (k + 1) * (xx + 3 * i) / 40.0)
                img = np.clip(grating + 0.1 * rng.standard_normal((40, 40)), 0, 1)
                Image.fromarray((255 * img).astype(np.uint8)).convert("RGB").save(folder / f"{split}_{i}.JPEG")
    return root


def _profile(root, **overrides):
    base = {
        "data.root": str(root),
        "data.max_per_class": N_PER_CLASS,
        "device": "cpu",
        "train.regimes": ["vanilla", "adversarial"],
        "train.epochs": 1,
        "train.robust_eval_n": 4,
        "dataset_mask.epochs": 1,
        "dataset_mask.batch_size": 5,
        "single_mask.steps": 3,
        "selection.n_images": 3,
        "single_mask.batch_size": 2,
    }
    base.update(overrides)
    return load_profile("smoke", base)


@pytest.fixture(scope="module")
def first_run(fake_imagenette, tmp_path_factory):
    art = tmp_path_factory.mktemp("artifacts")
    res = tmp_path_factory.mktemp("results")
    run = Run.from_profile(_profile(fake_imagenette), artifacts=art, results_dir=res, progress=False)
    dm = run.dataset_mask("vanilla")
    sel = run.single_image_selection()
    sm = run.single_image_masks()
    return {"run": run, "art": art, "res": res, "dm": dm, "sel": sel, "sm": sm}


def test_first_run_computes_and_records(first_run):
    run = first_run["run"]
    assert run.regimes == ["vanilla", "adversarial"]
    assert run.provenance["dataset_mask.vanilla"] == "computed"
    assert run.provenance["train.vanilla"] == "computed"
    x, y = run.val_data()
    assert x.shape == (5 * N_PER_CLASS, 1, 32, 32) and y.shape == (5 * N_PER_CLASS,)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    dm = first_run["dm"]
    assert dm.masks.shape == (1, 1, 32, 32)
    assert float(dm.masks.min()) >= 0.0 and float(dm.masks.max()) <= 1.0
    assert run.store.exists("dataset_mask", run.dataset_mask_key("vanilla"))
    runtimes = {p.stem for p in (first_run["res"] / "runtimes").glob("*.json")}
    assert {"dataset_mask.vanilla", "single_image_selection", "single_image_masks.pgd"} <= runtimes


def test_second_run_loads_instead_of_recomputing(first_run, fake_imagenette, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("no mask learner may run: the artifacts exist")

    monkeypatch.setattr(pipeline, "DatasetMask", boom)
    monkeypatch.setattr(pipeline, "PerImageMasks", boom)
    run2 = Run.from_profile(_profile(fake_imagenette), artifacts=first_run["art"], results_dir=first_run["res"],
                            progress=False)
    dm2 = run2.dataset_mask("vanilla")
    assert run2.provenance["dataset_mask.vanilla"] == "loaded"
    assert run2.provenance["train.vanilla"] == "loaded"
    assert torch.equal(dm2.masks, first_run["dm"].masks)
    sm2 = run2.single_image_masks()
    for w in pipeline.SINGLE_MASK_KINDS:
        assert run2.provenance[f"single_image_masks.{w}"] == "loaded"
        assert torch.equal(sm2[w].masks, first_run["sm"][w].masks)
    sel2 = run2.single_image_selection()
    assert torch.equal(sel2.idx, first_run["sel"].idx) and sel2.criterion == first_run["sel"].criterion


def test_different_parameters_give_a_different_artifact(first_run, fake_imagenette):
    prof = _profile(fake_imagenette, **{"dataset_mask.lam": 0.5})
    run3 = Run.from_profile(prof, artifacts=first_run["art"], results_dir=first_run["res"], progress=False)
    k1 = first_run["run"].dataset_mask_key("vanilla")
    k3 = run3.dataset_mask_key("vanilla")
    assert k1 != k3
    store = ArtifactStore(first_run["art"])
    assert store.path("dataset_mask", k1) != store.path("dataset_mask", k3)
    dm3 = run3.dataset_mask("vanilla")
    assert run3.provenance["dataset_mask.vanilla"] == "computed"
    assert run3.provenance["train.vanilla"] == "loaded"  # the model does not depend on the mask settings
    assert dm3.params["lam"] == 0.5 and first_run["dm"].params["lam"] == 0.2
    assert len(list((first_run["art"] / "dataset_mask").glob("*.pt"))) == 2


def test_selection_and_single_masks_are_consistent(first_run):
    run, sel, sm = first_run["run"], first_run["sel"], first_run["sm"]
    n = sel.counts["selected"]
    assert 1 <= n <= 3 and sel.images.shape == (n, 1, 32, 32)
    assert sel.criterion in ("both_correct_and_fooled", "vanilla_fooled", "vanilla_correct", "all")
    x, y = run.val_data()
    assert torch.equal(sel.images, x[sel.idx]) and torch.equal(sel.labels, y[sel.idx])
    eps = run.pgd_settings()["eps"]
    assert float((sel.adv_images - sel.images).abs().max()) <= eps + 1e-6
    for w in pipeline.SINGLE_MASK_KINDS:
        assert sm[w].masks.shape == (n, 1, 32, 32)
        assert sm[w].params["per_image"] is True
    assert torch.equal(sm["pgd"].history["target"], sel.adv_predictions)


def test_run_stage_keeps_values_per_parameters_not_per_name(tmp_path):
    run = Run.from_profile("smoke", artifacts=tmp_path / "art", results_dir=tmp_path / "res", progress=False)
    calls = []

    def make(v):
        def compute():
            calls.append(v)
            return {"v": torch.tensor(v)}
        return compute

    a = run.stage("probe", "probe", run.stage_key("probe", n=1), make(1))
    b = run.stage("probe", "probe", run.stage_key("probe", n=2), make(2))  # same name, other parameters
    assert int(a["v"]) == 1 and int(b["v"]) == 2 and calls == [1, 2]
    assert run.stage("probe", "probe", run.stage_key("probe", n=1), make(3)) is a  # kept in memory
    assert calls == [1, 2] and run.provenance["probe"] == "computed"
    assert run.store.exists("probe", run.stage_key("probe", n=2))


def test_compare_subset_masks_are_a_stage_of_the_run(first_run, fake_imagenette):
    from fmask.experiment import compare

    run = first_run["run"]
    c = compare.table2_subset(run, 2, learn=True)
    sel = run.single_image_selection()
    sub = compare.balanced_subset(sel.labels, 2, run.seed)
    key = {"stage": "compare_single_image_masks", "version": 1, "model": run.model("vanilla").key,
           "selection": sel.params, "subset": sub.tolist(), "settings": run.single_mask_params, "seed": run.seed}
    assert run.store.exists("compare_single_image_masks", key)
    assert run.provenance["compare_single_image_masks"] == "computed" and c["n"] == len(sub)
    run2 = Run.from_profile(_profile(fake_imagenette), artifacts=first_run["art"], results_dir=first_run["res"],
                            progress=False)
    assert compare.table2_subset(run2, 2, learn=True) == c
    assert run2.provenance["compare_single_image_masks"] == "loaded"


def test_bad_profiles_are_rejected_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="seed"):
        Run({"name": "x"})
    with pytest.raises(ValueError, match="device"):
        Run({"name": "x", "seed": 0, "device": "tpu"})
    with pytest.raises(ValueError, match="did you mean 'lam'"):
        Run({"name": "x", "seed": 0, "single_mask": {"lamda": 0.1}}, artifacts=tmp_path)


def test_learners_get_the_profile_sections_as_keyword_arguments(first_run, fake_imagenette, monkeypatch, tmp_path):
    """Run passes asdict(section) to DatasetMask / PerImageMasks, plus seed, device and progress."""
    from dataclasses import asdict

    seen = {}

    class Spy:
        def __init__(self, name):
            self.name = name

        def __call__(self, model, **kw):
            seen[self.name] = kw
            raise RuntimeError("stop")

    monkeypatch.setattr(pipeline, "DatasetMask", Spy("dataset"))
    monkeypatch.setattr(pipeline, "PerImageMasks", Spy("single"))
    prof = _profile(fake_imagenette, **{"dataset_mask.lam": 0.3, "single_mask.lam": 0.05})
    run = Run.from_profile(prof, artifacts=first_run["art"], results_dir=tmp_path, progress=False)
    with pytest.raises(RuntimeError, match="stop"):
        run.dataset_mask("vanilla")
    with pytest.raises(RuntimeError, match="stop"):
        run.single_image_masks(["vanilla"])
    common = {"seed": prof.seed, "device": torch.device("cpu"), "progress": False}
    assert seen["dataset"] == {**asdict(prof.dataset_mask), **common}
    assert seen["single"] == {**asdict(prof.single_mask), **common}
    assert seen["dataset"]["lam"] == 0.3 and seen["single"]["lam"] == 0.05


def test_robust_accuracy_stage_and_one_trained_model_type(first_run, fake_imagenette):
    from fmask.training import fit as train

    run = first_run["run"]
    assert pipeline.TrainedModel is train.TrainedModel
    tm = run.model("vanilla")
    assert isinstance(tm, train.TrainedModel) and tm.key == tm.params and tm.checkpoint.exists()
    r = run.robust_accuracy("vanilla")
    assert set(r) == {"clean", "pgd"} and 0 <= r["pgd"] <= 1 and 0 <= r["clean"] <= 1
    assert run.provenance["robust_accuracy.vanilla"] == "computed"
    run2 = Run.from_profile(_profile(fake_imagenette), artifacts=first_run["art"], results_dir=first_run["res"],
                            progress=False)
    assert run2.robust_accuracy("vanilla") == r and run2.provenance["robust_accuracy.vanilla"] == "loaded"
    assert run.pgd_settings() == {"eps": run.profile.train.adv_eps, "alpha": run.profile.train.adv_eps / 8,
                                  "steps": run.profile.train.adv_steps}
