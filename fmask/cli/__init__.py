"""Command line: ``fmask <command> ...`` (also ``python -m fmask``).

Commands: ``train``, ``book``, ``check-determinism``, ``masks``, ``profiles`` (:mod:`fmask.cli.commands`) and
``distribute`` (:mod:`fmask.cli.distribute`). Each registers itself with :func:`fmask.cli.common.command`;
:func:`build_parser` adds them all. Heavy modules are imported inside the handlers, so ``fmask --help`` stays
fast and a command whose module is missing fails only when it is used.

Errors: :func:`main` turns every expected failure (file-system errors, YAML syntax errors in a profile,
refused pickles, bad values, a failed chapter) into ONE line ``fmask: error: ...`` on stderr naming the file
and what to do, and exit status 2; no traceback (set ``FMASK_DEBUG=1`` to get it). An error about an atomic
write's temporary file (``.<name>.<pid>-<hex>.tmp``) names the file being written instead.
"""
from __future__ import annotations

import argparse
import errno
import os
import pickle
import sys
from typing import Sequence

from fmask.cli import commands, distribute  # noqa: F401  (registers the commands)
from fmask.cli.common import ARTIFACTS_HELP, COMMANDS, command

__all__ = ["COMMANDS", "command", "build_parser", "main", "error_message", "ARTIFACTS_HELP"]


def build_parser() -> argparse.ArgumentParser:
    """The ``fmask`` argument parser with every registered command."""
    from fmask import __version__

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
        if where is not None:  # an atomic write's temporary file: name the file being written
            import re
            from pathlib import Path

            m = re.match(r"^\.(.+)\.\d+-[0-9a-f]{16}\.tmp$", Path(str(where)).name)
            if m:
                where = str(Path(str(where)).with_name(m.group(1)))
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

    from fmask.book.errors import BookError
    from fmask.infra.integrity import ArtifactCorruptError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (OSError, yaml.YAMLError, pickle.UnpicklingError, ValueError, BookError, RuntimeError,
            ArtifactCorruptError) as exc:
        if os.environ.get("FMASK_DEBUG"):
            raise
        print(f"fmask: error: {error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"fmask: interrupted{': ' + _one_line(str(exc)) if str(exc) else ''}", file=sys.stderr)
        return 130
