"""The claims ledger at the top of the book's introduction: ``claims.json`` -> a MyST markdown table.

``book/results/claims.json`` (written by :func:`fmask.claims.evaluation.write_claims`) is a list of entries, one per claim of the paper::

    {"id": "table1_masked_vanilla",        # unique key
     "claim": "masked accuracy stays close to standard accuracy (vanilla)",
     "paper": 89.20,                        # the printed value (number, string or null)
     "ours": 88.1,                          # our estimate (number, string or null)
     "interval": [86.0, 90.2],              # [lo, hi] or null
     "n": 500,                              # sample size behind "ours" (or null)
     "verdict": "reproduced",               # reproduced | not reproduced | inconclusive
     "rule": "paper value inside our 95% bootstrap interval",
     "chapter": "04_dataset_masks"}         # the book page that computes it

:func:`claims_table_markdown` turns it into a table ``claim | paper | ours ± interval | verdict | chapter``
whose chapter column links to the chapter by document name (``[4. Dataset masks](04_dataset_masks)``, resolved
relative to ``book/intro.md``, which includes the table), with the chapter title read from the chapter's first
heading (the same title the sidebar shows). Nothing in the table is typed by hand: every cell comes from the
JSON file or from the chapters. :func:`write_claims_table` writes it to ``book/_generated/claims_table.md``;
when ``claims.json`` does not exist the file says so in one line, so the include in ``intro.md`` never breaks.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = [
    "VERDICTS",
    "REQUIRED_KEYS",
    "GENERATED_DIR",
    "CLAIMS_TABLE",
    "load_claims",
    "validate_claims",
    "chapter_title",
    "chapter_titles",
    "format_value",
    "format_ours",
    "claims_table_markdown",
    "tally_sentence",
    "write_claims_table",
]

VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not testable as stated")
REQUIRED_KEYS = ("id", "claim", "paper", "ours", "interval", "n", "verdict", "rule", "chapter")
GENERATED_DIR = "_generated"            # under book/; included by intro.md
CLAIMS_TABLE = "claims_table.md"
_VERDICT_MARK = {"reproduced": "✓", "not reproduced": "✗", "inconclusive": "?", "not testable as stated": "–"}
_HEADING = re.compile(r"^\s{0,3}#\s+(.+?)\s*#*\s*$")
_PY_HEADING = re.compile(r"^#\s+#\s+(.+?)\s*$")  # jupytext percent markdown: "# # 4. Dataset masks"


# --------------------------------------------------------------------------------------------- reading
def validate_claims(claims: Any, origin: str = "claims") -> list[dict]:
    """Check the structure of a claims list (see the module docstring); return it as a list of dicts.

    Raises ``ValueError`` naming the entry and the problem: not a list, missing keys, duplicate ``id``,
    a ``verdict`` outside :data:`VERDICTS`, an ``interval`` that is not ``null`` or ``[lo, hi]`` with
    ``lo <= hi``, or an empty ``chapter``.
    """
    if not isinstance(claims, list):
        raise ValueError(f"{origin}: expected a JSON list of claim entries, got {type(claims).__name__}")
    seen: set[str] = set()
    out = []
    for i, entry in enumerate(claims):
        where = f"{origin}[{i}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
        missing = [k for k in REQUIRED_KEYS if k not in entry]
        if missing:
            raise ValueError(f"{where} (id={entry.get('id')!r}): missing key(s) {', '.join(missing)}")
        cid = str(entry["id"])
        if cid in seen:
            raise ValueError(f"{where}: duplicate id {cid!r}")
        seen.add(cid)
        if entry["verdict"] not in VERDICTS:
            raise ValueError(f"{where} (id={cid!r}): verdict {entry['verdict']!r} is not one of {VERDICTS}")
        iv = entry["interval"]
        if iv is not None:
            if (not isinstance(iv, Sequence) or isinstance(iv, str) or len(iv) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in iv)):
                raise ValueError(f"{where} (id={cid!r}): interval must be null or [lo, hi], got {iv!r}")
            if not iv[0] <= iv[1]:
                raise ValueError(f"{where} (id={cid!r}): interval [lo, hi] needs lo <= hi, got {iv!r}")
        if not isinstance(entry["chapter"], str) or not entry["chapter"].strip():
            raise ValueError(f"{where} (id={cid!r}): chapter must be a page name such as '04_dataset_masks'")
        out.append(dict(entry))
    return out


def load_claims(path: str | os.PathLike[str]) -> list[dict]:
    """Read and validate ``claims.json`` (see :func:`validate_claims`): the file
    :func:`fmask.claims.evaluation.write_claims` writes (``{"claims": [...], "counts", "results_dir"}``) or a bare list."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if isinstance(data, Mapping) and "claims" in data:
        data = data["claims"]
    return validate_claims(data, origin=str(path))


def chapter_title(source: str | os.PathLike[str]) -> str | None:
    """The first level-1 heading of a chapter source (``.ipynb``, jupytext percent ``.py`` or ``.md``), or None.

    This is the title Sphinx shows in the sidebar for that page.
    """
    source = Path(source)
    if not source.is_file():
        return None
    if source.suffix == ".ipynb":
        try:
            nb = json.loads(source.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        for cell in nb.get("cells", []):
            if cell.get("cell_type") != "markdown":
                continue
            text = cell.get("source", "")
            text = "".join(text) if isinstance(text, list) else text
            for line in text.splitlines():
                m = _HEADING.match(line)
                if m:
                    return m.group(1)
        return None
    pattern = _PY_HEADING if source.suffix == ".py" else _HEADING
    for line in source.read_text(encoding="utf-8").splitlines():
        m = pattern.match(line)
        if m:
            return m.group(1)
    return None


def chapter_titles(chapters: Iterable[str], book_dir: str | os.PathLike[str],
                   notebooks_dir: str | os.PathLike[str] | None = None) -> dict[str, str | None]:
    """Title of each chapter: from ``book_dir/<chapter>.ipynb`` (or ``.md``), else ``notebooks_dir/<chapter>.py``.

    A chapter found nowhere maps to None (the table then shows its name without a link).
    """
    book_dir = Path(book_dir)
    out: dict[str, str | None] = {}
    for ch in chapters:
        title = None
        for cand in (book_dir / f"{ch}.ipynb", book_dir / f"{ch}.md"):
            title = chapter_title(cand)
            if title:
                break
        if title is None and notebooks_dir is not None:
            title = chapter_title(Path(notebooks_dir) / f"{ch}.py")
        out[ch] = title
    return out


# ------------------------------------------------------------------------------------------ formatting
def format_value(v: Any, scale: float = 1.0, unit: str = "") -> str:
    """A cell value: numbers with 4 significant digits (times ``scale``, followed by ``unit``), None -> ``—``,
    a mapping as ``key value, key value`` (a mapping whose values are all equal as that one value), a list
    as ``a, b``, text as is."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, Mapping):
        vals = list(v.values())
        if vals and all(x == vals[0] for x in vals) and not isinstance(vals[0], (Mapping, list, tuple)):
            return format_value(vals[0], scale, unit)
        return ", ".join(f"{k} {format_value(x, scale, unit)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(format_value(x, scale, unit) for x in v)
    if isinstance(v, (int, float)):
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        if isinstance(v, int) and scale == 1.0:
            return f"{v}{unit}"
        return f"{v * scale:.4g}{unit}"
    return str(v)


def _numbers(v: Any) -> list[float]:
    if isinstance(v, bool) or v is None:
        return []
    if isinstance(v, (int, float)):
        return [float(v)]
    if isinstance(v, Mapping):
        v = list(v.values())
    if isinstance(v, (list, tuple)):
        return [x for item in v for x in _numbers(item)]
    return []


def _units(entry: Mapping[str, Any]) -> tuple[float, str]:
    """Show ``ours`` and its interval in the paper's units: a paper value printed in percent (``%``) or
    percentage points (``points``) turns our fractions (all |value| ≤ 1) into ``%`` / ``pp``."""
    paper = str(entry.get("paper") or "")
    nums = _numbers(entry.get("ours")) + _numbers(entry.get("interval"))
    if not nums or any(abs(x) > 1 for x in nums):
        return 1.0, ""
    if "points" in paper:
        return 100.0, " pp"
    if "%" in paper:
        return 100.0, "%"
    return 1.0, ""


def format_ours(entry: Mapping[str, Any]) -> str:
    """``ours [lo, hi] (n=N)``: the estimate, its interval when given and the sample size when given, in the
    paper's units (:func:`_units`)."""
    scale, unit = _units(entry)
    text = format_value(entry.get("ours"), scale, unit)
    iv = entry.get("interval")
    if iv is not None:
        text += f" [{format_value(float(iv[0]), scale, unit)}, {format_value(float(iv[1]), scale, unit)}]"
    if entry.get("n") is not None:
        text += f" (n={format_value(entry['n'])})"
    return text


def _cell(text: str) -> str:
    """Escape a table cell: pipes and line breaks would break the markdown table."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ").strip()


def claims_table_markdown(claims: Sequence[Mapping[str, Any]], titles: Mapping[str, str | None] | None = None,
                          *, linked: Iterable[str] | None = None, source: str = "results/claims.json") -> str:
    """MyST markdown: the tally (:func:`tally_sentence`) first, the table of the claims that could fail, the
    table of the checks (entries of kind ``check``, with why each must hold), and a dropdown with each rule.

    ``titles`` maps chapter names to titles (:func:`chapter_titles`). A chapter with a title that is in
    ``linked`` (default: every chapter with a title) is linked as ``[title](chapter)`` (a document link,
    relative to the including page ``book/intro.md``); one with a title but no page in this build shows the
    title alone, one without a title its bare name. An empty list gives a one-line note instead of a table.
    """
    claims = validate_claims(list(claims))
    titles = dict(titles or {})
    linked = set(titles) if linked is None else set(linked)
    if not claims:
        return f"*The claims ledger (`{source}`) lists no claims for this build.*\n"

    def link(e):
        title = titles.get(e["chapter"])
        if title and e["chapter"] in linked:
            return f"[{_cell(title)}]({e['chapter']})"
        return _cell(title) if title else f"`{_cell(e['chapter'])}`"

    def rows(entries, last):
        out = [f"| claim | paper | ours [interval] | verdict | {last} |", "| --- | --- | --- | --- | --- |"]
        for e in entries:
            verdict = f"{_VERDICT_MARK[e['verdict']]} {e['verdict']}"
            tail = link(e) if last == "chapter" else _cell(e.get("why") or "")
            out.append("| " + " | ".join([_cell(e["claim"]), _cell(format_value(e["paper"])), _cell(format_ours(e)),
                                          verdict, tail]) + " |")
        return out

    tested = [e for e in claims if e.get("kind", "claim") == "claim"]
    checks = [e for e in claims if e.get("kind", "claim") == "check"]
    lines = [f"*{tally_sentence(claims)} Intervals and verdict rules are computed by the chapters (`{source}`).*", ""]
    lines += rows(tested, "chapter") + [""]
    if checks:
        lines += ["**Checks.** These statements of the paper hold by construction or by selection in its method, so "
                  "they cannot fail and are not counted as reproductions; they are shown to confirm the pipeline "
                  "did what it should.", ""]
        lines += rows(checks, "why it must hold") + [""]
    lines += [":::{dropdown} How each verdict was decided", ""]
    lines += [f"- **{_cell(e['id'])}**: {_cell(e['rule'])}" for e in claims]
    lines += ["", ":::", ""]
    return "\n".join(lines)


def tally_sentence(claims: Sequence[Mapping[str, Any]]) -> str:
    """One sentence: how many of the claims that could fail came out each way, and how many checks held."""
    tested = [e for e in claims if e.get("kind", "claim") == "claim"]
    checks = [e for e in claims if e.get("kind", "claim") == "check"]
    counts = {v: sum(e["verdict"] == v for e in tested) for v in VERDICTS}
    parts = [f"{counts[v]} {v}" for v in VERDICTS if counts[v] or v != "not testable as stated"]
    text = f"Of {len(tested)} claims that could have come out either way: {', '.join(parts)}."
    if checks:
        held = sum(e["verdict"] == "reproduced" for e in checks)
        text += f" {held} of {len(checks)} checks that hold by construction held."
    return text


def write_claims_table(book_dir: str | os.PathLike[str], claims_path: str | os.PathLike[str] | None = None,
                       *, notebooks_dir: str | os.PathLike[str] | None = None) -> Path:
    """Write ``book_dir/_generated/claims_table.md`` from ``claims_path`` (default ``book_dir/results/claims.json``).

    Chapter titles come from the executed notebooks in ``book_dir`` (or ``notebooks_dir/*.py`` sources); only
    chapters with a page in ``book_dir`` are linked (a link to a page outside the build would be broken).
    If the claims file is missing, the page says so in one line. Returns the written path (atomic write).
    """
    from fmask.infra.atomic import atomic_write

    book_dir = Path(book_dir)
    claims_path = Path(claims_path) if claims_path is not None else book_dir / "results" / "claims.json"
    try:
        shown = claims_path.resolve().relative_to(book_dir.resolve()).as_posix()
    except ValueError:
        shown = claims_path.name
    if claims_path.is_file():
        claims = load_claims(claims_path)
        chapters = sorted({e["chapter"] for e in claims})
        titles = chapter_titles(chapters, book_dir, notebooks_dir)
        pages = {c for c in chapters if (book_dir / f"{c}.ipynb").is_file() or (book_dir / f"{c}.md").is_file()}
        text = claims_table_markdown(claims, titles, linked=pages, source=shown)
    else:
        text = (f"*No claims ledger in this build: `{shown}` was not found (it is written by the "
                f"reproduction report; run the whole book with `fmask book`).*\n")
    dest = book_dir / GENERATED_DIR / CLAIMS_TABLE
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dest, lambda fh: fh.write(text), binary=False)
    return dest
