"""Estimates with their 95% intervals, the statistics every verdict is made of (:mod:`flatrob.evidence.verdicts`
judges them): medians and ratios by a seeded bootstrap over the inputs, shares by the Wilson score interval (which
never has zero width and keeps its count, so that shares over seeds pool as counts), means over a few seeds by the
t-interval (ratios on the log scale)."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np

from flatrob.evidence.records import JSON, Measure, RuleRecord
from flatrob.util.provenance import interval_text


class NamedRule(Protocol):
    """What an estimate needs of a rule (:class:`flatrob.evidence.verdicts.Rule`) to name it as its measure's."""

    def as_dict(self) -> RuleRecord: ...


__all__ = [
    "BOOT_SEED",
    "Estimate",
    "N_BOOT",
    "Pooled",
    "Z95",
    "bootstrap",
    "is_ratio",
    "median",
    "pooled_mean",
    "pooled_share",
    "pooled_shares",
    "rowwise",
    "rule_of_three",
    "share",
    "share_of",
    "t_interval",
]

#: Bootstrap resamples for every interval (seeded: a run's intervals are reproducible); 2000 resamples put the
#: Monte Carlo error of a 95% percentile interval's ends well below the sampling error of a few hundred inputs.
N_BOOT, BOOT_SEED = 2000, 0
#: The normal quantile of a two-sided 95% interval (Wilson intervals of shares).
Z95 = 1.959963984540054


# ---------------------------------------------------------------------------
# estimates


@dataclass(frozen=True)
class Estimate:
    """A statistic of per-input values with its 95% interval over the inputs (``n`` of them)."""

    value: float
    lo: float
    hi: float
    n: int
    #: For a share (:func:`share_of`): how many of the ``n`` inputs count; shares over seeds pool these counts.
    count: int | None = None

    def __str__(self) -> str:
        return interval_text(self.value, self.lo, self.hi)

    @property
    def resolved(self) -> bool:
        """False for an empty sample or an interval of zero width (a median of a few discrete values)."""
        return all(math.isfinite(v) for v in (self.value, self.lo, self.hi)) and self.hi > self.lo

    def as_dict(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {"value": self.value, "ci95": [self.lo, self.hi], "n": self.n}
        if self.count is not None:
            out["count"] = self.count
        return out

    def measure(self, name: str, rule: NamedRule) -> Measure:
        """This estimate as the decisive measure of a check, with the rule that turns it into the verdict."""
        ci95 = [self.lo, self.hi]
        if self.count is None:
            return Measure(name=name, value=self.value, ci95=ci95, n=self.n, rule=rule.as_dict())
        return Measure(name=name, value=self.value, ci95=ci95, n=self.n, count=self.count, rule=rule.as_dict())


Stat = TypeVar("Stat", bound=Callable[..., float])
#: Statistics with a form that evaluates every bootstrap resample at once (:func:`rowwise`): the statistic -> a
#: function of one (resamples, inputs) matrix per sample that returns one value per resample.
_ROWWISE: weakref.WeakKeyDictionary[Callable[..., float], Callable[..., np.ndarray]] = weakref.WeakKeyDictionary()
#: Resample matrices are made in blocks of about this many entries (a block of resamples at a time: memory stays
#: bounded for any sample size, and the random stream, drawn row after row, is the same).
_BLOCK = 4_000_000


def rowwise(rows: Callable[..., np.ndarray]) -> Callable[[Stat], Stat]:
    """Register the row-wise form of a statistic for :func:`bootstrap`: ``rows(*matrices)`` takes one matrix of
    shape (resamples, inputs) per sample and returns the statistic of each row, shape (resamples,), exactly as the
    statistic computes it on that row (the intervals are the same to the last bit; only the time differs)."""

    def register(stat: Stat) -> Stat:
        _ROWWISE[stat] = rows
        return stat

    return register


def bootstrap(
    stat: Callable[..., float], *samples: Any, paired: bool = True, n_boot: int = N_BOOT, seed: int = BOOT_SEED
) -> Estimate:
    """``stat(*samples)`` and its 95% percentile-bootstrap interval over the inputs.

    ``paired``: the samples are measurements of the same inputs (same length), resampled with the same indices;
    otherwise each is resampled on its own. Seeded, so the interval of a run is reproducible. NaN when a sample
    is empty. A statistic registered with :func:`rowwise` is evaluated on all resamples at once (paired samples),
    with the same resamples and the same values as one at a time (``benchmarks/bench_bootstrap.py`` measures both).
    """
    arrays = [np.asarray(s, dtype=np.float64) for s in samples]
    if any(len(a) == 0 for a in arrays):
        return Estimate(math.nan, math.nan, math.nan, 0)
    if paired and len({len(a) for a in arrays}) != 1:
        raise ValueError(f"paired samples must have equal lengths; got {[len(a) for a in arrays]}")
    rng = np.random.default_rng(seed)
    value = float(stat(*arrays))
    try:
        rows = _ROWWISE.get(stat)
    except TypeError:  # a statistic that cannot be weakly referenced (np.median itself) has no row-wise form here
        rows = None
    if rows is not None and (paired or len(arrays) == 1):
        boots = _resampled_rows(rows, arrays, rng, n_boot)
    else:
        boots = np.empty(n_boot)
        for b in range(n_boot):
            if paired:
                idx = rng.integers(0, len(arrays[0]), len(arrays[0]))
                boots[b] = stat(*(a[idx] for a in arrays))
            else:
                boots[b] = stat(*(a[rng.integers(0, len(a), len(a))] for a in arrays))
    finite = boots[~np.isnan(boots)]  # a statistic undefined on every resample has no interval (and no warning)
    lo, hi = np.quantile(finite, [0.025, 0.975]) if len(finite) else (math.nan, math.nan)
    return Estimate(value, float(lo), float(hi), len(arrays[0]))


def _resampled_rows(
    rows: Callable[..., np.ndarray], arrays: list[np.ndarray], rng: np.random.Generator, n_boot: int
) -> np.ndarray:
    """``rows`` on every paired resample, a block of resamples at a time: the indices are drawn row after row, as
    :func:`bootstrap` draws them one resample at a time."""
    n = len(arrays[0])
    block = max(1, _BLOCK // (n * len(arrays)))
    out = np.empty(n_boot)
    for start in range(0, n_boot, block):
        idx = rng.integers(0, n, (min(block, n_boot - start), n))
        out[start : start + len(idx)] = rows(*(a[idx] for a in arrays))
    return out


@rowwise(lambda m: np.median(m, axis=1))
def median(a: np.ndarray) -> float:
    """The median of a sample (a named statistic: :func:`bootstrap` evaluates it on all resamples at once)."""
    return float(np.median(a))


def share(mask: Any) -> Estimate:
    """The share of true entries of a 0/1 sample with its 95% Wilson score interval (never of zero width):
    :func:`share_of` its count."""
    m = np.asarray(mask, dtype=bool)
    return share_of(int(m.sum()), int(m.size))


def share_of(count: int, n: int) -> Estimate:
    """``count`` of ``n`` as a share with its 95% Wilson score interval, which never has zero width (0 of n has the
    interval [0, about 3.8/n]); the estimate keeps the count, so that shares over seeds pool as counts
    (:func:`pooled_share`). NaN for n = 0.

    Args:
        count: how many of the inputs count (0 <= count <= n).
        n: how many inputs there are.

    Returns:
        :class:`Estimate` with ``value`` count/n, its Wilson interval, ``n`` and ``count``.
    """
    if not 0 <= count <= n:
        raise ValueError(f"a share needs 0 <= count <= n; got {count} of {n}")
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, 0)
    p = count / n
    z2 = Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    lo = 0.0 if p == 0.0 else max(0.0, centre - half)
    hi = 1.0 if p == 1.0 else min(1.0, centre + half)
    return Estimate(p, lo, hi, n, count)


def pooled_share(counts: Sequence[int], ns: Sequence[int]) -> Estimate:
    """A share over several seeds pooled as counts: the seeds' counts and sizes added, with the Wilson interval of the
    sum (:func:`share_of`). Three seeds of 0 of 1,000 give 0 of 3,000, [0, 0.0013]: decided, where a t-interval over
    the three zeros would have no width at all.

    Args:
        counts: each seed's count, shape (seeds,).
        ns: each seed's number of inputs, shape (seeds,).

    Returns:
        :class:`Estimate` of the pooled share.
    """
    if len(counts) != len(ns):
        raise ValueError(f"one count per size; got {len(counts)} counts and {len(ns)} sizes")
    return share_of(int(sum(counts)), int(sum(ns)))


def pooled_shares(frame: Any, by: Sequence[str], columns: Sequence[str], n: str) -> Any:
    """Shares measured per seed (one row per seed and group), pooled over the seeds as counts per group
    (:func:`pooled_share`): each seed's count is its share times its ``n`` inputs, rounded.

    Args:
        frame: a DataFrame with the ``by`` columns, ``seed``, the share ``columns`` (in [0, 1]) and ``n``.
        by: the columns that name a group (radius and scale, say).
        columns: the shares to pool.
        n: the column of each row's number of inputs.

    Returns:
        One row per group: the ``by`` columns, ``seeds``, and per share column its pooled value and ``<column>
        lo``/``<column> hi``, the 95% Wilson interval of the pooled count.
    """
    import pandas as pd

    rows = []
    for key, part in frame.groupby(list(by), sort=True):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)) | {"seeds": part["seed"].nunique()}
        for col in columns:
            counts = [round(float(v) * int(k)) for v, k in zip(part[col], part[n], strict=True)]
            e = pooled_share(counts, [int(k) for k in part[n]])
            row |= {col: e.value, f"{col} lo": e.lo, f"{col} hi": e.hi}
        rows.append(row)
    return pd.DataFrame(rows)


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """95% t-interval of the mean of a few values (NaN with fewer than two)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return math.nan, math.nan
    from scipy.stats import t

    half = float(t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return float(v.mean() - half), float(v.mean() + half)


def is_ratio(name: str) -> bool:
    """Whether a measure is a ratio of two positive quantities (peak/start, final/peak, max/min, "ratio of ..."),
    by its name: such a measure is pooled over seeds on the log scale (:func:`pooled_mean`)."""
    return "/" in name or "ratio" in name.lower()


class Pooled(NamedTuple):
    """A measure pooled over seeds (:func:`pooled_mean`): the mean, its 95% t-interval (low, high; NaN for fewer
    than two values) and whether the mean is geometric (a ratio pooled on the log scale)."""

    mean: float
    low: float
    high: float
    geometric: bool


def pooled_mean(values: Sequence[float], ratio: bool = False) -> Pooled:
    """The mean of a measure over a few seeds with its 95% t-interval.

    For a ratio of positive quantities (``ratio``, every value above 0) the geometric mean, with the t-interval
    taken on the logarithms and mapped back, so that it stays positive and a factor of 10 weighs the same up or
    down; otherwise (not a ratio, or a value at or below 0) the arithmetic mean and :func:`t_interval`.

    Args:
        values: the measure of each seed, shape (n,).
        ratio: whether the measure is a ratio (:func:`is_ratio`).

    Returns:
        :class:`Pooled` (mean, low, high, geometric): ``geometric`` says which of the two means was taken.
    """
    v = np.asarray(values, dtype=float)
    if ratio and len(v) and bool(np.all(v > 0)):
        lo, hi = t_interval(np.log(v).tolist())
        return Pooled(float(np.exp(np.log(v).mean())), math.exp(lo), math.exp(hi), True)
    lo, hi = t_interval(v.tolist())
    return Pooled(float(v.mean()), lo, hi, False)


def rule_of_three(count: int, n: int) -> str:
    """A count of violations with the 95% upper bound on their rate (3/n when none was seen)."""
    if n == 0:
        return "0 of 0"
    if count == 0:
        return f"0 of {n} (rate below {3 / n:.2g} at 95%)"
    return f"{count} of {n}"
