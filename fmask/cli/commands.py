"""The commands ``fmask train | book | check-determinism | masks | profiles`` (parsers and handlers).

Each ``@command(name)`` function adds its sub-parser and sets ``func``; :func:`fmask.cli.build_parser` calls
them. Heavy modules are imported inside the handlers, so ``fmask --help`` stays fast.

* ``fmask train``: train (or reuse / resume) the models of a profile's regimes.
* ``fmask masks``: learn (or load) the dataset and single-image masks (:class:`fmask.experiment.run.Run`); with
  ``--arch`` masks for your own classifier and images (:func:`fmask.learners.own.run_own_masks`).
* ``fmask book``: execute the chapters and build the Jupyter Book (:func:`fmask.book.run_book`).
* ``fmask check-determinism``: run chapters twice (fresh outputs, fresh stores, pinned threads) and compare
  every result file (:func:`fmask.book.determinism.check_determinism`); exit status 1 when they differ.
* ``fmask profiles``: list the shipped profiles or print one (after overrides) as YAML.

Commands that write check first (:meth:`fmask.infra.store.ArtifactStore.check_writable`, or
:func:`fmask.cli.common.check_out_folder`), so an unwritable store or output folder fails in one line before
any training or learning.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
from typing import Any

from fmask.cli.common import ARTIFACTS_HELP, command
from fmask.cli.common import check_out_folder as _check_out_folder

__all__: list[str] = []



def _profile_args(p: argparse.ArgumentParser, default: str = "cpu") -> None:
    p.add_argument("--profile", default=default,
                   help=f"profile name (smoke, cpu, paper) or path to a YAML profile (default: {default})")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="Imagenette folder with train/<wnid>/ and val/<wnid>/ (default: profile's data.root, "
                        "else $FMASK_DATA, else download imagenette2-160 into ~/.cache/fmask)")
    p.add_argument("--artifacts", default=None, metavar="DIR", help=ARTIFACTS_HELP)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from fmask.experiment.profiles import parse_override

    ov: dict[str, Any] = dict(parse_override(s) for s in (getattr(args, "set", None) or []))
    if getattr(args, "seed", None) is not None:
        ov["seed"] = args.seed
    if getattr(args, "epochs", None) is not None:
        ov["train.epochs"] = args.epochs
    if getattr(args, "device", None) is not None:
        ov["device"] = args.device
    return ov


@command("train")
def _train_parser(sub) -> argparse.ArgumentParser:
    from fmask.data.regimes import REGIMES

    p = sub.add_parser(
        "train", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  fmask train --profile smoke --regime vanilla --regime rotate --device cpu",
        help="train the classifiers of the paper's regimes (reuses finished models, resumes interrupted runs)",
        description="Train (or reuse from the artifact store, or resume) the models of the chosen regimes. "
                    "Prints one JSON line of metrics per model.",
    )
    p.add_argument("--regime", action="append", choices=[*REGIMES, "all"], default=None,
                   help="regime to train; repeat for several; 'all' = the profile's train.regimes (default: all). "
                        "vanilla: crop+flip; scale/translate/rotate: + RandomAffine; adversarial: PGD batches")
    _profile_args(p)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                   help="compute device (default: the profile's; auto = CUDA if available)")
    p.add_argument("--seed", type=int, default=None, help="override the profile's seed")
    p.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any profile value, e.g. --set train.batch_size=64 --set data.image_size=64")
    p.add_argument("--retrain", action="store_true", help="ignore a finished model in the store and train again")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_cmd_train)
    return p


def _cmd_train(args: argparse.Namespace) -> int:
    from fmask.experiment.profiles import load_profile
    from fmask.infra.store import ArtifactStore
    from fmask.training.fit import load_datasets, train_model

    prof = load_profile(args.profile, _overrides(args))
    regimes = args.regime or ["all"]
    regimes = list(prof["train"]["regimes"]) if "all" in regimes else list(dict.fromkeys(regimes))
    store = ArtifactStore(args.artifacts)
    store.check_writable()  # one clear line now, not after decoding the data or an epoch
    datasets = load_datasets(prof, args.data, store, progress=not args.no_progress)
    for r in regimes:
        tm = train_model(r, prof, store=store, progress=not args.no_progress, reuse=not args.retrain, datasets=datasets)
        print(json.dumps({"regime": r, "profile": prof["name"], "checkpoint": str(tm.checkpoint), **tm.metrics}), flush=True)
    return 0


@command("book")
def _book_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "book", help="execute the chapters with papermill and build the Jupyter Book",
        description="Run the book's chapters (notebooks/NN_name.py) for a profile and build the HTML "
                    "(fmask.book.run_book). A chapter that fails never replaces its last good notebook; its "
                    "partial output is kept as book/NN_name.failed.ipynb.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  fmask book                                  # cpu profile -> book/ and _build/html\n"
               "  fmask book --profile smoke                  # -> _build/smoke/ (never the committed book)\n"
               "  fmask book --only 4 --only 06_single_image_masks,class_specificity --no-build",
    )
    _profile_args(p)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output root: DIR/book gets the executed chapters, DIR/_build/html the book "
                        "(default: the repository for the cpu profile, _build/<profile> for any other; "
                        "give --out . to overwrite the committed book with another profile)")
    p.add_argument("--only", nargs="+", action="extend", default=None, metavar="CHAPTER",
                   help="run only these chapters: numbers (4 or 04), names (04_dataset_masks or dataset_masks) "
                        "or comma lists of them (4,6,class_specificity); repeatable")
    p.add_argument("--no-build", action="store_true", help="execute the chapters but skip jupyter-book build")
    p.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    p.add_argument("--verbose-kernel", action="store_true",
                   help="show the kernels' stderr unfiltered (default: benign noise such as KeyboardInterrupt "
                        "on shutdown is dropped)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of every chapter's kernel (default: $FMASK_THREADS, else 2); the thread "
                        "count changes CPU results, so keep it fixed to reproduce a book")
    p.add_argument("--fresh", action="store_true",
                   help="use a new empty artifact store (removed afterwards): every model and mask is computed "
                        "by this code, nothing is loaded from earlier runs (not with --artifacts)")
    p.set_defaults(func=_cmd_book)
    return p


def _cmd_book(args: argparse.Namespace) -> int:
    from fmask import book
    from fmask.book import runner
    from fmask.infra.runtime import book_threads
    from fmask.infra.store import ArtifactStore

    book_threads(args.threads)  # a bad --threads fails before the store is touched (run_book checks it too)
    if not args.fresh:  # --fresh with --artifacts: run_book refuses it before any chapter
        # the chapters write models and masks to the store: fail in one line now, not after a chapter ran
        ArtifactStore(runner.resolve_artifacts(args.artifacts)).check_writable()
    book.run_book(profile=args.profile, out=args.out, data=args.data, artifacts=args.artifacts, only=args.only,
                  build=not args.no_build, progress=not args.no_progress, quiet_kernel=not args.verbose_kernel,
                  threads=args.threads, fresh=args.fresh, log=lambda s: print(s, flush=True))
    return 0


@command("check-determinism")
def _determinism_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "check-determinism", help="run chapters twice from scratch and compare every result file",
        description="Execute the chosen chapters twice, each into a fresh temporary output folder with a fresh "
                    "empty artifact store and the same torch thread count, then compare every result JSON "
                    "(ignoring only times, durations, versions and paths: fmask.book.determinism.IGNORED_KEYS). "
                    "Prints IDENTICAL, or each differing key with both values; exit status 0 when identical, "
                    "1 when not, 2 on errors.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  fmask check-determinism --profile smoke\n"
               "  fmask check-determinism --profile smoke --only 1,2 --threads 1 --keep /tmp/det\n"
               "  fmask check-determinism --profile cpu --against book/results   # the committed book (~100 min)",
    )
    p.add_argument("--profile", default="smoke",
                   help="profile name (smoke, cpu, paper) or path to a YAML profile (default: smoke)")
    p.add_argument("--data", default=None, metavar="DIR", help="Imagenette folder (default: $FMASK_DATA)")
    p.add_argument("--only", nargs="+", action="extend", default=None, metavar="CHAPTER",
                   help="chapters to run (as fmask book --only; default: all)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of both runs (default: $FMASK_THREADS, else 2, as fmask book)")
    p.add_argument("--keep", default=None, metavar="DIR",
                   help="run in DIR (new or empty) and keep both runs' outputs and stores for inspection "
                        "(default: a temporary folder, removed afterwards)")
    p.add_argument("--against", default=None, metavar="DIR",
                   help="run once and compare with the result files in DIR instead of running twice, e.g. "
                        "book/results: does a fresh run reproduce the committed book? Bitwise when DIR was "
                        "computed on this CPU kind; otherwise drift is reported and exit status 1 means a "
                        "changed verdict or a ledger value beyond its seed-to-seed spread")
    p.set_defaults(func=_cmd_check_determinism)
    return p


def _cmd_check_determinism(args: argparse.Namespace) -> int:
    from fmask.book.determinism import check_determinism

    rep = check_determinism(args.profile, args.only, data=args.data, workdir=args.keep, threads=args.threads,
                            against=args.against, log=lambda s: print(s, flush=True))
    print(rep.format(), flush=True)
    return 0 if rep.passed else 1


@command("masks")
def _masks_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "masks", help="learn Fourier masks: a profile's dataset/single-image masks (cached), or your own model's",
        description="Two modes. With --profile (default): train/load the models, then learn (or load) the "
                    "masks through fmask.experiment.run.Run. With --arch: learn masks for YOUR classifier on YOUR "
                    "images (fmask.learners.own.run_own_masks) and write them to --out.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  fmask masks --profile smoke --which dataset --regime vanilla\n"
               "  fmask masks --arch torchvision:resnet18 --checkpoint my_resnet.pt --num-classes 10 \\\n"
               "      --images my_images/ --size 224 --out masks.pt --steps 2000\n"
               "  fmask masks --arch vgg11_bn --checkpoint ck.pt --images x.pt --out m.pt --dataset --lam 0.2")
    _profile_args(p)
    p.add_argument("--which", choices=["dataset", "single", "all"], default="all",
                   help="profile mode: dataset masks per regime, single-image masks, or both (default: all)")
    p.add_argument("--regime", action="append", default=None, help="profile mode: regime(s) for dataset masks "
                                                                   "(default: profile's)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="compute device")
    p.add_argument("--seed", type=int, default=None, help="override the profile's seed / the learner's seed")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="profile mode: override any profile value")
    p.add_argument("--results", default=None, metavar="DIR",
                   help="profile mode: folder for result files (default: 'results' beside the artifact store)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    own = p.add_argument_group("your own model (--arch)", "learn masks for any classifier on [0, 1] images")
    own.add_argument("--arch", default=None,
                     help="architecture: torchvision:<name> (e.g. torchvision:resnet18), fmask:<name> or vgg11_bn / "
                          "resnet18 / vgg_small (random init; weights come from --checkpoint, never downloaded)")
    own.add_argument("--checkpoint", default=None, metavar="FILE", help="state dict file (weights_only load)")
    own.add_argument("--images", default=None, metavar="DIR|FILE.pt",
                     help="a folder of images, or of class sub-folders (labels: a folder name starting with an "
                          "integer, e.g. 2_dog, has that label; otherwise the folder's position in sorted name "
                          "order), or a .pt file {'images': (N,C,H,W) in [0,1], 'labels': (N,)} ('targets' is "
                          "read as 'labels')")
    own.add_argument("--out", default=None, metavar="FILE",
                     help="output MaskResult file (written atomically; never an input, nor a file fmask did not "
                          "write)")
    own.add_argument("--force", action="store_true", help="overwrite --out when it already holds fmask masks")
    own.add_argument("--num-classes", type=int, default=None, help="classes (default: read off the checkpoint)")
    own.add_argument("--in-channels", type=int, default=None, help="image channels (default: the checkpoint's)")
    own.add_argument("--mean", type=float, nargs="+", default=None,
                     help="the model's input normalisation mean, one value or one per channel (default: ImageNet "
                          "statistics for 3 channels; 0 with --std 1 for a model on raw [0, 1] pixels)")
    own.add_argument("--std", type=float, nargs="+", default=None, help="the model's normalisation std")
    own.add_argument("--size", type=int, nargs="+", default=None, help="resize images to S or H W")
    own.add_argument("--dataset", action="store_true", help="one mask for all images (default: one per image)")
    own.add_argument("--shared-channels", action="store_true",
                     help="one mask shared by all colour channels (default: one mask channel per image channel)")
    own.add_argument("--no-labels", action="store_true",
                     help="target the model's own predictions even if the images carry labels")
    own.add_argument("--lam", type=float, default=None, help="λ (default: the paper's, per image or dataset; fmask.core.objective)")
    own.add_argument("--steps", type=int, default=None, help="max steps per mask (epochs with --dataset)")
    own.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the learner's)")
    own.add_argument("--batch-size", type=int, default=None, help="images per chunk / batch")
    own.add_argument("--patience", type=int, default=None, help="stopping patience")
    own.add_argument("--space", choices=["auto", "normalised", "pixel"], default=None,
                     help="where the mask acts (default auto: the normalised image, as the original code)")
    own.add_argument("--precision", choices=["exact", "fast"], default=None, help="exact (default) or fast")
    p.set_defaults(func=_cmd_masks)
    return p


_OWN_ONLY = ("checkpoint", "images", "out", "num_classes", "in_channels", "mean", "std", "size", "lam", "steps",
             "lr", "batch_size", "patience", "space", "precision")


def _cmd_masks(args: argparse.Namespace) -> int:
    if args.arch is not None:
        return _cmd_own_masks(args)
    given = [f"--{n.replace('_', '-')}" for n in _OWN_ONLY if getattr(args, n) not in (None, False)]
    given += [f for f, v in (("--dataset", args.dataset), ("--shared-channels", args.shared_channels),
                             ("--no-labels", args.no_labels), ("--force", args.force)) if v]
    if given:
        raise ValueError(f"{', '.join(given)} apply to your own model: add --arch (see fmask masks --help)")
    from fmask.experiment.run import Run  # lazy: owned by another module
    from fmask.experiment.profiles import load_profile
    from fmask.infra.store import ArtifactStore

    prof = load_profile(args.profile, _overrides(args))
    store = ArtifactStore(args.artifacts)
    store.check_writable()  # fail in one line before any model is trained or mask learned
    run = Run.from_profile(prof, data_root=args.data, artifacts=store, results_dir=args.results,
                           device=args.device, progress=not args.no_progress)
    if args.which in ("dataset", "all"):
        for r, res in run.dataset_masks(args.regime).items():
            print(json.dumps({"stage": "dataset_mask", "regime": r, "shape": list(res.masks.shape),
                              "mean": float(res.masks.mean())}), flush=True)
    if args.which in ("single", "all"):
        for k, res in run.single_image_masks().items():
            print(json.dumps({"stage": "single_image_masks", "which": k, "shape": list(res.masks.shape),
                              "mean": float(res.masks.mean())}), flush=True)
    return 0


def _cmd_own_masks(args: argparse.Namespace) -> int:
    """``fmask masks --arch ...``: :func:`fmask.learners.own.run_own_masks`; prints one JSON line."""
    missing = [f for f, v in (("--images", args.images), ("--out", args.out)) if v is None]
    if missing:
        raise ValueError(f"fmask masks --arch needs {' and '.join(missing)}")
    for path in (args.checkpoint, args.images):
        if path is not None and not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, "no such file or folder", path)
    _check_out_folder(args.out)
    from fmask.learners.own import run_own_masks

    def stat(v):
        return None if v is None else (v[0] if len(v) == 1 else tuple(v))

    size = None if args.size is None else (args.size[0] if len(args.size) == 1 else tuple(args.size))
    kw = {k: getattr(args, k) for k in ("lam", "steps", "lr", "batch_size", "patience", "space", "precision", "seed")
          if getattr(args, k) is not None}
    if args.device is not None:
        kw["device"] = args.device
    res = run_own_masks(args.arch, args.images, args.out, checkpoint=args.checkpoint, num_classes=args.num_classes,
                        in_channels=args.in_channels, mean=stat(args.mean), std=stat(args.std), size=size,
                        use_labels=not args.no_labels, per_image=not args.dataset, force=args.force,
                        shared_channels=args.shared_channels, progress=not args.no_progress, **kw)
    print(json.dumps({"stage": "own_masks", "out": str(args.out), "shape": list(res.masks.shape),
                      "mean": float(res.masks.mean()), "classes": res.metadata.get("classes")}), flush=True)
    return 0


@command("profiles")
def _profiles_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("profiles", help="list the shipped profiles, or print one as YAML",
                       description="Without --show: list profile names. With --show NAME: print it after overrides.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  fmask profiles\n  fmask profiles --show smoke --set train.epochs=3")
    p.add_argument("--show", default=None, metavar="NAME_OR_PATH", help="profile to print")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a value before printing")
    p.set_defaults(func=_cmd_profiles)
    return p


def _cmd_profiles(args: argparse.Namespace) -> int:
    import yaml

    from fmask.experiment.profiles import list_profiles, load_profile

    if args.show is None:
        print("\n".join(list_profiles()))
    else:
        print(yaml.safe_dump(load_profile(args.show, _overrides(args)), sort_keys=False), end="")
    return 0
