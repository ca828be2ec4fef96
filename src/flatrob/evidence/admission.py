"""What counts as evidence, and the gate that keeps it honest: a result counts when it is committed (or promoted by
hand, :func:`promote`), and a build passes :func:`ledger_gate` when it changed no tracked file, wrote its ledger and
its report's comparison, and every verdict that differs from the committed evidence is fragile. The command line
(``python -m flatrob ledger``, ``promote``) only prints what these return."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from flatrob.evidence.records import Comparison
from flatrob.util.paths import PROMOTED, PROVENANCE, SUMMARY, build_ledger_dir, claims_dir, html_page, repo_root
from flatrob.util.provenance import is_dirty

__all__ = ["committed", "ledger_command", "ledger_gate", "promote"]


def committed(files: list[Path], root: Path | None = None) -> list[Path]:
    """The files among ``files`` that count as evidence: committed (in ``HEAD`` and unchanged since: a file that is
    only staged, or modified after its commit, does not count), or beside a file named ``PROMOTED``
    (``python -m flatrob promote``). In their order; none outside git unless promoted."""
    root = (root or repo_root()).resolve()
    good: set[Path] = set()
    if files:
        try:
            rel = [str(p.resolve().relative_to(root)) for p in files]
            listed = subprocess.run(
                ["git", "ls-tree", "-r", "-z", "--name-only", "HEAD", "--", *rel],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            changed = subprocess.run(
                ["git", "diff", "--name-only", "-z", "HEAD", "--", *rel],
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            good = {(root / p).resolve() for p in set(listed.split("\0")) - set(changed.split("\0")) if p}
        except (OSError, subprocess.CalledProcessError, ValueError):
            pass
    return [f for f in files if f.resolve() in good or (f.parent / PROMOTED).exists()]


def promote(folder: Path, undo: bool = False) -> int:
    """Let a finished run or an aggregated sweep that is not committed count as evidence (a ``PROMOTED`` file beside
    it), or stop it counting (``undo``).

    Args:
        folder: the run's folder (with ``provenance.json``) or the sweep's (with ``summary.json``).
        undo: remove the mark instead.

    Returns:
        0 (the command's exit status).

    Raises:
        ParameterError: ``folder`` is neither.
    """
    from flatrob.jobs.params import ParameterError

    if not ((folder / PROVENANCE).is_file() or (folder / SUMMARY).is_file()):
        raise ParameterError(
            f"{folder} is neither a finished run (no provenance.json) nor an aggregated sweep (no summary.json)"
        )
    marker = folder / PROMOTED
    if undo:
        marker.unlink(missing_ok=True)
    else:
        marker.write_text("This folder counts as evidence in the book although it is not committed.\n")
    print(("demoted " if undo else "promoted ") + str(folder))
    return 0


def ledger_gate(result: Comparison) -> list[str]:
    """What stops a build from counting (``make ledger-check``): tracked files the build changed, no ledger written,
    a report without its comparison with the committed evidence, and each verdict that differs from the committed
    one without being fragile.

    Args:
        result: :func:`flatrob.evidence.compare.compare` of the committed ledger and this build's.

    Returns:
        The problems, one sentence each; [] when the build passes.
    """
    from flatrob.evidence import ledger

    problems = []
    if is_dirty():
        problems.append(f"the build changed tracked files: {', '.join(is_dirty()[:5])}")
    if not ledger.load(build_ledger_dir()):
        problems.append("this build wrote no ledger (_build/ledger/ is empty)")
    page = html_page("reproduction.html")
    if not page.is_file() or "build-vs-committed" not in page.read_text():
        problems.append(f"{page} lacks the comparison with the committed evidence")
    for r in result["rows"]:
        if not r["agrees"] and not r["fragile"]:
            problems.append(f"{r['check']}: committed {r['committed']}, this build {r['this build']} (not fragile)")
    return problems


def ledger_command(update: bool, check: bool = False) -> int:
    """``python -m flatrob ledger``: the committed claims and how many of this build's verdicts agree with them;
    ``--check`` applies :func:`ledger_gate`, ``--update`` rewrites the committed evidence from this build
    (:func:`flatrob.evidence.compare.update`, refused from a tree with uncommitted changes).

    Returns:
        The exit status: 0, 1 (the gate found problems) or 2 (update refused).
    """
    from flatrob.evidence import compare, ledger

    if update:
        try:
            written = compare.update()
        except compare.RefreshRefused as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"committed evidence rewritten from this build: {len(written)} files under data/")
        return 0
    result = compare.compare(ledger.load(claims_dir()), ledger.load(build_ledger_dir()))
    for claim in ledger.build(ledger.load(claims_dir())):
        print(f"claim {claim['claim']:2d}  {claim['verdict']:22s} {claim['statement'][:90]}")
    drift = result["largest_drift"]
    print(
        f"this build: {result['agree']} of {result['checks']} verdicts agree with the committed evidence"
        + (f"; largest drift {100 * drift:.2g}% ({result['largest_drift_check']})" if drift else "")
    )
    if not check:
        return 0
    problems = ledger_gate(result)
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return 1 if problems else 0
