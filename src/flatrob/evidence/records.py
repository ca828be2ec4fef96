"""The layouts of the evidence files, in one place: each file's format version and, as typed dictionaries, what a
ledger file, its entries and a sweep's summary hold. A reader of a committed file knows its keys from here; strict
mypy checks every module that builds or reads one of them by these types.

* ``data/claims/<chapter>.json`` and ``_build/ledger/<chapter>.json``: a :class:`LedgerFile` of
  :class:`LedgerEntry` (:data:`LEDGER_FORMAT`; :mod:`flatrob.evidence.ledger`);
* ``data/sweeps/<name>/summary.json``: a :class:`SweepSummary` (:data:`SUMMARY_FORMAT`; :mod:`flatrob.evidence.seeds`);
* a run's ``check-calls.json``: the logged calls of its checks (:data:`CALLS_FORMAT`;
  :mod:`flatrob.evidence.checks.replay`);
* ``data/models/manifest.json``: :data:`flatrob.store.MANIFEST_FORMAT`.

What these records hold inside is typed too: a setting or a chapter's parameters (:data:`Setting`, :data:`Params`:
name -> scalar or list of scalars), a check's measured values (:data:`Values`: name -> :data:`JSON`). A value read
back from a file goes through a reader that checks its type (:func:`number`, :func:`integer`, :func:`text`,
:func:`flag`, :func:`texts`, :func:`numbers`, :func:`mapping`, :func:`sequence`), so a malformed file fails where it
is read, with the value named, rather than as a wrong verdict later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

if TYPE_CHECKING:
    from flatrob.util.provenance import Provenance

__all__ = [
    "JSON",
    "ParamValue",
    "Params",
    "RuleRecord",
    "Scalar",
    "Setting",
    "Values",
    "flag",
    "integer",
    "mapping",
    "number",
    "numbers",
    "sequence",
    "text",
    "texts",
    "CALLS_FORMAT",
    "LEDGER_FORMAT",
    "SUMMARY_FORMAT",
    "CheckRecord",
    "ClaimRecord",
    "Combination",
    "ChapterComparison",
    "Comparison",
    "ComparisonRow",
    "Further",
    "LedgerEntry",
    "LedgerFile",
    "LoggedCall",
    "RegimeCall",
    "Measure",
    "CommittedSweep",
    "SeedsCheck",
    "SweepJob",
    "SweepPlan",
    "SettingGroup",
    "SweepResult",
    "SweepRun",
    "SweepSummary",
]

#: A scalar as JSON holds it.
Scalar = str | int | float | bool | None
#: A value as JSON holds it: a scalar, or a list or object of such values.
JSON = Scalar | Sequence["JSON"] | Mapping[str, "JSON"]
#: The value of one parameter of a chapter (:mod:`flatrob.jobs.params`): a scalar or a list of scalars.
ParamValue = Scalar | Sequence[Scalar]
#: A chapter's parameters, checked and typed (:func:`flatrob.jobs.params.validate`): name -> value.
Params = dict[str, ParamValue]
#: What made a check, as data: data set, model, training, the attack's norm, radius, steps and step size, the
#: number of inputs, the seed(s), the source of the evidence ("live", a sweep, a committed run) and the variant;
#: for a sweep over more than seeds, ``varied`` names the parameters it varies (their values are in the setting).
Setting = Params
#: A check's measured values, as its record stores them: name -> JSON value.
Values = dict[str, JSON]


def number(value: JSON | object) -> float:
    """A stored value read as a number (a JSON number or ``None``, as NaN).

    Args:
        value: a value of a setting, a check's values or a measure.

    Returns:
        The number as a float; NaN for ``None`` (a value that was not measured).

    Raises:
        TypeError: for a value that is not a number (a bool, a string, a list, an object).
    """
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number; got {value!r}")
    return float(value)


def integer(value: JSON | object) -> int:
    """A stored value read as a whole number (a float with no fraction counts); TypeError for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise TypeError(f"expected a whole number; got {value!r}")
    return int(value)


def text(value: JSON | object) -> str:
    """A stored value read as a string; TypeError for anything else."""
    if not isinstance(value, str):
        raise TypeError(f"expected a string; got {value!r}")
    return value


def flag(value: JSON | object) -> bool:
    """A stored value read as a bool; TypeError for anything else."""
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false; got {value!r}")
    return value


def texts(value: JSON | object) -> list[str]:
    """A stored value read as a list of strings; TypeError for anything else."""
    return [text(v) for v in sequence(value)]


def numbers(value: JSON | object) -> list[float]:
    """A stored value read as a list of numbers; TypeError for anything else."""
    return [number(v) for v in sequence(value)]


def mapping(value: JSON | object) -> Mapping[str, JSON]:
    """A stored value read as a JSON object; TypeError for anything else."""
    if not isinstance(value, Mapping):
        raise TypeError(f"expected an object; got {value!r}")
    return value


def sequence(value: JSON | object) -> Sequence[JSON]:
    """A stored value read as a JSON list (a string is not one); TypeError for anything else."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"expected a list; got {value!r}")
    return value


#: The layout of a ledger file: each entry a check (``Check.as_dict``) with its chapter and provenance.
LEDGER_FORMAT = 2
#: The version of ``summary.json``'s layout; summaries of another version (made by older code) are not read.
SUMMARY_FORMAT = 2
#: The layout of a run's logged check calls.
CALLS_FORMAT = 1


class RuleRecord(TypedDict):
    """A rule as a check's measure stores it (:meth:`flatrob.evidence.verdicts.Rule.as_dict`): which side of the
    threshold the claim lies on, the threshold, the refutation threshold, whether the bound is strict and the margin
    within which a verdict is fragile."""

    side: str
    threshold: float
    refute: float | None
    strict: bool
    margin: float | None


class Measure(TypedDict):
    """A check's decisive measure (:meth:`flatrob.evidence.estimates.Estimate.measure`): what was measured, its value
    and 95% interval over ``n`` inputs (or seeds), the count of a share, and the rule that turns it into the verdict
    (:meth:`flatrob.evidence.verdicts.Rule.as_dict`); pooled over seeds (:func:`flatrob.evidence.seeds.over_seeds`),
    how it was pooled ("counts" or "geometric"; an arithmetic mean says nothing) and over how many seeds."""

    name: str
    value: float
    ci95: list[float]
    n: int
    count: NotRequired[int]
    rule: RuleRecord
    pooled: NotRequired[str]
    seeds: NotRequired[int]


class _CheckFields(TypedDict):
    """What a check is, wherever it is stored: its id and claim, the part of the claim, the statement, verdict and
    evidence, the paper's number, the setting, the measured values, the decisive measure (value, interval, rule) and
    fragility."""

    id: str
    claim: int
    part: str
    statement: str
    verdict: str
    evidence: str
    paper: str
    setting: Setting
    values: Values
    measure: Measure | None
    fragile: bool


class CheckRecord(_CheckFields):
    """A check as a run stores it (``checks.json``) and :meth:`flatrob.evidence.verdicts.Check.as_dict` gives it,
    with, for committed evidence, the provenance of what made it."""

    provenance: Provenance | None


class SeedsCheck(TypedDict):
    """One check over the seeds of a sweep's combination (:func:`flatrob.evidence.seeds.over_seeds`): the check's
    identity and setting (without the seed), the seeds and each seed's verdict, the verdict over the seeds and its
    fragility; where at least two seeds measured, the pooled measure (a mean with its t-interval, or counts pooled
    with a Wilson interval), whether its interval has any width (``resolved``) and the seeds' spread (``min``,
    ``max``); each seed's limits where it had any (caps, censored counts)."""

    id: str
    claim: int
    part: str
    statement: str
    paper: str
    setting: Setting
    seeds: list[int]
    verdicts: dict[str, str]
    verdict: str
    fragile: bool
    limits: NotRequired[Values]
    measure: NotRequired[Measure]
    resolved: NotRequired[bool]
    min: NotRequired[float]
    max: NotRequired[float]


class LedgerEntry(_CheckFields):
    """One check in a ledger: ``Check.as_dict`` with the chapter that shows it; ``provenance`` is the run's or the
    sweep's that made it (never missing here)."""

    provenance: Provenance
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

    setting: Setting
    runs: list[SweepRun]
    checks: list[SeedsCheck]


class SweepJob(TypedDict):
    """One job of a sweep's plan: its id (from its parameters) and its checked, typed parameters."""

    id: str
    params: Params


class SweepPlan(TypedDict):
    """A sweep's plan (``grid.json``, :func:`flatrob.jobs.sweep.plan`): the chapter, the sweep's name, the grid of
    values and every combination as a job; in the file, the provenance of the checkout that planned it."""

    chapter: str
    name: str
    grid: dict[str, list[Any]]
    jobs: list[SweepJob]
    provenance: NotRequired[Provenance]


class SweepSummary(TypedDict):
    """A sweep's ``summary.json``: its plan and its combinations, every run judged again by the code."""

    format: int
    chapter: str
    name: str
    grid: dict[str, list[Any]]
    jobs: int
    finished: int
    combinations: list[Combination]
    grid_provenance: Provenance


class SettingGroup(TypedDict):
    """The checks of one claim that share a setting (:func:`flatrob.evidence.ledger.setting_group`), with the
    setting's combined verdict: how the report and the pages read a claim's evidence setting by setting."""

    setting: Setting
    label: str
    paper_setting: bool
    paper_attack: bool
    strength: int
    verdict: str
    fragile: bool
    checks: list[str]


class Further(TypedDict):
    """The best setting beyond the paper's, named by its own verdict, where the paper's gives no evidence."""

    label: str
    verdict: str


class ClaimRecord(TypedDict):
    """One claim as the ledger makes it (:func:`flatrob.evidence.ledger.build`): the claim of
    :data:`flatrob.evidence.claims.CLAIMS` (statement, paper, kind, source, paper_settings), its headline verdict and
    fragility, the best further setting, its settings (paper's first, then by strength) and all its checks."""

    claim: int
    statement: str
    paper: str
    kind: str
    source: str
    paper_settings: list[Params]
    verdict: str
    fragile: bool
    further: Further | None
    settings: list[SettingGroup]
    checks: list[LedgerEntry]


#: One check of a build against the committed evidence (:func:`flatrob.evidence.compare.compare`): its id, chapter and
#: claim, both verdicts, whether they agree, fragility, both decisive values, their relative drift, and whether this
#: build's value lies inside the committed interval. (Keys with spaces: the table a page shows is made from them.)
ComparisonRow = TypedDict(
    "ComparisonRow",
    {
        "check": str,
        "chapter": str,
        "claim": int,
        "committed": str,
        "this build": str,
        "agrees": bool,
        "fragile": bool,
        "committed value": float | None,
        "value here": float | None,
        "drift": float | None,
        "inside committed interval": bool | None,
    },
)


class ChapterComparison(TypedDict):
    """A chapter's fresh entries against its committed ones (:func:`flatrob.evidence.compare.compare_chapter`): the
    rows compared (none where the parameters differ) and a sentence that says how they agree, or why they are not
    compared."""

    rows: list[ComparisonRow]
    note: str


class SweepResult(TypedDict):
    """A result file of one run of a committed sweep (:meth:`flatrob.jobs.chapter.ChapterContext.sweep_results`):
    the sweep's name, the combination's parameters but the seed, the seed, the run as the summary records it, and
    the file read (a ``.npz`` as a dict of arrays, a ``.json`` as its content, a ``.csv`` as a DataFrame)."""

    sweep: str
    setting: Setting
    seed: int
    run: SweepRun
    data: Any


class LoggedCall(TypedDict):
    """One logged call of a check in a run's ``check-calls.json`` (:class:`flatrob.evidence.checks.replay.CheckLog`):
    the check's name and its arguments as JSON, each array replaced by a reference into the run's array file."""

    check: str
    args: list[JSON]
    kwargs: dict[str, JSON]


class RegimeCall(SweepResult):
    """One recorded call of a check in a run of the paper's regime
    (:meth:`flatrob.jobs.chapter.ChapterContext.paper_regime_calls`): the run's result, and the call's arguments."""

    args: list[object]
    kwargs: dict[str, object]


class Comparison(TypedDict):
    """A build's ledger against the committed one: its rows and how many agree, the largest drift of a decisive
    value and where, and the checks that disagree."""

    rows: list[ComparisonRow]
    checks: int
    agree: int
    largest_drift: float | None
    largest_drift_check: str | None
    disagree: list[str]


class CommittedSweep(TypedDict):
    """A committed sweep as the pages read it (:func:`flatrob.evidence.seeds.committed_sweeps`): its folder and its
    summary, judged again by this code where its plan is there."""

    dir: Path
    summary: SweepSummary
