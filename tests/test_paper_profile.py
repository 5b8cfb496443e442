"""The paper profile stays runnable: every pipeline stage of ``paper.yaml`` (VGG11-bn, 128 px, all five
regimes, 10-step PGD, batch-1 dataset masks, per-image masks) runs end to end on CPU for a few steps.

Only sizes and step counts are overridden (images per class, epochs, mask steps); the network, image size,
regimes, attack and learner settings are the paper's, so a change that breaks the paper profile fails here.
"""
from __future__ import annotations

import pytest
import torch

from fmask.experiment.run import Run
from fmask.experiment.profiles import load_profile
from fmask.data.fake import write_fake_imagenette

FEW_STEPS = {
    "device": "cpu",
    "data.max_per_class": 2,      # 10 train / 10 val images
    "train.epochs": 1,
    "train.batch_size": 10,
    "train.robust_eval_n": 4,     # the training metrics' PGD accuracy on 4 images (paper: all)
    "dataset_mask.epochs": 2,     # 20 batch-1 steps: the one-cycle schedule needs more than 10
    "single_mask.steps": 2,
    "selection.n_images": 2,
}


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    root = write_fake_imagenette(tmp_path_factory.mktemp("imagenette"), n_train=2, n_val=2)
    profile = load_profile("paper", {**FEW_STEPS, "data.root": str(root)})
    assert profile.model.arch == "vgg11_bn" and profile.data.image_size == 128
    assert profile.train.adv_steps == 10 and len(profile.train.regimes) == 5
    run = Run.from_profile(profile, artifacts=tmp_path_factory.mktemp("artifacts"),
                           results_dir=tmp_path_factory.mktemp("results"), progress=False)
    return run


def test_every_stage_of_the_paper_profile_runs(paper_run):
    run = paper_run
    models = run.models()
    assert list(models) == ["vanilla", "adversarial", "scale", "translate", "rotate"]
    x, y = run.val_data()
    assert tuple(x.shape[1:]) == (1, 128, 128) and len(y) == 10
    masks = run.dataset_masks()
    for r, m in masks.items():
        assert m.masks.shape == (1, 1, 128, 128), r
        assert bool(torch.isfinite(m.masks).all()) and float(m.masks.min()) >= 0 and float(m.masks.max()) <= 1
        assert m.params["space"] == "normalised"  # the paper's code masks the normalised image
    acc = run.robust_accuracy("vanilla")
    assert 0 <= acc["pgd"] <= acc["clean"] + 1e-9 <= 1 + 1e-9
    sel = run.single_image_selection()
    assert 1 <= len(sel.idx) <= 2
    single = run.single_image_masks()
    assert set(single) == {"vanilla", "adversarial", "pgd", "adversarial_pgd"}
    for k, m in single.items():
        assert m.masks.shape == (len(sel.idx), 1, 128, 128), k
        assert int(m.steps.max()) <= 2
