"""The verdict machinery, claim-agnostic: estimates with intervals, rules that judge them, checks, seeds.

A verdict is computed, never written by hand, and never inside a chapter:

* every ratio, share or median a verdict uses is an :class:`Estimate` with a 95% interval over the inputs
  (:func:`bootstrap` for medians and ratios, :func:`share` for proportions: a Wilson score interval, which never
  has zero width);
* a :class:`Rule` says on which side of a threshold the claim puts the estimate. **reproduced** needs the whole
  interval on the claim's side, **not reproduced** the whole interval on the other side of the rule's refutation
  threshold, and everything in between, an inconclusive interval included, is **partly**;
* **holds by construction**: an identity the code cannot help satisfying (shown, never counted as evidence:
  :func:`combine`); **not testable here**: the data cannot make the check (nothing flipped), the evidence says why;
* a check whose interval ends lie within its rule's margin of a threshold is **fragile**: another machine, seed or
  sample could move it across (:meth:`Rule.fragile`);
* **not reached in this regime**: a check of the paper's regime on a network that does not reach it; **cannot
  decide here**: a measure that cannot reach its threshold in the setting (the largest value it could show is
  said); like "not testable here", neither counts as evidence;
* the parts of a claim combine by one rule (:func:`combine`): a refuted part makes it "not reproduced", all parts
  reproduced make it "reproduced", anything else "partly";
* the settings (rows) of one claim combine by :func:`combine_settings`: a row whose attack did not reach the claim's
  regime reads "not reached in this regime" in every part and does not weaken the rows that did;
* over several training seeds (:func:`over_seeds_verdict`) "reproduced" or "not reproduced" needs a majority of
  the seeds that could test, at least half of all seeds, and the pooled interval over the seeds on the same side;
  otherwise "partly" (fragile). A share pools the seeds' counts (:func:`pooled_share`, a Wilson interval of the
  sum); a continuous measure, the seeds' values (:func:`pooled_mean`, a t-interval). An interval of zero width,
  within a run (a median of a few discrete steps) or over seeds (identical values), is *unresolved*: never
  decisive, always fragile.

Every threshold is fixed, with its reason, in :mod:`flatrob.evidence.checks`, which holds one function per claim.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal, cast

from flatrob.evidence.estimates import (
    Estimate,
    Pooled,
    bootstrap,
    is_ratio,
    median,
    pooled_mean,
    pooled_share,
    rule_of_three,
    share,
    share_of,
    t_interval,
)
from flatrob.evidence.records import (
    CheckRecord,
    Measure,
    RuleRecord,
    Setting,
    Values,
    flag,
    integer,
    mapping,
    number,
    sequence,
    text,
    texts,
)
from flatrob.util.provenance import three_digits

if TYPE_CHECKING:
    from flatrob.util.provenance import Provenance

__all__ = [
    "BY_CONSTRUCTION",
    "CANNOT_DECIDE",
    "Check",
    "EVIDENCE_VERDICTS",
    "Estimate",
    "NOT_REACHED",
    "NOT_TESTABLE",
    "OVER_SEEDS_RULE",
    "Rule",
    "SILENT_VERDICTS",
    "Setting",
    "VERDICTS",
    "bootstrap",
    "check_id",
    "combine",
    "combine_settings",
    "define",
    "VERDICT_WORDS",
    "counted_settings",
    "is_ratio",
    "judged",
    "majority",
    "median",
    "over_seeds_verdict",
    "Pooled",
    "pooled_mean",
    "pooled_share",
    "rule_of_three",
    "share",
    "share_of",
    "t_interval",
]

#: The verdicts that are evidence for or against a claim.
EVIDENCE_VERDICTS = ("reproduced", "partly", "not reproduced")
#: A check that holds whatever the data: shown, never counted.
BY_CONSTRUCTION = "holds by construction"
#: A check the data at hand cannot make (the reason is in its evidence).
NOT_TESTABLE = "not testable here"
#: A check of what happens in the paper's regime, on a network that is not in it (its attacks end unconfident, near
#: the decision boundary): neither for nor against the claim, which is about the regime the network did not reach.
NOT_REACHED = "not reached in this regime"
#: A check whose measure cannot reach the claim's threshold in this setting (the largest value it could show is in
#: its evidence): it cannot confirm the claim, whatever the data.
CANNOT_DECIDE = "cannot decide here"
#: The verdicts that are not evidence for or against a claim, strongest reason first.
SILENT_VERDICTS = (NOT_REACHED, CANNOT_DECIDE, NOT_TESTABLE)
VERDICTS = (*EVIDENCE_VERDICTS, BY_CONSTRUCTION, *SILENT_VERDICTS)

#: Every verdict word in one sentence, for the pages that show verdicts (:func:`define`): written once, here.
VERDICT_WORDS = {
    "reproduced": "the whole 95% interval of the decisive measure lies on the claim's side of its threshold",
    "partly": "the interval lies between the claim's threshold and the refutation threshold, or straddles one: the "
    "data neither confirm nor refute the claim",
    "not reproduced": "the whole interval lies beyond the refutation threshold, on the other side of the claim",
    BY_CONSTRUCTION: "an identity the code cannot help satisfying; its measured number is shown, never counted as "
    "evidence",
    NOT_TESTABLE: "the data cannot make the check (for example, too few inputs flipped); the evidence says why",
    NOT_REACHED: "the attack on this network does not reach the regime the claim is about (too few inputs flip, or "
    "the attack ends near the decision boundary); neither for nor against the claim",
    CANNOT_DECIDE: "the measure cannot reach the claim's threshold in this setting (the largest value it could show "
    "is given), so it cannot confirm the claim whatever the data",
    "fragile": "an interval end lies within the rule's margin of a threshold, or the seeds disagree: another "
    "machine, seed or sample could move the verdict",
}


def define(shown: Sequence[str]) -> str:
    """The verdict words of the verdicts ``shown`` (as a page shows them: "partly (fragile)"), each defined in one
    sentence (:data:`VERDICT_WORDS`), in that order, as Markdown; empty when none is known."""
    used = {str(t).replace(" (fragile)", "").strip() for t in shown} | {"fragile" for t in shown if "fragile" in str(t)}
    found = [f"**{w}**: {VERDICT_WORDS[w]}" for w in VERDICT_WORDS if w in used]
    return ("Verdict words: " + "; ".join(found) + ".") if found else ""


# ---------------------------------------------------------------------------
# rules


@dataclass(frozen=True)
class Rule:
    """A claim about an estimate: it lies ``above`` (or ``below``) ``threshold``.

    Reproduced when the whole interval lies on the claim's side of ``threshold`` (beyond it when ``strict``); not
    reproduced when the whole interval lies on the other side of ``refute``, which every rule names and which must
    lie strictly on the other side of the threshold: between the two is a middle band, where the data are "partly"
    for the claim (an interval that straddles either threshold is "partly" too). Not testable for an empty sample;
    an interval of zero width (a median of a few discrete values, all resamples alike) is *unresolved*: "partly"
    and fragile, never decisive. ``margin``: how close an interval end may come to a threshold before the verdict is
    flagged fragile (default 10% of the threshold; required for a threshold of 0).
    """

    side: Literal["above", "below"]
    threshold: float
    refute: float | None = None
    strict: bool = False
    margin: float | None = None

    def __post_init__(self) -> None:
        if self.side not in ("above", "below"):
            raise ValueError(f"side must be 'above' or 'below'; got {self.side!r}")
        r = self.refutation
        if (
            self.refute is None
            or (self.side == "above" and r >= self.threshold)
            or (self.side == "below" and r <= self.threshold)
        ):
            raise ValueError(
                f"a rule needs a refutation threshold strictly on the other side of {self.threshold} (a middle band "
                f"between them); got {self.refute}"
            )
        if self.margin is None and self.threshold == 0:
            raise ValueError("a rule with threshold 0 needs an explicit margin")

    @property
    def refutation(self) -> float:
        return self.threshold if self.refute is None else self.refute

    @property
    def tolerance(self) -> float:
        return self.margin if self.margin is not None else 0.1 * abs(self.threshold)

    def judge(self, e: Estimate | Mapping[str, object]) -> str:
        """The verdict on an estimate (an :class:`Estimate`, or a mapping with ``value``, ``lo`` and ``hi``)."""
        est = _as_estimate(e)
        if not all(math.isfinite(v) for v in (est.value, est.lo, est.hi)):
            return NOT_TESTABLE
        if not est.resolved:  # zero width: the data cannot say how uncertain the value is, so it decides nothing
            return "partly"
        t, r, lo, hi = self.threshold, self.refutation, est.lo, est.hi
        if self.side == "above":
            if (lo > t) if self.strict else (lo >= t):
                return "reproduced"
            if (hi <= r) if self.strict else (hi < r):
                return "not reproduced"
        else:
            if (hi < t) if self.strict else (hi <= t):
                return "reproduced"
            if (lo >= r) if self.strict else (lo > r):
                return "not reproduced"
        return "partly"

    def fragile(self, e: Estimate | Mapping[str, object]) -> bool:
        """Whether an interval end lies within :attr:`tolerance` of a threshold it would cross to change the
        verdict."""
        est = _as_estimate(e)
        if not all(math.isfinite(v) for v in (est.value, est.lo, est.hi)):
            return False
        if not est.resolved:
            return True
        near_claim = est.lo if self.side == "above" else est.hi
        near_refute = est.hi if self.side == "above" else est.lo
        return min(abs(near_claim - self.threshold), abs(near_refute - self.refutation)) < self.tolerance

    def describe(self) -> str:
        """In words, for the evidence: ``above 2 (not reproduced below 1)``."""
        word = {"above": "above" if self.strict else "at least", "below": "below" if self.strict else "at most"}
        text = f"{word[self.side]} {three_digits(self.threshold)}"
        return text + f"; not reproduced {'below' if self.side == 'above' else 'above'} {three_digits(self.refutation)}"

    def as_dict(self) -> RuleRecord:
        return cast(RuleRecord, asdict(self))

    @classmethod
    def from_dict(cls, d: RuleRecord) -> Rule:
        side = d["side"]
        if side != "above" and side != "below":
            raise ValueError(f"side must be 'above' or 'below'; got {side!r}")
        return cls("above" if side == "above" else "below", d["threshold"], d["refute"], d["strict"], d["margin"])


def _as_estimate(e: Estimate | Mapping[str, object]) -> Estimate:
    if isinstance(e, Estimate):
        return e
    lo, hi = sequence(e["ci95"]) if "ci95" in e else (e["lo"], e["hi"])
    return Estimate(number(e["value"]), number(lo), number(hi), integer(e.get("n", 0)))


# ---------------------------------------------------------------------------
# checks


def check_id(claim: int, part: str, setting: Mapping[str, object]) -> str:
    """The name of a check, made from its claim, its part and the setting that distinguishes it from its siblings:
    ``6-rise-clean-linf-eps=0.03137``; a sweep's combination adds the values of the parameters it varies
    (``...-architecture=mlp-epochs=8-study_valley-conditions``). Made once, never parsed back (the setting travels
    as data)."""
    bits = [f"{claim}-{part}" if part else str(claim)]
    for key in ("training", "variant", "definition"):
        if setting.get(key):
            bits.append(str(setting[key]).replace(" ", "_"))
    if setting.get("norm") and setting.get("eps") is not None:
        bits.append(f"{setting['norm']}-eps={number(setting['eps']):.4g}")
    for key in texts(setting.get("varied", [])):  # a sweep over more than seeds: the combination's own values
        bits.append(f"{key}={setting.get(key)}".replace(" ", "_"))
    if setting.get("source", "live") != "live":
        bits.append(str(setting["source"]).replace(" ", "_"))
    return "-".join(bits)


@dataclass(kw_only=True)
class Check:
    """One claim checked on data.

    ``claim`` is the number of the claim in :data:`flatrob.evidence.claims.CLAIMS` and ``part`` the check's name
    within it; ``setting`` says, as data, what made it (:data:`Setting`); ``verdict`` is one of :data:`VERDICTS`;
    ``evidence`` says in words what was measured (with its interval) against which threshold; ``paper`` is the
    paper's number or shape for the same check; ``values`` holds the numbers. ``measure``, where one estimate
    decides the verdict, names it with its rule ({"name", "value", "ci95", "n", "rule"}); ``fragile`` flags a
    verdict whose interval lies within the rule's margin of a threshold. ``provenance``, for a check that this run
    did not make (a committed sweep's or run's), says what made it; None means the run that holds the check.
    """

    claim: int
    part: str
    statement: str
    verdict: str
    evidence: str
    paper: str = ""
    setting: Setting = field(default_factory=dict)
    values: Values = field(default_factory=dict)
    measure: Measure | None = None
    fragile: bool = False
    provenance: Provenance | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}; got {self.verdict!r}")

    @property
    def id(self) -> str:
        return check_id(self.claim, self.part, self.setting)

    def as_dict(self) -> CheckRecord:
        return cast(CheckRecord, {"id": self.id, **asdict(self)})

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> Check:
        """A check as a record stores it (``checks.json``, a ledger entry), its fields checked for their types."""
        return cls(
            claim=integer(d["claim"]),
            part=text(d["part"]),
            statement=text(d["statement"]),
            verdict=text(d["verdict"]),
            evidence=text(d["evidence"]),
            paper=text(d.get("paper", "")),
            setting=cast(Setting, dict(mapping(d.get("setting", {})))),
            values=dict(mapping(d.get("values", {}))),
            measure=cast("Measure | None", d.get("measure")),
            fragile=flag(d.get("fragile", False)),
            provenance=cast("Provenance | None", d.get("provenance")),
        )


def judged(
    claim: int,
    part: str,
    statement: str,
    estimate: Estimate,
    rule: Rule,
    *,
    name: str,
    evidence: str,
    paper: str,
    setting: Setting,
    values: Values | None = None,
) -> Check:
    """A check decided by one estimate and its rule: the verdict, the measure and the fragility all from them (an
    interval of zero width is said to be unresolved in the evidence)."""
    unresolved = all(math.isfinite(v) for v in (estimate.value, estimate.lo, estimate.hi)) and not estimate.resolved
    return Check(
        claim=claim,
        part=part,
        statement=statement,
        verdict=rule.judge(estimate),
        evidence=evidence + ("; unresolved: the interval has zero width, so it decides nothing" if unresolved else ""),
        paper=paper,
        setting=dict(setting),
        values={name: estimate.as_dict(), **(values or {})},
        measure=estimate.measure(name, rule),
        fragile=rule.fragile(estimate),
    )


def combine(verdicts: Sequence[str]) -> str:
    """One verdict from the required parts of one claim (or a claim's checks in one setting).

    Only evidence decides: a part that is refuted makes the whole "not reproduced"; all parts reproduced make it
    "reproduced"; anything else, parts that are "partly" or that could not be made here beside reproduced ones, is
    "partly". Parts that hold by construction are shown but never counted. With no evidence at all: the strongest
    reason why (:data:`SILENT_VERDICTS`: not reached in this regime, cannot decide here, not testable here), or
    "holds by construction" when every part holds so.
    """
    tested = [v for v in verdicts if v in EVIDENCE_VERDICTS]
    silent = [v for v in SILENT_VERDICTS if v in verdicts]
    if not tested:
        if silent:
            return silent[0]
        return BY_CONSTRUCTION if BY_CONSTRUCTION in verdicts else NOT_TESTABLE
    if "not reproduced" in tested:
        return "not reproduced"
    if all(v == "reproduced" for v in tested) and not silent:
        return "reproduced"
    return "partly"


def combine_settings(verdicts: Sequence[str]) -> str:
    """One verdict from the verdicts of several settings (rows) of one claim, e.g. the clean and the adversarially
    trained model at the paper's setting: a row whose attack did not reach the regime the claim is about
    (:data:`NOT_REACHED`) is neither for nor against it and does not weaken the rows that did, so it is left out
    whenever some row gives evidence; then :func:`combine`. Within one setting, :func:`combine` alone joins a claim's
    parts.
    """
    if any(v in EVIDENCE_VERDICTS for v in verdicts):
        return combine([v for v in verdicts if v != NOT_REACHED])
    return combine(list(verdicts))


def counted_settings(verdicts: Sequence[str]) -> list[bool]:
    """Which of several settings' verdicts :func:`combine_settings` counts (for their fragility too): all but those
    :data:`NOT_REACHED` whenever some setting gives evidence."""
    evidence = any(v in EVIDENCE_VERDICTS for v in verdicts)
    return [not (evidence and v == NOT_REACHED) for v in verdicts]


#: The rule over seeds in words, for every page that shows verdicts over seeds (:func:`over_seeds_verdict`, with
#: :func:`pooled_mean` and :func:`pooled_share`): written once, here, beside the code that applies it.
OVER_SEEDS_RULE = (
    'Over the seeds, a check is "reproduced" (or "not reproduced") only when (1) more than half of the seeds that '
    "could make it say so, each by the check's whole rule, (2) at least half of all seeds say so, and (3) its "
    'measure pooled over the seeds lies on the same side of the rule; otherwise it is "partly" (fragile). A share '
    "(flip rate, transfer success, detector accuracy) is pooled as the seeds' counts added up, with a 95% Wilson "
    "interval; any other measure as the mean of the seeds' values (a ratio: the geometric mean) with a 95% "
    "t-interval over the seeds, each seed attacking its own draw of inputs. An interval of zero width decides "
    "nothing. Every seed's checks are judged again, by this book's rules, from the measurements its run recorded."
)


def over_seeds_verdict(
    verdicts: Sequence[str], pooled: Estimate | Mapping[str, object] | None = None, rule: Rule | None = None
) -> tuple[str, bool]:
    """One verdict over several training seeds, each seed judged by the check's whole rule: (verdict, fragile).

    "reproduced" (or "not reproduced") needs (1) more than half of the seeds that could make the check with that
    verdict, (2) at least half of all seeds with it (seeds that could not test do not carry a verdict for the
    others), and (3) where the check has a decisive measure, its pooled interval over the seeds (``pooled``, judged
    by ``rule``) on the same side. Otherwise the seeds support no more than "partly", flagged fragile. A check no
    seed could make keeps the reason (:func:`combine`). Fragile also when the seeds disagree or the pooled interval
    lies within the rule's margin of a threshold or has zero width.
    """
    tested = [v for v in verdicts if v in EVIDENCE_VERDICTS]
    if not tested:
        return combine(list(verdicts)), False
    counts = Counter(tested)
    pooled_verdict = rule.judge(pooled) if pooled is not None and rule is not None else None
    fragile = len(set(verdicts)) > 1 or (pooled is not None and rule is not None and rule.fragile(pooled))
    for verdict in ("reproduced", "not reproduced"):
        if (
            counts[verdict] * 2 > len(tested)
            and counts[verdict] * 2 >= len(verdicts)
            and pooled_verdict in (None, verdict)
        ):
            return verdict, fragile
    return "partly", True


def majority(verdicts: Sequence[str]) -> str:
    """:func:`over_seeds_verdict` by the votes alone (no pooled measure)."""
    return over_seeds_verdict(verdicts)[0]
