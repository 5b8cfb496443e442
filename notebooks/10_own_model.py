# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10. Appendix: Fourier masks for your own model
#
# *Profile: **{glue:text}`profile`**.*
#
# fmask learns masks for any PyTorch classifier, not only the book's networks. What a reader brings is
# (1) the network's architecture, (2) a checkpoint (a `state_dict`), (3) the normalisation the network was
# trained with, and (4) a folder of images. This appendix plays the reader: it writes the book's vanilla
# network (A) to a plain `state_dict` file and {glue:text}`own_n` validation images to a folder of PNG
# files, then goes through `fmask.learners.own` exactly as with a model from elsewhere. Nothing is downloaded.
# (A randomly initialised network would give meaningless masks, which is why a trained one is used.)

# %% tags=["parameters"]
from typing import Optional  # the annotations below are what `papermill --help-notebook` shows

profile: str = "smoke"            # smoke (minutes; the default), cpu (the book), paper, or a YAML path
data_root: Optional[str] = None      # Imagenette root; None -> the profile's data.root, else $FMASK_DATA
artifacts_dir: Optional[str] = None  # trained models and masks; None -> $FMASK_ARTIFACTS or ./artifacts
results_dir: str = "results"      # result files of this chapter (fmask.experiment.results), relative to the book folder
device: Optional[str] = None         # auto | cpu | cuda; None -> the profile's device

# %% tags=["remove-cell"]
from fmask.book import chapter
ch = chapter.open(profile=profile, data_root=data_root, artifacts_dir=artifacts_dir, results_dir=results_dir, device=device)

# %% tags=["remove-cell"]
# Plumbing of this page, not part of the recipe: the files a reader would already have.
import tempfile
from pathlib import Path

import torch
from PIL import Image

from fmask.infra.atomic import atomic_torch_save

run = ch.run
hs = ch.profile.heatmap
trained = run.model("vanilla").model  # fmask.models.zoo.Normalized around the trained network
workdir = Path(tempfile.mkdtemp(prefix="fmask-own-"))
checkpoint = workdir / "my_model.pt"
atomic_torch_save(trained.net.state_dict(), checkpoint)  # a plain state_dict, as torch.save(net.state_dict())
x_val, y_val = run.val_data()
g = torch.Generator().manual_seed(ch.seed)
pick = torch.randperm(len(y_val), generator=g)[: hs.own_images].sort().values
image_dir = workdir / "my_images"
written = {}  # file name -> the label written into its folder name
for n, i in enumerate(pick.tolist()):  # one sub-folder per class, named '<label>_<class>': the label is the number
    cls_dir = image_dir / f"{int(y_val[i])}_{run.class_names[int(y_val[i])]}"
    cls_dir.mkdir(parents=True, exist_ok=True)
    arr = (x_val[i, 0] * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    Image.fromarray(arr).save(cls_dir / f"img{n:03d}.png")
    written[f"img{n:03d}.png"] = int(y_val[i])
mean = trained.mean.reshape(-1).tolist()
std = trained.std.reshape(-1).tolist()
arch_kwargs = {k: v for k, v in ch.profile.model.build_kwargs().items() if k != "arch"}
ch.glue("own_n", len(pick))
ch.glue("own_steps", hs.own_steps)
ch.glue("own_lam", ch.profile.single_mask.lam, "g")
ch.glue("own_arch", ch.profile.model.arch)

# %% [markdown]
# ## 1. The model
#
# `prepare_model` takes an architecture string (`"torchvision:resnet18"`, `"fmask:vgg11_bn"`, ...) or, as
# here, the reader's own `nn.Module` (the book's {glue:text}`own_arch` network, built with the profile's
# width), loads the checkpoint strictly (missing or unexpected keys are errors) and wraps it so it
# takes images in $[0, 1]$ and **declares** its normalisation: masks act on the normalised image, as in the
# paper's code. `load_images` reads the labels from the class folders' names: a folder named `2_<class>` holds
# label 2 (folders without a leading number are labelled by their sorted position, as torchvision's
# `ImageFolder`), so a class with no image here does not shift the others' labels.

# %%
from fmask.models import zoo as models
from fmask.learners import MaskResult
from fmask.learners.own import learn_own_masks, load_images, prepare_model

my_net = models.ARCHS[ch.profile.model.arch](in_channels=len(mean), num_classes=len(run.class_names),
                                             **arch_kwargs)
model = prepare_model(my_net, checkpoint=checkpoint, mean=mean, std=std)
loaded = load_images(image_dir, channels=model.in_channels)  # .classes: folder name -> label
images, labels = loaded
with torch.no_grad():
    same = bool(torch.equal(model(images).argmax(1), trained(images).argmax(1)))
print(f"{tuple(images.shape)} images, labels {labels.tolist()} (folders {loaded.classes}); "
      f"predictions as the book's network: {same}")

# %% [markdown]
# ## 2. The masks
#
# `learn_own_masks` learns one mask per image (the paper's λ = {glue:text}`own_lam`; here
# {glue:text}`own_steps` steps) for the labels read from the class folders, and `MaskResult.save` writes
# them to a file (atomically) that `MaskResult.load` reads back. `fmask.learners.own.run_own_masks` chains the
# three steps and the file in one call (the function behind `fmask masks --arch ... IMAGES OUT`).

# %%
with ch.timed("10_own_model.masks"):
    kw = {"lam": ch.profile.single_mask.lam, "steps": hs.own_steps, "seed": ch.seed, "progress": False}
    result = learn_own_masks(model, images, targets=labels, **kw)
result.save(workdir / "my_masks.pt")
again = MaskResult.load(workdir / "my_masks.pt")
round_trip = bool(torch.equal(result.masks, again.masks))
ch.glue("own_same", "the same masks" if round_trip else "different masks")
ch.glue("own_mean", float(result.masks.mean()), ".3f")

# %% tags=["remove-cell"]
# the labels read back are the labels written, file by file, so the masks' targets and the titles are right
assert [written[Path(f).name] for f in loaded.files] == labels.tolist(), (loaded.files, labels.tolist())
assert result.history["target"].tolist() == labels.tolist()
titles = [run.class_names[int(k)] for k in labels]
assert titles == [run.class_names[written[Path(f).name]] for f in loaded.files]

# %%
from fmask import plots

ch.figure(plots.image_grid({"image": images, "mask": result.masks}, col_titles=titles, mask_rows=["mask"]),
          "fig-own-masks",
          "Your model's per-image masks: the images read from the folder (top) and their centred masks (bottom).",
          alt="A row of grayscale images above a row of square masks, bright near the centre.")

# %% [markdown]
# The masks keep on average {glue:text}`own_mean` of the spectrum; the file read back holds
# {glue:text}`own_same`. For a colour network the masks have one channel per colour channel (or one shared
# channel with `shared_channels=True`).

# %% tags=["remove-cell"]
import shutil

ch.save("own_model", {"n_images": int(len(pick)), "mask_mean": float(result.masks.mean()),
                      "same_predictions": same, "file_round_trip": round_trip},
        meta={"steps": hs.own_steps, "lam": ch.profile.single_mask.lam})
shutil.rmtree(workdir, ignore_errors=True)
