"""What every command module of :mod:`fmask.cli` shares: the command registry and the output-folder check."""
from __future__ import annotations

import argparse
import os
from typing import Any, Callable

__all__ = ["ARTIFACTS_HELP", "COMMANDS", "command", "check_out_folder"]

#: the one help text of ``--artifacts`` (the truth is :func:`fmask.infra.store.default_root`)
ARTIFACTS_HELP = ("artifact store root for models/masks/caches (default: $FMASK_ARTIFACTS, else <repo>/artifacts "
                  "when fmask runs from a source checkout, else ~/.cache/fmask/artifacts)")

COMMANDS: dict[str, Callable[[Any], argparse.ArgumentParser]] = {}


def command(name: str):
    """Register ``fn(subparsers) -> parser`` as the sub-command ``name`` (the parser must set ``func``)."""

    def deco(fn: Callable[[Any], argparse.ArgumentParser]):
        COMMANDS[name] = fn
        return fn

    return deco



def check_out_folder(out: str | os.PathLike) -> None:
    """Fail now (naming the folder) if ``out``'s folder cannot be created or written, before any compute."""
    from pathlib import Path

    from fmask.infra.integrity import StoreError

    folder = Path(out).expanduser().absolute().parent
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".fmask-write-probe.{os.getpid()}"
    try:
        probe.write_bytes(b"")
    except OSError as e:
        raise StoreError(e.errno, f"cannot write the output file {out} ({e.strerror or e})", str(folder)) from e
    finally:
        probe.unlink(missing_ok=True)
