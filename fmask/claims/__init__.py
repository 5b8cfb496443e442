"""Floor 6, the claims ledger: one pre-registered rule per claim of the paper, and the ledger's rendering.

The package's names (what chapters and tests use)::

    from fmask import claims
    claims.evaluate_claims(results)          # -> one entry per claim, in the paper's order
    claims.write_claims(results_dir, path)   # -> claims.json
    claims.paper_value("table2", "vanilla", "complement")
    claims.REPRODUCED, claims.NOT_REPRODUCED, claims.INCONCLUSIVE, claims.VERDICTS, claims.FIELDS, claims.CLAIMS

Modules: :mod:`~fmask.claims.base` (verdicts, decision constants, shared helpers), one module of rules per
table or figure (:mod:`~fmask.claims.blue_shift` Fig. 1, :mod:`~fmask.claims.table1`,
:mod:`~fmask.claims.energies` Fig. 4, :mod:`~fmask.claims.single_image` Fig. 5 and 7, :mod:`~fmask.claims.table2`,
:mod:`~fmask.claims.table3`, :mod:`~fmask.claims.architectures` Sec. 2.2), :mod:`~fmask.claims.evaluation` (the
paper's order, :func:`evaluate_claims`, :func:`write_claims`) and :mod:`~fmask.claims.ledger` (the rendering).
The names are looked up on first use, so importing :mod:`fmask.claims.ledger` alone stays light.
"""
from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module of this package that defines it
_API = {
    **dict.fromkeys(("REPRODUCED", "NOT_REPRODUCED", "INCONCLUSIVE", "VERDICTS", "FIELDS", "RESULT_NAMES",
                     "MIN_REPLICATES", "MIN_NULL", "paper_value"), "base"),
    **dict.fromkeys(("CLAIMS", "ORDER", "evaluate_claims", "write_claims"), "evaluation"),
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
