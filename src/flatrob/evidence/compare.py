"""This build against the committed evidence, and the deliberate refresh that makes a build the evidence.

:func:`compare` sets the two ledgers (:func:`flatrob.evidence.ledger.load`) side by side, per check: whether the verdict
agrees, the relative drift of the decisive value, whether it stays inside the committed interval, whether the
verdict is fragile. :func:`compare_chapter` does the same for one chapter's page. :func:`update` replaces the
committed evidence by this build's ledger, from a clean tree only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from flatrob.evidence.ledger import build, load, source_kind
from flatrob.evidence.records import ChapterComparison, Comparison, ComparisonRow, LedgerEntry, LedgerFile
from flatrob.evidence.verdicts import Check
from flatrob.util.io import atomic_write_text, json_text
from flatrob.util.paths import build_ledger_dir, claims_dir, claims_file
from flatrob.util.provenance import Provenance, git_commit, is_dirty, machine

__all__ = ["RefreshRefused", "compare", "compare_chapter", "comparison_display", "twin_story", "update"]


def _measure_value(e: LedgerEntry) -> float | None:
    m = e.get("measure")
    return None if not m or m.get("value") is None else float(m["value"])


def _drift(before: float | None, after: float | None) -> float | None:
    if before is None or after is None:
        return None
    if before == after:
        return 0.0
    scale = max(abs(before), abs(after))
    return abs(after - before) / scale if scale > 0 else 0.0


def _compare_entries(committed: Iterable[LedgerEntry], current: Iterable[LedgerEntry]) -> list[ComparisonRow]:
    ref = {e["id"]: e for e in committed}
    rows: list[ComparisonRow] = []
    for e in current:
        c: LedgerEntry | None = ref.pop(e["id"], None)
        value, before = _measure_value(e), (_measure_value(c) if c else None)
        mc = c.get("measure") if c else None
        ci = mc.get("ci95") if mc else None
        inside = None if value is None or not ci or None in ci else bool(ci[0] <= value <= ci[1])
        rows.append(
            {
                "check": e["id"],
                "chapter": e["chapter"],
                "claim": e["claim"],
                "committed": c["verdict"] if c is not None else "(not committed)",
                "this build": e["verdict"],
                "agrees": c is not None and c["verdict"] == e["verdict"],
                "fragile": bool(e.get("fragile") or (c is not None and c.get("fragile"))),
                "committed value": before,
                "value here": value,
                "drift": _drift(before, value),
                "inside committed interval": inside,
            }
        )
    for c in ref.values():
        rows.append(
            {
                "check": c["id"],
                "chapter": c["chapter"],
                "claim": c["claim"],
                "committed": c["verdict"],
                "this build": "(not computed)",
                "agrees": False,
                "fragile": bool(c.get("fragile")),
                "committed value": _measure_value(c),
                "value here": None,
                "drift": None,
                "inside committed interval": None,
            }
        )
    return rows


def compare(committed: Mapping[str, LedgerFile], current: Mapping[str, LedgerFile]) -> Comparison:
    """This build's ledger against the committed one (both as :func:`load` gives them): one row per check and a
    summary (:class:`~flatrob.evidence.records.Comparison`)."""
    rows: list[ComparisonRow] = []
    for chapter in sorted(set(committed) | set(current)):
        before, now = committed.get(chapter), current.get(chapter)
        rows += _compare_entries(before["entries"] if before else [], now["entries"] if now else [])
    drifts = [(r["drift"], r["check"]) for r in rows if r["drift"] is not None]
    worst = max(drifts, default=(None, None))
    return {
        "rows": rows,
        "checks": len(rows),
        "agree": sum(r["agrees"] for r in rows),
        "largest_drift": worst[0],
        "largest_drift_check": worst[1],
        "disagree": [r["check"] for r in rows if not r["agrees"]],
    }


def compare_chapter(chapter: str, entries: Sequence[LedgerEntry], root: Path | None = None) -> ChapterComparison:
    """A chapter's fresh entries against its committed ones, for its own page; compared only where the run's
    parameters are the committed run's (otherwise ``rows`` is empty and ``note`` says why)."""
    committed = load(claims_dir(root)).get(chapter)
    if committed is None:
        return {"rows": [], "note": "No committed evidence of this chapter yet."}
    live = [e for e in entries if source_kind(e["setting"]) == "live"]
    ref = [e for e in committed["entries"] if source_kind(e["setting"]) == "live"]
    if live and ref and live[0]["provenance"].get("params") != ref[0]["provenance"].get("params"):
        return {
            "rows": [],
            "note": "This run's parameters differ from those of the committed evidence: its numbers "
            "are not compared with it.",
        }
    rows = _compare_entries(committed["entries"], entries)
    return {"rows": rows, "note": _agreement_sentence(rows, ref[0]["provenance"] if ref else {})}


def _agreement_sentence(rows: Sequence[ComparisonRow], ref: Provenance) -> str:
    agree = sum(r["agrees"] for r in rows)
    drifts = [(r["drift"], r["check"]) for r in rows if r["drift"] is not None]
    worst = max(drifts, default=(0.0, ""))
    where = ref.get("machine", {}).get("cpu", "another machine")
    text = (
        f"{agree} of {len(rows)} verdicts agree with the committed evidence (made at commit "
        f"`{ref.get('commit', '?')}` on {where})"
    )
    if worst[0]:
        text += f"; largest drift of a decisive value {100 * worst[0]:.2g}% (`{worst[1]}`)"
    elif drifts:
        text += "; every decisive value is identical"
    return text + "."


def comparison_display(result: ChapterComparison) -> None:
    """Display a chapter's comparison on its page: a sentence and, where something differs, a table of the rows
    that do (through :func:`flatrob.tables.show`, so that it fits a phone and reaches the PDF)."""
    import pandas as pd
    from IPython.display import Markdown, display

    from flatrob.tables import show

    display(Markdown("**This build and the committed evidence.** " + result["note"]))
    rows = [r for r in result["rows"] if not r["agrees"] or (r["drift"] or 0) > 0]
    if rows:
        show(
            pd.DataFrame(
                [
                    {
                        "check": f"<code>{r['check']}</code>",
                        "committed": r["committed"],
                        "this build": r["this build"],
                        "drift": _percent(r["drift"]),
                    }
                    for r in rows
                ]
            )
        )


def _percent(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.2g}%"


# ---------------------------------------------------------------------------
# the deliberate refresh


class RefreshRefused(RuntimeError):
    """``ledger --update`` would write evidence that is not what a clean build of this commit computed."""


def update(root: Path | None = None) -> list[Path]:
    """Replace the committed evidence (``data/claims/``, ``data/claims.json``) by this build's ledger.

    Refused when tracked files differ from the last commit (evidence must come from a clean tree), when this
    build's ledger is missing, and when any of its entries was judged at another commit or from a dirty tree (an
    entry from a committed sweep was made at the sweep's commit and judged again by this one). ``data/claims.json``
    also records the machine of this build's own entries (each entry holds its own). Returns the files written.
    """
    dirty = is_dirty(root)
    if dirty:
        raise RefreshRefused(
            f"the tree has uncommitted changes ({', '.join(dirty[:3])}"
            f"{', ...' if len(dirty) > 3 else ''}): commit or stash them, rebuild, then update"
        )
    current = load(build_ledger_dir(root))
    if not current:
        raise RefreshRefused("this build has no ledger (_build/ledger/ is empty): run `make book` first")
    head = git_commit(root)
    # every entry judged at this commit: made by it, or (a committed sweep's or run's) judged again by it
    stale = sorted(
        {
            str(e["provenance"].get("judged_at", e["provenance"].get("commit")))
            for doc in current.values()
            for e in doc["entries"]
        }
        - {head}
    )
    if stale:
        raise RefreshRefused(
            f"this build's ledger holds entries from commit(s) {', '.join(map(str, stale))}, not "
            f"{head}: rebuild cold (make clean-cache book) at this commit, then update"
        )
    folder = claims_dir(root)
    written = []
    for old in folder.glob("*.json") if folder.is_dir() else []:
        if old.stem not in current:
            old.unlink()
    for chapter, doc in current.items():
        written.append(atomic_write_text(folder / f"{chapter}.json", json_text(doc)))
    live = [e for doc in current.values() for e in doc["entries"] if "judged_at" not in e["provenance"]]
    made_on = live[0]["provenance"].get("machine", {}) if live else machine()
    merged = {"commit": head, "machine": made_on, "claims": build(current)}
    written.append(atomic_write_text(claims_file(root), json_text(merged)))
    return written


def twin_story(prov: Provenance, checks: Sequence[Check], live: Sequence[Check], here: Provenance, sweep: str) -> str:
    """How a chapter's live run relates to the run of a committed sweep made with the same parameters.

    Args:
        prov: the sweep run's provenance record.
        checks: the sweep run's checks, judged again by this code.
        live: the live run's checks.
        here: the live run's provenance.
        sweep: the sweep's name.

    Returns:
        Markdown, one paragraph: the same numbers computed twice, or which checks differ and what differs between
        the two runs' commit, processor and device.
    """
    theirs = {c.id: c for c in checks}
    ours = {c.id: c for c in live if c.setting.get("source", "live") == "live"}
    same = [
        k for k in ours if k in theirs and theirs[k].verdict == ours[k].verdict and theirs[k].measure == ours[k].measure
    ]
    differ = [k for k in ours if k in theirs and k not in same]
    text = (
        f"**The live run and the sweep.** The sweep {sweep} holds a run with exactly this page's parameters "
        f"(seed {prov['params'].get('seed')}), made at {_where(prov)}. "
    )
    if not differ:
        return text + (
            f"Its {len(same)} checks have the same verdicts and the same numbers as the live run above: "
            "they are one result, computed twice."
        )
    apart = _apart(prov, here)
    return text + (
        f"{len(same)} of {len(same) + len(differ)} checks agree exactly; {len(differ)} differ "
        f"({', '.join(f'`{k}`' for k in differ[:4])}{', ...' if len(differ) > 4 else ''}). The live run "
        f"was made at {_where(here)}. "
        + (
            f"Between the two, {apart}: training on the CPU gives the same numbers only with the same code, "
            "kernels and thread count. "
            if apart
            else "Commit, processor and device are the same, so nothing recorded explains the difference. "
        )
        + "The verdict over seeds counts the sweep's run, the per-run table the live one."
    )


def _where(prov: Provenance) -> str:
    """A provenance record's commit, processor and device (with its thread count), in words."""
    cpu = prov.get("machine", {}).get("cpu")
    return f"commit `{prov.get('commit')}` on {f'{cpu}, ' if cpu else ''}{prov.get('device')}"


def _apart(sweep: Provenance, here: Provenance) -> str:
    """What differs between a sweep run's provenance and this run's among commit, processor and device, in words
    ("the commit is `a` in the sweep and `b` here; ..."), or "" when none does."""
    pairs = {
        "the commit": (sweep.get("commit"), here.get("commit")),
        "the processor": (sweep.get("machine", {}).get("cpu"), here.get("machine", {}).get("cpu")),
        "the device (with its thread count)": (sweep.get("device"), here.get("device")),
    }
    return "; ".join(f"{what} is {x} in the sweep and {y} here" for what, (x, y) in pairs.items() if x != y)
