"""The layouts of the evidence files, in one place: each file's format version and, as typed dictionaries, what a
ledger file, its entries and a sweep's summary hold. A reader of a committed file knows its keys from here; strict
mypy checks every module that builds or reads one of them by these types.

* ``data/claims/<chapter>.json`` and ``_build/ledger/<chapter>.json``: a :class:`LedgerFile` of
  :class:`LedgerEntry` (:data:`LEDGER_FORMAT`; :mod:`flatrob.evidence.ledger`);
* ``data/sweeps/<name>/summary.json``: a :class:`SweepSummary` (:data:`SUMMARY_FORMAT`; :mod:`flatrob.evidence.seeds`);
* a run's ``check-calls.json``: the logged calls of its checks (:data:`CALLS_FORMAT`;
  :mod:`flatrob.evidence.checks.replay`);
* ``data/models/manifest.json``: :data:`flatrob.store.MANIFEST_FORMAT`.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = [
    "CALLS_FORMAT",
    "LEDGER_FORMAT",
    "SUMMARY_FORMAT",
    "Combination",
    "LedgerEntry",
    "LedgerFile",
    "SweepRun",
    "SweepSummary",
]

#: The layout of a ledger file: each entry a check (``Check.as_dict``) with its chapter and provenance.
LEDGER_FORMAT = 2
#: The version of ``summary.json``'s layout; summaries of another version (made by older code) are not read.
SUMMARY_FORMAT = 2
#: The layout of a run's logged check calls.
CALLS_FORMAT = 1


class LedgerEntry(TypedDict):
    """One check in a ledger: ``Check.as_dict`` (id, claim, part, statement, verdict, evidence, paper, setting,
    values, measure, fragile, provenance) with the chapter that shows it; ``provenance`` is the run's or the
    sweep's that made it."""

    id: str
    claim: int
    part: str
    statement: str
    verdict: str
    evidence: str
    paper: str
    setting: dict[str, Any]
    values: dict[str, Any]
    measure: dict[str, Any] | None
    fragile: bool
    provenance: dict[str, Any]
    chapter: str


class LedgerFile(TypedDict):
    """A chapter's ledger file: its format, the chapter, how long the chapter ran and its entries."""

    format: int
    chapter: str
    duration_s: float | None
    entries: list[LedgerEntry]


class SweepRun(TypedDict):
    """One finished run of a sweep, as its summary records it."""

    job: str
    seed: int
    commit: str | None
    device: str | None
    machine: str | None
    duration_s: float | None


class Combination(TypedDict):
    """The runs of one combination of a sweep's parameters other than the seed, and its checks over the seeds."""

    setting: dict[str, Any]
    runs: list[SweepRun]
    checks: list[dict[str, Any]]


class SweepSummary(TypedDict):
    """A sweep's ``summary.json``: its plan and its combinations, every run judged again by the code."""

    format: int
    chapter: str
    name: str
    grid: dict[str, list[Any]]
    jobs: int
    finished: int
    combinations: list[Combination]
    grid_provenance: dict[str, Any]
