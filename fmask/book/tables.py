"""Markdown tables for the book, built from the result files (:mod:`fmask.experiment.results`) and the paper's values.

* :func:`paper_vs_ours` / :func:`paper_table` -- one row per value of ``fmask/paper_values.yaml`` (the only
  numbers typed in by hand, each with its source); the rendered table cites sources with short keys
  ``[1]``, ``[2]`` ... and lists them below the table instead of repeating a long source column.
* :func:`runtime_rows` / :func:`runtime_table` -- the recorded stage times, grouped by chapter: the chapter's
  own time is its total, the finer stages it recorded are listed under it, repeated and constant columns are
  dropped.
* :func:`settings_differences` -- every setting of a profile that differs from the ``paper`` profile.
* :func:`table_markdown` -- a list of dicts (or a DataFrame) as a Markdown table; missing numbers ``n/a``.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

from fmask.experiment.results import load_results, load_runtimes, paper_values

__all__ = [
    "paper_vs_ours",
    "paper_table",
    "table_markdown",
    "runtime_rows",
    "runtime_table",
    "settings_differences",
    "TABLE2_CONVENTION_LABELS",
    "table2_conventions_rows",
]

_CHAPTER_RE = re.compile(r"^(\d\d)_([a-z0-9_]+)$")


# ------------------------------------------------------------------------------------ paper vs ours
def _lookup(results: Mapping[str, Any], table: str, row: str, column: str) -> float | None:
    try:
        v = results[table][row][column]
    except (KeyError, TypeError, IndexError):
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _frame(rows: list[dict[str, Any]], columns: list[str]):
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas comes with jupyter-book
        return rows
    return pd.DataFrame(rows, columns=columns)


def paper_vs_ours(
    results_dir: str | os.PathLike[str],
    *,
    paper: list[dict[str, Any]] | None = None,
    as_frame: bool = True,
):
    """One row per paper value: table, row, column, paper, ours, difference (ours - paper), unit, source.

    ``ours`` is read from the result files (accuracies stored as fractions are shown in the paper's
    unit, percent); ``None`` where the result or the paper value is missing. Returns a pandas
    DataFrame (``as_frame`` and pandas installed) or a list of dicts.
    """
    entries = paper if paper is not None else paper_values()
    results = load_results(results_dir)
    rows = []
    for e in entries:
        ours = _lookup(results, e["table"], str(e["row"]), str(e["column"]))
        if ours is not None and e["unit"] == "percent":
            ours = 100.0 * ours
        ref = None if e["value"] is None else float(e["value"])
        diff = ours - ref if (ours is not None and ref is not None) else None
        rows.append(
            {
                "table": e["table"],
                "row": e["row"],
                "column": e["column"],
                "paper": ref,
                "ours": ours,
                "difference": diff,
                "unit": e["unit"],
                "source": e["source"],
            }
        )
    cols = ["table", "row", "column", "paper", "ours", "difference", "unit", "source"]
    return _frame(rows, cols) if as_frame else rows


def _fmt(v: Any, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def table_markdown(rows, *, digits: int = 1, columns: list[str] | None = None) -> str:
    """Render rows (list of dicts or DataFrame) as a Markdown table; missing numbers show as ``n/a``."""
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")
    rows = list(rows)
    if not rows:
        return "_(no rows)_"
    cols = columns or list(rows[0].keys())
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c), digits).replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines)




def paper_table(rows, *, table: str | None = None, digits: int = 1, first_key: int = 1) -> tuple[str, list[str]]:
    """Render :func:`paper_vs_ours` rows (optionally only those of ``table``) as Markdown with short source keys.

    Returns ``(markdown, footnotes)``: the table has columns row, column, paper, ours, difference, source,
    where *source* is a key ``[k]`` (numbered from ``first_key``, one per distinct source text); ``footnotes``
    are the lines ``"[k] source text"`` in key order.
    """
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")
    rows = [r for r in rows if table is None or r["table"] == table]
    keys: dict[str, str] = {}
    out = []
    for r in rows:
        src = str(r["source"])
        if src not in keys:
            keys[src] = f"[{first_key + len(keys)}]"
        out.append({**r, "source": keys[src]})
    md = table_markdown(out, digits=digits, columns=["row", "column", "paper", "ours", "difference", "source"])
    return md, [f"{k} {src}" for src, k in keys.items()]


# ------------------------------------------------------------------------------------------ runtimes
def _chapter_of(stage: str) -> tuple[str, str]:
    """``"04_dataset_masks.learn"`` -> ``("04_dataset_masks", "learn")``; pipeline stages -> ``("pipeline", stage)``."""
    head, _, tail = stage.partition(".")
    if _CHAPTER_RE.match(head):
        return head, tail
    if stage == "book_build":
        return "book build", ""
    return "pipeline", stage


def runtime_rows(results_dir: str | os.PathLike[str], *, extra: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """Recorded runtimes as rows ``{"chapter", "stage", "minutes", "ok", "profile"}``, in book order.

    The chapter's own record (``NN_name``) has ``stage == ""`` and is the chapter's total; its finer stages
    (``NN_name.part``) follow it; stages recorded by the pipeline outside any chapter (e.g.
    ``dataset_mask.vanilla``) are grouped as ``"pipeline"`` (they are parts of the chapter that ran them);
    ``extra`` adds ``{label: seconds}`` rows to that group (e.g. training times stored with the models).
    """
    rows = []
    for stage, rec in load_runtimes(results_dir).items():
        chapter, part = _chapter_of(stage)
        rows.append({"chapter": chapter, "stage": part, "minutes": float(rec["seconds"]) / 60.0,
                     "ok": bool(rec.get("ok", True)), "profile": rec.get("meta", {}).get("profile")})
    for label, secs in (extra or {}).items():
        rows.append({"chapter": "pipeline", "stage": label, "minutes": float(secs) / 60.0, "ok": True, "profile": None})
    order = {"book build": "98", "pipeline": "99"}
    rows.sort(key=lambda r: (order.get(r["chapter"], r["chapter"]), r["stage"] != "", r["stage"]))
    return rows


def runtime_table(results_dir: str | os.PathLike[str], *, extra: Mapping[str, float] | None = None,
                  digits: int = 1) -> tuple[str, dict[str, float]]:
    """The runtime table as Markdown, and totals ``{"chapters": min, "build": min, "pipeline": min}``.

    One bold row per chapter (its total), its parts indented below it, then the book build and the pipeline
    stages. Columns that are constant over all rows (e.g. every stage succeeded, one profile) are dropped;
    their value is said in a note under the table. Each stage appears once.
    """
    rows = runtime_rows(results_dir, extra=extra)
    if not rows:
        return "_(no runtimes recorded yet)_", {"chapters": 0.0, "build": 0.0, "pipeline": 0.0}
    shown = []
    if any(r["chapter"] == "pipeline" for r in rows):  # one header row for the stages inside the chapters
        first = next(i for i, r in enumerate(rows) if r["chapter"] == "pipeline")
        rows = rows[:first] + [{"chapter": "pipeline", "stage": "", "minutes": "", "ok": True,
                                "profile": rows[first]["profile"]}] + rows[first:]
    for r in rows:
        if r["stage"] == "":
            label = (f"**{r['chapter'].replace('_', ' ', 1)}**" if _CHAPTER_RE.match(r["chapter"])
                     else "_pipeline stages (parts of the chapters above)_" if r["chapter"] == "pipeline"
                     else f"**{r['chapter']}**")
        else:
            label = f"↳ {r['stage']}"
        shown.append({"stage": label, "minutes": r["minutes"], "ok": "yes" if r["ok"] else "**no**",
                      "profile": r["profile"] or "-"})
    columns = ["stage", "minutes"]
    notes = []
    for col, what in (("ok", "completed"), ("profile", "profile")):
        values = {s[col] for s in shown} - {"-"}  # "-": not recorded (e.g. training times from the models)
        if len(values) > 1:
            columns.append(col)
        elif col == "profile" and values:
            notes.append(f"profile: {next(iter(values))}")
        elif col == "ok" and values == {"yes"}:
            notes.append("every stage completed")
    totals = {
        "chapters": sum(r["minutes"] for r in rows if r["stage"] == "" and _CHAPTER_RE.match(r["chapter"])),
        "build": sum(r["minutes"] for r in rows if r["chapter"] == "book build"),
        "pipeline": sum(r["minutes"] or 0.0 for r in rows if r["chapter"] == "pipeline"),
    }
    md = table_markdown(shown, digits=digits, columns=columns)
    if notes:
        md += "\n\n_" + "; ".join(notes) + "._"
    return md, totals


# ------------------------------------------------------------------------------------------ settings
def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _as_mapping(profile: Any) -> Mapping[str, Any]:
    """A profile as a nested mapping (dicts as they are; typed profile objects via ``to_dict()``/``vars``)."""
    if isinstance(profile, Mapping):
        return profile
    for attr in ("to_dict", "as_dict", "model_dump"):
        if hasattr(profile, attr):
            return getattr(profile, attr)()
    return vars(profile)


def settings_differences(profile: Any, reference: Any) -> list[dict[str, str]]:
    """Rows ``{"setting", "this profile", "paper"}`` for every flattened key (``section.key``) whose value
    differs between two loaded profiles. ``"-"``: not set in that profile; ``"null"``: set to null (the
    default, e.g. all images, ε/8). The ``name`` key is ignored."""
    ours, ref = _flatten(_as_mapping(profile)), _flatten(_as_mapping(reference))
    absent = object()

    def show(v: Any) -> str:
        return "-" if v is absent else "null" if v is None else str(v)

    return [
        {"setting": k, "this profile": show(ours.get(k, absent)), "paper": show(ref.get(k, absent))}
        for k in sorted(set(ours) | set(ref))
        if k != "name" and ours.get(k, absent) != ref.get(k, absent)
    ]


#: Table 2's cells in the paper's order, with the labels chapter 8 shows (the last two are not in the paper)
TABLE2_CONVENTION_LABELS: dict[str, str] = {
    "original": "x", "adversarial": "x_A", "masked": "M_N,x(x)", "masked_adversarial": "M_N,x(x_A)",
    "complement": "M^c_N,x(x)", "masked_adversarial_binary": "M_N,x(x_A), binarised M (the original's value)",
    "pgd_masked_pgd": "M_N,x_A(x_A)",
}


def table2_conventions_rows(conventions: Mapping[str, Any] | None, *, digits: int = 1) -> list[dict[str, Any]]:
    """Table 2 under both mask conventions beside the paper's values (percent), one row per cell.

    ``conventions``: ``single_image.json``'s ``table2_conventions`` (:func:`fmask.experiment.variants.convention_table2`
    plus ``subset``); None or empty -> []. Columns: ``cell``, ``paper`` (``fmask/paper_values.yaml``, n/a where
    the paper prints none), ``normalised`` and ``pixel`` (accuracy [Wilson 95%]), ``pixel − normalised``
    (points [Newcombe paired 95%]).
    """
    if not conventions or "cells" not in conventions:
        return []
    paper = {e["column"]: e["value"] for e in paper_values() if e["table"] == "table2" and e["row"] == "vanilla"}
    f = f"{{:.{digits}f}}"
    g = f"{{:+.{digits}f}}"

    def acc(c: Mapping[str, Any]) -> str:
        lo, hi = c["wilson95"]
        return f"{f.format(100 * c['accuracy'])} [{f.format(100 * lo)}, {f.format(100 * hi)}]"

    rows = []
    cells = conventions["cells"]
    for key, label in TABLE2_CONVENTION_LABELS.items():
        if key not in cells.get("normalised", {}) or key not in cells.get("pixel", {}):
            continue
        d = conventions["difference"][key]
        lo, hi = d["newcombe95"]
        rows.append({"cell": label, "paper": paper.get(key), "normalised (%)": acc(cells["normalised"][key]),
                     "pixel (%)": acc(cells["pixel"][key]),
                     "pixel − normalised (points)": f"{g.format(100 * d['pixel_minus_normalised'])} "
                                                    f"[{g.format(100 * lo)}, {g.format(100 * hi)}]"})
    return rows
