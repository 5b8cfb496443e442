"""fmask.data: subsets and counts, locating/downloading errors, corrupt files, transforms in [0, 1]."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from fmask import data as D

SHARED = os.environ.get("FMASK_DATA")


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    return D.write_fake_imagenette(tmp_path_factory.mktemp("fake") / "imagenette-fake", n_train=6, n_val=3, size=(40, 48))


# ------------------------------------------------------------------------------------- the shared copy
@pytest.mark.skipif(not SHARED, reason="FMASK_DATA is not set: the real Imagenette counts need a copy")
def test_shared_copy_subset_counts():
    root = Path(SHARED)
    assert root.is_dir(), f"FMASK_DATA={SHARED} does not exist"  # set but missing: fail loudly
    r = D.find_data_root()
    counts = {c: tuple(len(D.list_split(r, s, c)[0]) for s in ("train", "val")) for c in ("paper", "first5")}
    assert counts == {"paper": (4671, 1973), "first5": (4710, 1934)}
    paths, labels = D.list_split(r, "val", "paper")
    assert sorted(set(labels)) == [0, 1, 2, 3, 4] and paths[0].parent.name == "n02102040"  # English springer → 0
    assert [D.CLASS_NAMES[w] for w in D.resolve_classes("paper")] == [
        "English springer", "chain saw", "church", "French horn", "garbage truck"]
    few = D.list_split(r, "train", "paper", max_per_class=3, seed=0)[0]
    assert len(few) == 15 and few == D.list_split(r, "train", "paper", max_per_class=3, seed=0)[0]
    assert few != D.list_split(r, "train", "paper", max_per_class=3, seed=1)[0]


def test_resolve_classes():
    assert D.resolve_classes("first5") == list(D.IMAGENETTE_WNIDS[:5])
    assert D.resolve_classes([9, "n01440764"]) == ["n03888257", "n01440764"]
    for bad in ("all", [1], [1, 1], [10, 2], ["dog", 1]):
        with pytest.raises(ValueError):
            D.resolve_classes(bad)


# ------------------------------------------------------------------------------------- locating
def test_missing_paths_are_clear_errors(monkeypatch, tmp_path):
    with pytest.raises(D.ImagenetteUnavailable, match=r"nowhere \(from the data_root parameter\) does not exist"):
        D.find_data_root(tmp_path / "nowhere")
    monkeypatch.setenv("FMASK_DATA", str(tmp_path / "gone"))
    with pytest.raises(D.ImagenetteUnavailable, match=r"gone.*FMASK_DATA"):
        D.find_data_root()
    (tmp_path / "half" / "train").mkdir(parents=True)
    with pytest.raises(D.ImagenetteUnavailable, match="lacks val/"):
        D.find_data_root(tmp_path / "half")
    monkeypatch.delenv("FMASK_DATA")
    with pytest.raises(D.ImagenetteUnavailable, match="download disabled"):
        D.find_data_root(download=False, cache_dir=tmp_path / "cache")


def test_download_failure_is_clear(tmp_path):
    # an unreachable local port: fails at once, never touches the internet
    with pytest.raises(D.ImagenetteUnavailable, match=r"could not download Imagenette from http://127\.0\.0\.1:9/.*FMASK_DATA"):
        D.download_imagenette(tmp_path, url="http://127.0.0.1:9/imagenette2-160.tgz", timeout=2, progress=False)
    assert not (tmp_path / "imagenette2-160").exists()
    assert [p for p in tmp_path.iterdir()] == []  # nothing half-written


def test_download_unpacks_archive(tmp_path, monkeypatch, fake_root):
    """The real download code path with a local file:// archive (no network)."""
    import tarfile

    src = tmp_path / "src" / "imagenette2-160"
    (src / "train" / "n01440764").mkdir(parents=True)
    (src / "val" / "n01440764").mkdir(parents=True)
    one = next((fake_root / "train" / "n01440764").iterdir())
    (src / "train" / "n01440764" / one.name).write_bytes(one.read_bytes())
    arc = tmp_path / "imagenette2-160.tgz"
    with tarfile.open(arc, "w:gz") as tf:
        tf.add(src, arcname="imagenette2-160")
    monkeypatch.delenv("FMASK_DATA", raising=False)
    monkeypatch.setitem(D.IMAGENETTE_URLS, "imagenette2-160", arc.as_uri())
    got = D.find_data_root(cache_dir=tmp_path / "cache", timeout=5)
    assert got == tmp_path / "cache" / "imagenette2-160"
    assert (got / "train" / "n01440764" / one.name).is_file()


# ------------------------------------------------------------------------------------- decoding
def test_load_split_eval_matches_pil_pipeline(fake_root):
    from PIL import Image

    ds = D.load_split("val", root=fake_root, image_size=32, progress=False)
    assert len(ds) == 15 and ds.classes == D.resolve_classes("paper")
    assert ds.images.dtype == torch.uint8 and tuple(ds.sizes[0].tolist()) == (32, 38)  # Resize(32) of 40x48
    x, y = ds.tensors()
    assert x.shape == (15, 1, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3 + [4] * 3
    ref = D.pil_transform(32, train=False)
    for i in (0, 7, 14):
        with Image.open(fake_root / ds.paths[i]) as im:
            r = ref(im.convert("RGB"))
        # the same uint8 levels as the original PIL pipeline (only x/255 float rounding may differ)
        assert torch.equal((r * 255).round(), (x[i] * 255).round())
        assert torch.allclose(r, x[i], rtol=0, atol=1e-5)
    rgb = D.load_split("val", root=fake_root, image_size=32, channels=3, progress=False)
    assert rgb.tensors()[0].shape == (15, 3, 32, 32)


def test_corrupt_file_named_or_skipped(tmp_path, fake_root):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(fake_root, root)
    bad = root / "val" / "n03000684" / "n03000684_9999.JPEG"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(D.CorruptImageError, match="n03000684_9999.JPEG"):
        D.load_split("val", root=root, image_size=32, progress=False)
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable.*n03000684_9999"):
        ds = D.load_split("val", root=root, image_size=32, skip_corrupt=True, progress=False)
    assert len(ds) == 15 and ds.skipped[0][0].endswith("n03000684_9999.JPEG")


def test_disk_cache_roundtrip(tmp_path, fake_root):
    from fmask.infra.store import ArtifactStore

    st = ArtifactStore(tmp_path / "art")
    a = D.load_split("train", root=fake_root, image_size=32, store=st, progress=False)
    files = list((tmp_path / "art" / "imagecache").glob("*.pt"))
    assert len(files) == 1
    b = D.load_split("train", root=fake_root, image_size=32, store=st, progress=False)
    assert torch.equal(a.images, b.images) and a.paths == b.paths and torch.equal(a.labels, b.labels)
    D.load_split("train", root=fake_root, image_size=40, store=st, progress=False)
    assert len(list((tmp_path / "art" / "imagecache").glob("*.pt"))) == 2  # other parameters, other file


# ------------------------------------------------------------------------------------- transforms
@pytest.mark.parametrize("regime", ["vanilla", "scale", "translate", "rotate"])
def test_train_transforms_stay_in_unit_range(fake_root, regime):
    ds = D.load_split("train", root=fake_root, image_size=32, regime=regime, progress=False)
    g = torch.Generator().manual_seed(0)
    xb, yb = next(ds.batches(16, g))
    assert xb.shape == (16, 1, 32, 32) and xb.dtype == torch.float32
    assert xb.min() >= 0 and xb.max() <= 1 and xb.std() > 0
    x1, _ = ds[0]  # per-item torchvision v2 path
    assert x1.shape == (1, 32, 32) and 0 <= x1.min() and x1.max() <= 1
    again = next(ds.batches(16, torch.Generator().manual_seed(0)))[0]
    assert torch.equal(xb, again)  # the generator fully determines the augmentation


def test_batched_augmentation_matches_torchvision():
    from torchvision.transforms.v2 import functional as F

    bt = D.BatchTrainTransform(32, "rotate")
    x = (torch.rand(3, 1, 32, 40) * 255).round()
    boxes = torch.tensor([[3, 5, 20, 25], [0, 0, 32, 40], [10, 2, 22, 17]], dtype=torch.float32)
    out = bt.resized_crop(x, boxes, torch.tensor([False, True, False])).round()
    for k in range(3):
        i, j, h, w = (int(v) for v in boxes[k])
        ref = F.resized_crop(x[k].to(torch.uint8), i, j, h, w, [32, 32], antialias=True).float()
        if k == 1:
            ref = ref.flip(-1)
        if k != 1:  # k = 1 is a 32x40 -> 32x32 downscale, where antialiasing differs (documented)
            assert (ref - out[k]).abs().max() <= 1  # rounding order only
    sq = (torch.rand(4, 1, 32, 32) * 255).round()
    params = torch.tensor([[30.0, 0, 0, 1.0], [-100.5, 3, -5, 1.2], [0.0, 10, 4, 0.7], [179.0, -7, 2, 1.4]])
    aff = bt.apply_affine(sq, params)
    for k in range(4):
        a, tx, ty, s = params[k].tolist()
        ref = F.affine(sq[k].to(torch.uint8), angle=a, translate=[int(tx), int(ty)], scale=s, shear=[0.0, 0.0]).float()
        assert torch.equal(ref, aff[k])


def test_max_per_class_and_bad_args(fake_root):
    ds = D.load_split("train", root=fake_root, image_size=32, max_per_class=2, progress=False)
    assert len(ds) == 10
    with pytest.raises(ValueError, match="split"):
        D.list_split(fake_root, "test")
    with pytest.raises(ValueError, match="max_per_class"):
        D.list_split(fake_root, "train", max_per_class=0)
    with pytest.raises(ValueError, match="regime"):
        D.load_split("train", root=fake_root, image_size=32, regime="shear", progress=False)


# ------------------------------------------------------------------------------------- silent failures
def test_cache_is_keyed_by_content_editing_an_image_changes_key_and_pixels(tmp_path, fake_root):
    import shutil

    import numpy as np
    from PIL import Image

    from fmask.infra.store import ArtifactStore

    root = tmp_path / "copy"
    shutil.copytree(fake_root, root)
    st = ArtifactStore(tmp_path / "art")
    paths, _ = D.list_split(root, "val")
    key_before = D.content_key(paths, root)
    a = D.load_split("val", root=root, image_size=32, store=st, progress=False)
    victim = root / a.paths[0]
    with Image.open(victim) as im:  # same name, same folder, new pixels (written in place)
        w, h = im.size
    Image.fromarray(np.full((h, w, 3), 250, np.uint8)).save(victim, quality=90)
    key_after = D.content_key(paths, root)
    assert key_before != key_after and key_before["n"] == key_after["n"]
    b = D.load_split("val", root=root, image_size=32, store=st, progress=False)
    assert len(list((tmp_path / "art" / "imagecache").glob("*.pt"))) == 2  # a new cache entry, not the old one
    xa, xb = a.tensors()[0], b.tensors()[0]
    assert not torch.equal(xa[0], xb[0]) and float(xb[0].mean()) > 0.95  # the new pixels are served
    assert torch.equal(xa[1:], xb[1:])
    fresh = D.load_split("val", root=root, image_size=32, progress=False)  # no cache at all
    assert torch.equal(fresh.tensors()[0], xb)


def test_16_bit_png_is_scaled_not_saturated(tmp_path):
    import numpy as np
    from PIL import Image

    ramp = np.linspace(0, 65535, 48 * 40).reshape(40, 48).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # PIL reads it as a 16-bit/32-bit integer image
    t = D.decode_image(path, 40, channels=1)  # no resize (shorter side already 40)
    expected = torch.from_numpy(np.round(ramp / 257.0).astype(np.uint8))
    assert t.shape == (1, 40, 48)
    assert (t[0].int() - expected.int()).abs().max() <= 1
    assert abs(float(t.float().mean()) - 127.5) < 2  # not saturated at 255
    rgb = D.decode_image(path, 40, channels=3)
    assert torch.equal(rgb[0], rgb[1]) and (rgb[0].int() - expected.int()).abs().max() <= 1


def test_extreme_aspect_ratio_does_not_pad_the_split(tmp_path, fake_root):
    import shutil

    import numpy as np
    from PIL import Image

    root = tmp_path / "copy"
    shutil.copytree(fake_root, root)
    pano = root / "train" / "n02102040" / "n02102040_panorama.JPEG"  # 40 x 2000: resized to 32 x 1600
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 2000, 3), dtype=np.uint8)).save(pano)
    ds = D.load_split("train", root=root, image_size=32, progress=False)
    h, w = ds.sizes.unbind(1)
    assert int(w.max()) == 1600
    assert ds.images.numel() == int((h * w).sum())  # packed: no padding to the widest image
    padded_split = len(ds) * 32 * 1600
    assert ds.images.numel() < padded_split / 10
    k = ds.paths.index(pano.relative_to(root).as_posix())
    assert ds._raw(k).shape == (1, 32, 1600)
    others = [i for i in range(len(ds)) if i != k][:8]
    assert ds.padded(others).shape[-1] == 38  # a batch is padded only to its own widest image
    g = torch.Generator().manual_seed(0)
    for xb, yb in ds.batches(16, g):
        assert xb.shape[1:] == (1, 32, 32) and 0 <= xb.min() and xb.max() <= 1
    ev = ds.with_options(train=False)
    x, _ = ev.tensors()
    assert x.shape == (len(ds), 1, 32, 32)
    from torchvision.transforms.v2 import functional as F

    assert torch.allclose(x[k], F.center_crop(ds._raw(k), [32, 32]).float() / 255, rtol=0, atol=1e-6)


def test_fake_imagenette_lives_in_fmask_testing_and_is_re_exported(tmp_path):
    from fmask.data import fake as testing

    a = testing.write_fake_imagenette(tmp_path / "a", n_train=1, n_val=1, size=(16, 20))
    b = D.write_fake_imagenette(tmp_path / "b", n_train=1, n_val=1, size=(16, 20))
    files_a = sorted(p.relative_to(a) for p in a.rglob("*.JPEG"))
    assert len(files_a) == 20 and files_a == sorted(p.relative_to(b) for p in b.rglob("*.JPEG"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)  # same seeded content
