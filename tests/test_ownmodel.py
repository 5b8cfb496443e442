"""fmask.learners.own: masks for your own classifier (any nn.Module / torchvision arch, grayscale or RGB)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import make_tiny_cnn
from fmask.learners import MaskResult
from fmask.models.zoo import Normalized, build_model
from fmask.learners.own import learn_own_masks, load_images, prepare_model, run_own_masks
from fmask.infra.store import ArtifactStore

RGB_MEAN = (0.485, 0.456, 0.406)


@pytest.fixture(scope="module")
def resnet():
    """torchvision ResNet18, random weights (seeded), 4 classes, RGB with ImageNet normalisation."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return prepare_model("torchvision:resnet18", num_classes=4)


def _rgb(n=3, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------- prepare_model
def test_prepare_model_builds_torchvision_archs_without_downloads(resnet):
    assert isinstance(resnet, Normalized) and not resnet.training
    assert resnet.in_channels == 3 and torch.allclose(resnet.mean.flatten(), torch.tensor(RGB_MEAN))
    assert resnet.net.fc.out_features == 4
    assert resnet(_rgb()).shape == (3, 4)
    gray = prepare_model("torchvision:resnet18", num_classes=3, in_channels=1)
    assert gray.net.conv1.in_channels == 1 and gray.net.conv1.out_channels == 64
    assert gray.net.conv1.kernel_size == (7, 7) and gray.net.conv1.stride == (2, 2)
    assert gray.mean.flatten().tolist() == pytest.approx([0.449])
    assert gray(torch.rand(2, 1, 32, 32)).shape == (2, 3)
    mob = prepare_model("torchvision:mobilenet_v3_small", num_classes=2, in_channels=1, mean=0.5, std=0.25)
    assert mob.net.features[0][0].in_channels == 1 and mob.mean.flatten().tolist() == [0.5]
    assert mob(torch.rand(2, 1, 32, 32)).shape == (2, 2)
    small = prepare_model("vgg_small", num_classes=5, in_channels=1)
    assert small(torch.rand(2, 1, 32, 32)).shape == (2, 5)
    assert prepare_model("fmask:vgg_small", in_channels=3).in_channels == 3
    for arch in ("torchvision:not_a_net", "keras:resnet", "nope"):
        with pytest.raises(ValueError):
            prepare_model(arch)
    with pytest.raises(ValueError):  # no default normalisation for 2 channels
        prepare_model("torchvision:resnet18", in_channels=2)
    with pytest.raises(ValueError):
        prepare_model("torchvision:resnet18", num_classes=1)


def test_prepare_model_wraps_modules_with_declared_normalisation():
    net = make_tiny_cnn(3, 4, seed=0)
    with pytest.raises(ValueError, match="declare"):
        prepare_model(net)
    m = prepare_model(net, mean=0.0, std=1.0)  # a network that takes [0, 1] images directly
    assert isinstance(m, Normalized) and m.net is net and m.in_channels == 3  # channels from the first conv
    x = _rgb(2)
    assert torch.allclose(m(x), net(x))
    m2 = prepare_model(net, mean=RGB_MEAN, std=(0.2, 0.2, 0.2), num_classes=4)
    assert torch.allclose(m2(x), net((x - torch.tensor(RGB_MEAN).view(1, 3, 1, 1)) / 0.2), atol=1e-6)
    with pytest.raises(ValueError):  # declared stats for the wrong number of channels
        prepare_model(net, mean=(0.5, 0.5), std=(0.2, 0.2), in_channels=3)
    with pytest.raises(ValueError):
        prepare_model(net, mean=0.5, std=0.0)
    with pytest.raises(ValueError):  # the module returns 4 logits
        prepare_model(net, mean=0.5, std=0.2, num_classes=7)
    with pytest.raises(ValueError):
        prepare_model(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), mean=0.5, std=0.2)  # channels unknown
    assert prepare_model(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), mean=0.5, std=0.2,
                         in_channels=3).in_channels == 3
    # an fmask model passes through; it already declares its normalisation
    fm = build_model("vgg_small", in_channels=1, num_classes=3)
    assert prepare_model(fm) is fm
    with pytest.raises(ValueError):
        prepare_model(fm, mean=0.5, std=0.2)
    with pytest.raises(ValueError):
        prepare_model(fm, in_channels=3)
    with pytest.raises(ValueError):
        prepare_model(42)


def test_prepare_model_loads_checkpoints_in_every_accepted_layout(tmp_path, resnet):
    sd = resnet.net.state_dict()
    layouts = {
        "plain": sd,
        "state_dict": {"state_dict": sd, "epoch": 3},
        "model": {"model": sd, "optimizer": {}},
        "net_prefix": resnet.state_dict(),  # a Normalized state_dict: net.* keys plus mean/std
        "module_prefix": {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
    }
    x = _rgb(2, seed=3)
    ref = resnet(x)
    for name, blob in layouts.items():
        path = tmp_path / f"{name}.pt"
        torch.save(blob, path)
        m = prepare_model("torchvision:resnet18", checkpoint=path)  # num_classes read from the checkpoint
        assert m.net.fc.out_features == 4, name
        assert torch.allclose(m(x), ref, atol=1e-5), name
    # a loaded dict works too
    assert torch.allclose(prepare_model("torchvision:resnet18", checkpoint=sd)(x), ref, atol=1e-5)
    # fmask's own model artifact (ArtifactStore payload {"state_dict": Normalized state}) with its mean/std
    fm = build_model("vgg_small", in_channels=1, num_classes=3, mean=(0.3,), std=(0.1,))
    store = ArtifactStore(tmp_path / "store")
    art = store.save("model", {"arch": "vgg_small"}, {"state_dict": fm.state_dict()})
    m = prepare_model("vgg_small", checkpoint=art)
    assert m.in_channels == 1 and m.mean.flatten().tolist() == pytest.approx([0.3])
    xg = torch.rand(2, 1, 32, 32)
    assert torch.allclose(m(xg), fm.eval()(xg), atol=1e-5)
    with pytest.raises(ValueError, match="checkpoint declares"):
        prepare_model("vgg_small", checkpoint=art, mean=0.5, std=0.1)
    # the same checkpoint into an existing Normalized model
    fm2 = build_model("vgg_small", in_channels=1, num_classes=3, mean=(0.3,), std=(0.1,))
    assert torch.allclose(prepare_model(fm2, checkpoint=art)(xg), fm(xg), atol=1e-5)


def test_prepare_model_rejects_bad_checkpoints(tmp_path, resnet):
    torch.save(resnet.net, tmp_path / "pickled.pt")  # a whole pickled module: not loadable weights-only
    torch.save([1, 2, 3], tmp_path / "list.pt")
    torch.save({"epoch": 3, "note": "no weights"}, tmp_path / "meta.pt")
    bad_keys = {k.replace("layer1", "layerX"): v for k, v in resnet.net.state_dict().items()}
    torch.save(bad_keys, tmp_path / "keys.pt")
    for name in ("pickled", "list", "meta", "keys", "missing"):
        with pytest.raises(ValueError):
            prepare_model("torchvision:resnet18", checkpoint=tmp_path / f"{name}.pt")
    with pytest.raises(ValueError):  # wrong number of classes for the checkpoint
        prepare_model("torchvision:resnet18", checkpoint=resnet.net.state_dict(), num_classes=10)
    with pytest.raises(ValueError):
        prepare_model("torchvision:resnet18", checkpoint=12)


# --------------------------------------------------------------------------------------------- load_images
def _write_png(path, arr):
    Image.fromarray(arr).save(path)


def test_load_images_from_folders_and_class_folders(tmp_path):
    g = np.random.default_rng(0)
    flat = tmp_path / "flat"
    flat.mkdir()
    arrs = [g.integers(0, 256, (20, 24, 3), dtype=np.uint8) for _ in range(3)]
    for i, a in enumerate(arrs):
        _write_png(flat / f"img{i}.png", a)
    (flat / "notes.txt").write_text("ignored")
    x, y = load_images(flat)
    assert y is None and x.shape == (3, 3, 20, 24) and x.dtype == torch.float32
    assert torch.equal(x[1], torch.from_numpy(arrs[1]).permute(2, 0, 1).float() / 255)
    xs, _ = load_images(flat, size=16)  # shorter side → 16, centre crop 16×16
    assert xs.shape == (3, 3, 16, 16) and float(xs.min()) >= 0 and float(xs.max()) <= 1
    xp, _ = load_images(flat, size=(10, 12))
    assert xp.shape == (3, 3, 10, 12)
    xg, _ = load_images(flat, channels=1)
    assert xg.shape == (3, 1, 20, 24)
    # class sub-folders → labels by sorted folder name; grayscale files stay 1-channel
    cls = tmp_path / "cls"
    for k, name in enumerate(("b_dog", "a_cat")):
        (cls / name).mkdir(parents=True)
        for i in range(2 + k):
            _write_png(cls / name / f"{i}.png", g.integers(0, 256, (8, 8), dtype=np.uint8))
    x2, y2 = load_images(cls)
    assert x2.shape == (5, 1, 8, 8) and y2.tolist() == [0, 0, 0, 1, 1]  # a_cat (3 files) first
    assert load_images(cls, channels=3)[0].shape == (5, 3, 8, 8)
    # mixed sizes need size=
    _write_png(flat / "big.png", g.integers(0, 256, (30, 30, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="size"):
        load_images(flat)
    assert load_images(flat, size=12)[0].shape == (4, 3, 12, 12)
    empty = tmp_path / "empty"
    empty.mkdir()
    for bad in (dict(path=empty), dict(path=tmp_path / "nothing"), dict(path=flat / "notes.txt"),
                dict(path=flat, channels=2), dict(path=flat, size=0), dict(path=flat, size=(4,))):
        with pytest.raises(ValueError):
            load_images(**bad)
    (flat / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken"):
        load_images(flat, size=12)


def test_load_images_from_pt_files(tmp_path):
    x = torch.rand(4, 3, 10, 10)
    torch.save(x, tmp_path / "t.pt")
    got, y = load_images(tmp_path / "t.pt")
    assert torch.equal(got, x) and y is None
    torch.save({"images": (x * 255).to(torch.uint8), "labels": torch.tensor([0, 1, 1, 0])}, tmp_path / "d.pt")
    got, y = load_images(tmp_path / "d.pt", channels=1)
    assert got.shape == (4, 1, 10, 10) and y.tolist() == [0, 1, 1, 0]
    luma = (got - ((x * 255).to(torch.uint8).float() / 255 * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1))
            .sum(1, keepdim=True))
    assert float(luma.abs().max()) < 1e-6
    assert load_images(tmp_path / "t.pt", size=(6, 8))[0].shape == (4, 3, 6, 8)
    for name, blob in (("range", x * 2), ("three_d", x[0]), ("labels", {"images": x, "labels": torch.zeros(3)}),
                       ("nokey", {"imgs": x}), ("int", (x * 10).long()), ("list", [x])):
        torch.save(blob, tmp_path / f"{name}.pt")
        with pytest.raises(ValueError):
            load_images(tmp_path / f"{name}.pt")


# --------------------------------------------------------------------------------------------- masks
def test_learn_own_masks_resnet18_rgb_per_image_and_dataset(resnet):
    x = _rgb(3, 32, seed=1)
    per = learn_own_masks(resnet, x, steps=6, progress=False)
    assert isinstance(per, MaskResult) and per.masks.shape == (3, 3, 32, 32)
    assert float(per.masks.min()) >= 0 and float(per.masks.max()) <= 1
    assert float(per.masks.mean()) < 1.0  # the masks moved
    assert per.metadata["own_model"]["shared_channels"] is False
    again = learn_own_masks(resnet, x, steps=6, progress=False)
    assert torch.equal(per.masks, again.masks)  # seeded
    shared = learn_own_masks(resnet, x, steps=6, shared_channels=True, progress=False)
    assert shared.masks.shape == (3, 1, 32, 32)
    ds = learn_own_masks(resnet, x, per_image=False, epochs=2, batch_size=3, progress=False)
    assert ds.masks.shape == (1, 3, 32, 32)
    ds_shared = learn_own_masks(resnet, x, per_image=False, steps=2, batch_size=3, shared_channels=True,
                                progress=False)
    assert ds_shared.masks.shape == (1, 1, 32, 32)
    # another input size the network accepts, and labels
    x48 = _rgb(2, 48, seed=2)
    r48 = learn_own_masks(resnet, x48, targets=torch.tensor([0, 3]), steps=3, progress=False)
    assert r48.masks.shape == (2, 3, 48, 48) and r48.history["target"].tolist() == [0, 3]


def test_learn_own_masks_rejects_bad_input(resnet):
    x = _rgb(2)
    with pytest.raises(ValueError):
        learn_own_masks(resnet, x[:, :1], steps=2, progress=False)  # model declares 3 channels
    with pytest.raises(ValueError, match="unknown option"):
        learn_own_masks(resnet, x, step=2, progress=False)
    with pytest.raises(ValueError):
        learn_own_masks(resnet, x, epochs=2, progress=False)  # epochs is for dataset masks
    with pytest.raises(ValueError):
        learn_own_masks(resnet, x[0], steps=2, progress=False)
    with pytest.raises(ValueError):
        learn_own_masks("resnet", x, steps=2, progress=False)


def test_run_own_masks_end_to_end(tmp_path, resnet):
    g = np.random.default_rng(1)
    imgs = tmp_path / "imgs"
    for k in range(2):
        (imgs / f"class{k}").mkdir(parents=True)
        _write_png(imgs / f"class{k}" / "a.png", g.integers(0, 256, (40, 36, 3), dtype=np.uint8))
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"state_dict": resnet.net.state_dict()}, ckpt)
    out = tmp_path / "out" / "masks.pt"
    res = run_own_masks("torchvision:resnet18", imgs, out, checkpoint=ckpt, size=32, steps=3, progress=False)
    assert out.is_file() and res.masks.shape == (2, 3, 32, 32)
    back = MaskResult.load(out)
    assert torch.equal(back.masks, res.masks)
    assert back.metadata["model"] == "torchvision:resnet18" and back.metadata["labels"] == "given"
    assert back.history["target"].tolist() == [0, 1]
    assert not list(out.parent.glob(".*.tmp"))  # atomic write left no temporary file


def test_learn_own_masks_records_how_the_masks_were_learned(resnet):
    x = _rgb(2, 32, seed=4)
    per = learn_own_masks(resnet, x, steps=2, space="auto", progress=False)
    assert per.metadata["own_model"]["learner"] == "PerImageMasks"
    assert per.metadata["own_model"]["options_not_supported"] == []
    shared = learn_own_masks(resnet, x, steps=2, space="auto", shared_channels=True, progress=False)
    info = shared.metadata["own_model"]
    assert info["learner"] in ("PerImageMasks", "learn_masks")
    import inspect

    from fmask.learners import learn_masks
    if "space" not in inspect.signature(learn_masks).parameters and info["learner"] == "learn_masks":
        assert info["options_not_supported"] == ["space"]
    else:
        assert info["options_not_supported"] == []
