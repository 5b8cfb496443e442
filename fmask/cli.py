"""Command line: ``fmask <command> ...`` (also ``python -m fmask``).

Commands are registered in :data:`COMMANDS` by the :func:`command` decorator: a function that receives the
subparsers object, adds its parser and sets ``func``. Heavy modules are imported inside the handlers, so
``fmask --help`` stays fast and a command whose module is missing fails only when it is used.

* ``fmask train``: train (or reuse / resume) the models of a profile's regimes.
* ``fmask masks``: learn (or load) the dataset and single-image masks (:class:`fmask.pipeline.Run`).
* ``fmask book``: execute the chapters and build the Jupyter Book (:func:`fmask.book.run_book`).
* ``fmask distribute``: learn per-image masks sharded over torchrun ranks (:mod:`fmask.distributed`).
* ``fmask profiles``: list the shipped profiles or print one (after overrides) as YAML.

Errors: :func:`main` turns every expected failure (file-system errors, YAML syntax errors in a profile,
refused pickles, bad values, a failed chapter) into ONE line ``fmask: error: ...`` on stderr naming the file
and what to do, and exit status 2; no traceback (set ``FMASK_DEBUG=1`` to get it).
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import pickle
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
    p.set_defaults(func=_cmd_book)
    return p


def _cmd_book(args: argparse.Namespace) -> int:
    from . import book

    book.run_book(profile=args.profile, out=args.out, data=args.data, artifacts=args.artifacts, only=args.only,
                  build=not args.no_build, progress=not args.no_progress, quiet_kernel=not args.verbose_kernel,
                  log=lambda s: print(s, flush=True))
    return 0


@command("distribute")
def _distribute_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "distribute", help="learn per-image masks sharded over torchrun ranks (rank 0 writes the result)",
        description="Learn per-image Fourier masks for a file of images with a model checkpoint, sharded over "
                    "--nproc processes (torch.distributed, gloo on 127.0.0.1). With --nproc 1 it runs in this "
                    "process. Same options as `python -m fmask.distributed` (which torchrun starts per rank).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  fmask distribute --nproc 2 --checkpoint model.pt --images images.pt --out masks.pt "
               "--steps 2000",
    )
    p.add_argument("--nproc", type=int, default=1, help="processes (ranks) on this machine (default 1)")
    p.add_argument("--checkpoint", required=True, help="model checkpoint {'arch', 'state_dict'}")
    p.add_argument("--arch", default=None, help="architecture, if the checkpoint does not store it")
    p.add_argument("--images", required=True, help="torch file {'images': (N,C,H,W) in [0,1], 'targets': (N,)}")
    p.add_argument("--out", required=True, help="output MaskResult file (written atomically by rank 0)")
    for opt, typ, what in (("--lam", float, "λ (default 0.07)"), ("--steps", int, "max steps per mask (default 20000)"),
                           ("--lr", float, "Adam learning rate"), ("--batch-size", int, "images per chunk (default 64)"),
                           ("--patience", int, "stopping patience (default 300)")):
        p.add_argument(opt, type=typ, default=None, help=what)
    p.add_argument("--seed", type=int, default=31, help="seed (default 31)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--no-amp", action="store_true", help="on CUDA, run the network in float32")
    p.set_defaults(func=_cmd_distribute)
    return p


def _cmd_distribute(args: argparse.Namespace) -> int:
    import subprocess

    for path in (args.checkpoint, args.images):
        if not os.path.isfile(path):
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
    argv = ["--checkpoint", args.checkpoint, "--images", args.images, "--out", args.out, "--seed", str(args.seed),
            "--device", args.device]
    for name in ("arch", "lam", "steps", "lr", "batch_size", "patience"):
        v = getattr(args, name)
        if v is not None:
            argv += [f"--{name.replace('_', '-')}", str(v)]
    if args.no_amp:
        argv.append("--no-amp")
    if args.nproc < 1:
        raise ValueError(f"--nproc must be >= 1; got {args.nproc}")
    if args.nproc == 1:
        from . import distributed

        try:
            return int(distributed.main(argv) or 0)
        except pickle.UnpicklingError as exc:
            raise pickle.UnpicklingError(f"{args.checkpoint} or {args.images}: {exc}") from exc
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--node_rank=0",
           f"--nproc_per_node={args.nproc}", "--master_addr=127.0.0.1", "-m", "fmask.distributed", *argv]
    return subprocess.call(cmd)


@command("masks")
def _masks_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("masks", help="learn the dataset and single-image Fourier masks of a profile (cached)",
                       description="Train/load the models, then learn (or load) the masks through fmask.pipeline.Run.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="example:\n  fmask masks --profile smoke --which dataset --regime vanilla")
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
                       description="Without --show: list profile names. With --show NAME: print it after overrides.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  fmask profiles\n  fmask profiles --show smoke --set train.epochs=3")
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
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="fmask",
        description="Fourier masks (Karantzas et al., 2022): train classifiers, learn masks, build the book.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  fmask train --profile smoke\n  fmask book --profile smoke --only 1,2\n"
               "  fmask COMMAND --help    # options and an example for each command",
    )
    parser.add_argument("--version", action="version", version=f"fmask {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for fn in COMMANDS.values():
        fn(sub)
    return parser


_OS_HINTS = {
    errno.EACCES: "permission denied; fix the permissions or choose another folder",
    errno.EPERM: "operation not permitted; fix the permissions or choose another folder",
    errno.EROFS: "read-only file system; choose a writable folder (e.g. --out / --artifacts)",
    errno.ENOSPC: "disk full; free some space or choose a folder on another disk",
    errno.EDQUOT: "disk quota exceeded; free some space or choose another folder",
    errno.ENOENT: "no such file or folder; check the path",
}


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def error_message(exc: BaseException) -> str:
    """The one-line description :func:`main` prints for an expected failure ``exc``."""
    import yaml

    if isinstance(exc, OSError):
        text = exc.strerror or str(exc)
        hint = _OS_HINTS.get(exc.errno or 0)
        if hint and not any(w in text for w in ("choose", "check", "fix")):
            text = f"{text} ({hint})"
        where = exc.filename
        if where is not None and str(where) not in text:
            text = f"{where}: {text}"
        return _one_line(text)
    if isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return _one_line(f"YAML syntax error in {where}{problem}; fix the profile file")
    if isinstance(exc, pickle.UnpicklingError):
        head = str(exc).splitlines()[0] if str(exc) else ""
        return _one_line(f"refused to load a file that holds arbitrary Python objects (torch.load weights_only=True): "
                         f"{head}; re-create it with fmask, or load it yourself only if you trust it")
    return _one_line(str(exc))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fmask`` console script; returns the exit status (2 for expected failures)."""
    import yaml

    from .book.errors import BookError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (OSError, yaml.YAMLError, pickle.UnpicklingError, ValueError, BookError, RuntimeError) as exc:
        if os.environ.get("FMASK_DEBUG"):
            raise
        print(f"fmask: error: {error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"fmask: interrupted{': ' + _one_line(str(exc)) if str(exc) else ''}", file=sys.stderr)
        return 130
