"""The claims ledger: every claim of the paper, our number, an interval and a verdict.

One entry per claim of Karantzas et al. (2022). Each entry is decided by a **rule fixed in code
before looking at our numbers** and taken from the paper (its printed values in ``fmask/paper_values.yaml``,
its wording for qualitative claims), never tuned to our data. :func:`evaluate_claims` applies the rules to
the result files the chapters write (:mod:`fmask.experiment.results`); :func:`write_claims` writes ``claims.json``.

Entry schema (all JSON types)::

    {"id": "table2.attack_reversal",       # <table|fig|sec><N>.<name>, unique
     "claim": "...",                       # one line, faithful to the paper, with its section
     "paper": "58.83% (paper Table 2 ...)",# the printed value or a short statement
     "ours": 0.875 | {...} | null,         # our point estimate(s); null when the quantity is not recorded
     "interval": [lo, hi] | null,          # 95% interval of the quantity the rule decides on
     "n": 128 | {...} | null,              # independent units behind the interval (images, masks, seeds)
     "verdict": "reproduced" | "not reproduced" | "inconclusive",
     "rule": "...",                        # the decision rule, as fixed in code
     "chapter": "06_single_image_masks",   # the notebook with the detail
     "missing": ["..."],                   # quantities the rule needs that the results do not hold
     "details": {...}}                     # per-part numbers (per regime, per pair, ...)

Verdicts: **reproduced** -- the rule's condition for agreement with the paper holds; **not reproduced** --
the rule's condition for disagreement holds; **inconclusive** -- neither (too few data, an interval that
straddles the decision boundary, or a needed quantity not recorded). A quantity that is not recorded is
never invented: the verdict is inconclusive and ``missing`` names what the chapter should record.

The rules live by table and figure (:mod:`~fmask.claims.blue_shift`, :mod:`~fmask.claims.table1`,
:mod:`~fmask.claims.energies`, :mod:`~fmask.claims.single_image`, :mod:`~fmask.claims.table2`,
:mod:`~fmask.claims.table3`, :mod:`~fmask.claims.architectures`) on the shared ground of
:mod:`~fmask.claims.base`; this module puts them in the paper's order and applies them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from fmask.claims import architectures, blue_shift, energies, single_image, table1, table2, table3
from fmask.claims.base import CHECK, CLAIM, RESULT_NAMES, VERDICTS, Results

__all__ = ["ORDER", "CLAIMS", "claim_specs", "evaluate_claims", "tally", "write_claims"]

#: the ledger's order of the claims: the paper's
ORDER = (
    "fig1.blue_shift",
    "table1.masked_matches_standard", "table1.accuracy_ranking",
    "fig4.adversarial_low_frequency", "fig4.adversarial_direction_dependent", "fig4.scale_low_frequency",
    "fig4.translate_no_clear_bias", "fig4.rotate_high_frequency", "fig4.augmentation_direction_dependent",
    "fig5.masks_sparse",
    "table2.selection", "table2.masked_preserves", "table2.complement_drop", "table2.complement_necessary",
    "table2.attack_reversal",
    "fig7.adversarial_lower_frequency",
    "table3.class_specific", "table3.geometry_not_capacity",
    "fig5.texture_like",
    "sec2.resnet_similar",
)


def claim_specs() -> list[dict[str, Any]]:
    """Every claim's spec (:func:`fmask.claims.base.spec`: static text and rule), in :data:`ORDER`."""
    by_id = {s["id"]: s for group in (blue_shift, table1, energies, single_image, table2, table3, architectures)
             for s in group.specs()}
    if set(by_id) != set(ORDER):
        raise RuntimeError(f"claims ORDER and the rule modules disagree: {sorted(set(by_id) ^ set(ORDER))}")
    return [by_id[i] for i in ORDER]


def _public(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "evaluate"}


#: the ledger's static part (id, claim, paper, rule, chapter), in the paper's order
CLAIMS: tuple[dict[str, Any], ...] = tuple(_public(s) for s in claim_specs())


def evaluate_claims(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Evaluate every claim on ``results`` (``{name: values}`` or ``{name: {"values", "meta"}}``).

    Returns one dict per claim with the keys :data:`fmask.claims.base.FIELDS` (see the module docstring), in the order of
    :data:`CLAIMS`. Never raises for missing or malformed entries of ``results``: those make the claim
    inconclusive and are listed in ``missing`` (result *files* are checked against their schemas when they are
    loaded, see :func:`write_claims`). Raises ``ValueError`` if ``results`` is not a mapping.
    """
    R = Results(results)
    out = []
    for spec in claim_specs():
        res = spec["evaluate"](R)
        entry = {k: spec[k] for k in ("id", "claim", "paper")}
        entry.update({"ours": res["ours"], "interval": res["interval"], "n": res["n"], "verdict": res["verdict"],
                      "rule": spec["rule"], "chapter": spec["chapter"], "missing": res["missing"],
                      "details": res["details"], "kind": spec["kind"], "why": spec["why"]})
        assert entry["verdict"] in VERDICTS, entry
        out.append(entry)
    return out


def tally(entries: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """``{"claims": {verdict: n}, "checks": {verdict: n}}``: the tally of the claims that could have come out
    either way, and apart from it that of the checks (which hold by construction or selection)."""
    return {group: {v: sum(e["verdict"] == v and e.get("kind", CLAIM) == kind for e in entries) for v in VERDICTS}
            for group, kind in (("claims", CLAIM), ("checks", CHECK))}


def write_claims(results_dir: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Evaluate the claims on the result files in ``results_dir`` and write them to ``path`` atomically.

    The file is ``{"claims": [...], "counts": {"claims"|"checks": {verdict: number}}, "results_dir": str}`` (``results_dir``
    relative to the file's folder, so no machine-local path is written). Exactly the files
    ``<name>.json`` of :data:`fmask.claims.base.RESULT_NAMES` are read, with their metadata so that the sample
    sizes the chapters store there are used (``fmask.experiment.results.load_results(results_dir,
    with_meta=True, names=RESULT_NAMES)``). Returns the path written.

    Raises ``ValueError`` naming the file (and the key) for a result file that breaks its schema
    (:mod:`fmask.experiment.records`: a count above its n, a count that is not an integer, a NaN, a list of the
    wrong length), and for a stray copy of a result under another file name (naming both files).
    """
    from fmask.experiment.results import NOT_RESULTS, load_results
    from fmask.infra.atomic import atomic_write_json

    target = Path(path)
    if (target.suffix == ".json" and target.parent.resolve() == Path(results_dir).resolve()
            and target.name not in NOT_RESULTS):
        raise ValueError(f"{target.name} in the results directory {results_dir} would be read back as a result "
                         f"file by fmask.experiment.results.load_results; use one of {sorted(NOT_RESULTS)} or another folder")
    entries = evaluate_claims(load_results(results_dir, with_meta=True, names=RESULT_NAMES))
    counts = tally(entries)
    rel = os.path.relpath(Path(results_dir).resolve(), target.parent.resolve())
    payload = {"claims": entries, "counts": counts, "results_dir": Path(rel).as_posix()}
    return atomic_write_json(payload, path)
