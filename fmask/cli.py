"""Command line: ``fmask <command> ...`` (also ``python -m fmask``).

Commands are registered in :data:`COMMANDS` by the :func:`command` decorator: a function that receives the
subparsers object, adds its parser and sets ``func``. Heavy modules are imported inside the handlers, so
``fmask --help`` stays fast and a command whose module is missing fails only when it is used.

* ``fmask train``: train (or reuse / resume) the models of a profile's regimes.
* ``fmask masks``: learn (or load) the dataset and single-image masks (:class:`fmask.pipeline.Run`).
* ``fmask book``: execute the notebooks and build the Jupyter Book (:func:`fmask.book.run_book`).
* ``fmask profiles``: list the shipped profiles or print one (after overrides) as YAML.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable, Sequence

__all__ = ["COMMANDS", "command", "build_parser", "main"]

COMMANDS: dict[str, Callable[[Any], argparse.ArgumentParser]] = {}


def command(name: str):
    """Register ``fn(subparsers) -> parser`` as the sub-command ``name`` (the parser must set ``func``)."""

    def deco(fn: Callable[[Any], argparse.ArgumentParser]):
        COMMANDS[name] = fn
        return fn

    return deco


def _profile_args(p: argparse.ArgumentParser, default: str = "cpu") -> None:
    p.add_argument("--profile", default=default,
                   help=f"profile name (smoke, cpu, paper) or path to a YAML profile (default: {default})")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="Imagenette folder with train/<wnid>/ and val/<wnid>/ (default: profile's data.root, "
                        "else $FMASK_DATA, else download imagenette2-160 into ~/.cache/fmask)")
    p.add_argument("--artifacts", default=None, metavar="DIR",
                   help="artifact store root for models/masks/caches (default: $FMASK_ARTIFACTS, else ./artifacts)")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from .profiles import parse_override

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
    from .profiles import REGIMES

    p = sub.add_parser(
        "train",
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
    from .profiles import load_profile
    from .store import ArtifactStore
    from .train import load_datasets, train_model

    prof = load_profile(args.profile, _overrides(args))
    regimes = args.regime or ["all"]
    regimes = list(prof["train"]["regimes"]) if "all" in regimes else list(dict.fromkeys(regimes))
    store = ArtifactStore(args.artifacts)
    datasets = load_datasets(prof, args.data, store, progress=not args.no_progress)
    for r in regimes:
        tm = train_model(r, prof, store=store, progress=not args.no_progress, reuse=not args.retrain, datasets=datasets)
        print(json.dumps({"regime": r, "profile": prof["name"], "checkpoint": str(tm.checkpoint), **tm.metrics}), flush=True)
    return 0


@command("book")
def _book_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("book", help="execute the notebooks with papermill and build the Jupyter Book",
                       description="Run the book's notebooks for a profile and build the HTML (fmask.book.run_book).")
    _profile_args(p)
    p.add_argument("--out", default=None, metavar="DIR", help="output folder for executed notebooks and HTML")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                   help="run only these notebooks (names like 04_dataset_masks)")
    p.set_defaults(func=_cmd_book)
    return p


def _cmd_book(args: argparse.Namespace) -> int:
    from . import book  # lazy: owned by another module

    res = book.run_book(profile=args.profile, out=args.out, data=args.data, artifacts=args.artifacts, only=args.only)
    return int(res) if isinstance(res, int) else 0


@command("masks")
def _masks_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("masks", help="learn the dataset and single-image Fourier masks of a profile (cached)",
                       description="Train/load the models, then learn (or load) the masks through fmask.pipeline.Run.")
    _profile_args(p)
    p.add_argument("--which", choices=["dataset", "single", "all"], default="all",
                   help="dataset masks per regime, single-image masks, or both (default: all)")
    p.add_argument("--regime", action="append", default=None, help="regime(s) for dataset masks (default: profile's)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="compute device")
    p.add_argument("--seed", type=int, default=None, help="override the profile's seed")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any profile value")
    p.add_argument("--results", default=None, metavar="DIR", help="folder for result files (default: pipeline's)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=_cmd_masks)
    return p


def _cmd_masks(args: argparse.Namespace) -> int:
    from .pipeline import Run  # lazy: owned by another module
    from .profiles import load_profile

    prof = load_profile(args.profile, _overrides(args))
    run = Run.from_profile(prof, data_root=args.data, artifacts=args.artifacts, results_dir=args.results,
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


@command("profiles")
def _profiles_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("profiles", help="list the shipped profiles, or print one as YAML",
                       description="Without --show: list profile names. With --show NAME: print it after overrides.")
    p.add_argument("--show", default=None, metavar="NAME_OR_PATH", help="profile to print")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a value before printing")
    p.set_defaults(func=_cmd_profiles)
    return p


def _cmd_profiles(args: argparse.Namespace) -> int:
    import yaml

    from .profiles import list_profiles, load_profile

    if args.show is None:
        print("\n".join(list_profiles()))
    else:
        print(yaml.safe_dump(load_profile(args.show, _overrides(args)), sort_keys=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``fmask`` argument parser with every registered command."""
    parser = argparse.ArgumentParser(
        prog="fmask",
        description="Fourier masks (Karantzas et al., 2022): train classifiers, learn masks, build the book.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for fn in COMMANDS.values():
        fn(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fmask`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        if os.environ.get("FMASK_DEBUG"):
            raise
        print(f"fmask {args.command}: error: {exc}", file=sys.stderr)
        return 2
