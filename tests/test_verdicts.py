"""The verdict machinery: intervals, every rule driven to every verdict (the inconclusive case included), fragility,
combining parts and seeds, checks as data."""

import json
import math

import numpy as np
import pytest

from flatrob.evidence import checks
from flatrob.evidence.verdicts import (
    Check,
    Estimate,
    Rule,
    bootstrap,
    check_id,
    combine,
    is_ratio,
    majority,
    median,
    over_seeds_verdict,
    pooled_mean,
    share,
    t_interval,
)

RNG = np.random.default_rng(0)


def test_bootstrap_interval_covers_and_is_reproducible():
    x = RNG.normal(3.0, 1.0, 400)
    est = bootstrap(np.median, x)
    assert est.lo < 3.0 < est.hi and est.lo < est.value < est.hi and est.n == 400
    assert bootstrap(np.median, x) == est  # seeded
    assert bootstrap(median, x) == est  # all resamples at once: the same interval
    assert math.isnan(bootstrap(np.median, np.array([])).value)
    with pytest.raises(ValueError, match="equal lengths"):
        bootstrap(lambda a, b: 0.0, np.ones(3), np.ones(4))
    # coverage: the true median of N(0, 1) lies in about 95% of the intervals
    hits = 0
    for s in range(60):
        e = bootstrap(np.median, np.random.default_rng(s).normal(0, 1, 100), n_boot=400)
        hits += e.lo <= 0 <= e.hi
    assert hits >= 51


def test_every_rowwise_statistic_gives_the_interval_of_one_resample_at_a_time(monkeypatch):
    """A statistic's row-wise form (all resamples at once) must give the same interval, to the last bit, as the
    statistic evaluated on one resample at a time: on skewed samples with zeros and infinities, and in blocks smaller
    than the number of resamples (the random stream is drawn row after row either way)."""
    from dataclasses import astuple

    from flatrob.evidence import estimates
    from flatrob.evidence.checks import rules
    from flatrob.evidence.checks.scale import log10_quantile_change
    from flatrob.evidence.ladder import _half_flip_step

    rng = np.random.default_rng(3)
    a, b = rng.lognormal(0, 2, 301), rng.lognormal(1, 2, 301)
    a[:40] = 0.0  # ratios over a zero mean or median: infinite
    logs = np.log(np.where(rng.random(301) < 0.2, 0.0, b))  # log-increases of 0: -inf
    steps = rng.integers(1, 12, 301).astype(float)
    cases = [
        (median, (a,)),
        (rules.mean, (a,)),
        (rules.mean_difference, (a, b)),
        (rules.mean_ratio, (a, b)),
        (rules.median_ratio, (a, b)),
        (rules.median_ratio, (b[:50] * 0, b[:50])),  # every resample infinite
        (_half_flip_step, (steps,)),
        (log10_quantile_change(0.9), (np.log(a), logs)),  # claim 8's statistic, with -inf on both sides
        (log10_quantile_change(0.5), (np.log(a), logs)),
    ]
    for block in (estimates._BLOCK, 301 * 2 * 7):  # one block, and blocks of 7 resamples
        monkeypatch.setattr(estimates, "_BLOCK", block)
        for stat, samples in cases:
            assert stat in estimates._ROWWISE
            one_at_a_time = bootstrap(lambda *x, stat=stat: stat(*x), *samples, n_boot=500)  # not registered
            est = bootstrap(stat, *samples, n_boot=500)
            pairs = zip(astuple(est), astuple(one_at_a_time), strict=True)
            same = [x == y or (math.isnan(x) and math.isnan(y)) for x, y in pairs]
            assert all(same), (stat.__name__, est, one_at_a_time)


def test_share_has_a_wilson_interval_that_never_has_zero_width():
    all_true = share(np.ones(300, dtype=bool))
    assert all_true.value == 1.0 and all_true.hi == 1.0 and 0.98 < all_true.lo < 0.99 and all_true.resolved
    none = share(np.zeros(50, dtype=bool))
    assert none.lo == 0.0 and 0.05 < none.hi < 0.1
    half = share(np.r_[np.ones(100), np.zeros(100)].astype(bool))
    assert half.lo < 0.5 < half.hi and half.hi - half.lo == pytest.approx(2 * 1.96 * math.sqrt(0.25 / 200), rel=0.02)
    assert math.isnan(share(np.array([], dtype=bool)).value)


E = {
    "above": Estimate(3.0, 2.5, 3.5, 100),
    "inside": Estimate(2.0, 1.5, 2.5, 100),
    "below": Estimate(1.0, 0.5, 1.5, 100),
    "unresolved": Estimate(3.0, 3.0, 3.0, 100),
    "empty": Estimate(math.nan, math.nan, math.nan, 0),
}


@pytest.mark.parametrize(
    "rule",
    [
        checks.RISES,
        checks.COLLAPSES,
        checks.MOSTLY,
        checks.CONFIDENT_AT_END,
        checks.LATER,
        checks.LARGER,
        checks.WIDENS,
        checks.MONOTONE,
        checks.FALLS,
        checks.MASKS,
        checks.STILL_FOOLS,
        checks.NORM_MOVES,
        checks.DETECTS,
        checks.BEATS_CONFIDENCE,
    ],
)
def test_every_rule_reaches_every_verdict_and_inconclusive_is_partly(rule):
    t, r = rule.threshold, rule.refutation
    width = max(0.2 * abs(t), 0.05, 0.2 * abs(t - r))
    claim_side = 1 if rule.side == "above" else -1
    beyond = t + claim_side * width
    against = r - claim_side * width
    assert rule.judge(Estimate(beyond, beyond - width / 4, beyond + width / 4, 50)) == "reproduced"
    assert rule.judge(Estimate(against, against - width / 4, against + width / 4, 50)) == "not reproduced"
    assert rule.judge(Estimate(t, t - width, t + width, 50)) == "partly"  # the interval holds the threshold
    wide = Estimate(t, min(t, r) - 10 * width, max(t, r) + 10 * width, 50)
    assert rule.judge(wide) == "partly"  # inconclusive data are never a negative verdict
    # the middle band: strictly between the two thresholds the data are "partly", never a negative verdict
    middle = (t + r) / 2
    assert rule.judge(Estimate(middle, middle - abs(t - r) / 8, middle + abs(t - r) / 8, 50)) == "partly"
    # zero width (all resamples alike): unresolved, so never decisive and always fragile, in one run as over seeds
    assert rule.judge(Estimate(beyond, beyond, beyond, 50)) == "partly" and rule.fragile(
        Estimate(beyond, beyond, beyond, 50)
    )
    assert rule.judge(E["empty"]) == "not testable here"


def test_strict_rules_put_the_threshold_on_the_other_side():
    later = Rule("above", 0.0, strict=True, refute=-1.0, margin=1.0)
    assert later.judge(Estimate(0.5, 0.0, 1.0, 9)) == "partly"  # touching 0 is not "later"
    assert later.judge(Estimate(-1.5, -2.0, -1.0, 9)) == "not reproduced"  # at most -1: earlier by a step
    assert later.judge(Estimate(-0.5, -0.9, -0.1, 9)) == "partly"  # earlier by less than a step: the middle band
    assert Rule("above", 2.0, refute=1.0).judge(Estimate(2.5, 2.0, 3.0, 9)) == "reproduced"  # "at least 2" includes 2


def test_the_refutation_threshold_separates_partial_from_negative():
    widens = Rule("above", 2.0, refute=1.0)
    assert widens.judge(Estimate(1.4, 1.2, 1.6, 9)) == "partly"  # wider, but not by the factor
    assert widens.judge(Estimate(5.0, 0.9, 20.0, 9)) == "partly"  # inconclusive
    assert widens.judge(Estimate(0.8, 0.7, 0.9, 9)) == "not reproduced"
    detects = Rule("above", 0.9, refute=0.75)
    assert detects.judge(Estimate(0.92, 0.74, 1.0, 9)) == "partly"
    with pytest.raises(ValueError, match="other side"):
        Rule("above", 1.0, refute=2.0)
    with pytest.raises(ValueError, match="middle band"):  # every rule has a middle band
        Rule("above", 2.0)
    with pytest.raises(ValueError, match="middle band"):
        Rule("below", 0.1, refute=0.1)
    with pytest.raises(ValueError, match="explicit margin"):
        Rule("above", 0.0, refute=-1.0)


def test_fragile_means_an_interval_end_near_a_threshold():
    rule = Rule("above", 2.0, refute=1.0, margin=0.1)
    assert rule.fragile(Estimate(2.5, 2.05, 3.0, 9))  # reproduced, but its lower end is 0.05 from 2
    assert not rule.fragile(Estimate(3.0, 2.5, 3.5, 9))
    assert rule.fragile(Estimate(0.9, 0.8, 0.95, 9))  # not reproduced, its upper end 0.05 from 1
    assert not rule.fragile(Estimate(1.5, 1.3, 1.7, 9))  # partly, far from both thresholds
    assert not rule.fragile(E["empty"])
    assert "at least 2" in rule.describe() and "not reproduced below 1" in rule.describe()
    assert Rule.from_dict(rule.as_dict()) == rule


def test_combine_one_rule_for_every_claim():
    # a refuted required part refutes the claim; all parts reproduced reproduce it; anything else is partly
    assert combine(["reproduced", "reproduced"]) == "reproduced"
    assert combine(["reproduced", "not reproduced"]) == "not reproduced"
    assert combine(["partly", "not reproduced"]) == "not reproduced"
    assert combine(["reproduced", "partly"]) == "partly"
    assert combine(["reproduced", "not testable here"]) == "partly"  # a part that could not be made is inconclusive
    assert combine(["reproduced", "not reached in this regime"]) == "partly"
    assert combine(["not reproduced", "not testable here"]) == "not reproduced"
    # construction is shown, never counted
    assert combine(["reproduced", "holds by construction"]) == "reproduced"
    assert combine(["holds by construction"]) == "holds by construction"
    # no evidence at all: the strongest reason, never hidden behind "holds by construction"
    assert combine(["not testable here", "holds by construction"]) == "not testable here"
    assert combine(["not testable here"]) == "not testable here"
    assert combine(["not testable here", "not reached in this regime"]) == "not reached in this regime"
    assert combine(["cannot decide here", "not testable here"]) == "cannot decide here"


def test_majority_over_seeds_is_never_stronger_than_the_seeds():
    assert majority(["reproduced", "reproduced", "partly"]) == "reproduced"
    assert majority(["partly", "partly", "reproduced"]) == "partly"  # 2 of 3 partly: not "reproduced"
    assert majority(["partly", "partly", "partly"]) == "partly"  # three "partly" never make "not reproduced"
    assert majority(["not reproduced", "not reproduced", "reproduced"]) == "not reproduced"
    assert majority(["reproduced", "not reproduced"]) == "partly"
    assert majority(["not testable here", "reproduced", "reproduced"]) == "reproduced"
    assert majority(["not testable here"] * 3) == "not testable here"
    # one seed that could test does not speak for three: at least half of all seeds must agree
    assert majority(["reproduced", "not testable here", "not testable here"]) == "partly"
    assert majority(["not reproduced", "not testable here", "not testable here"]) == "partly"


def test_over_seeds_needs_the_pooled_interval_on_the_same_side():
    rule = Rule("above", 0.25, refute=0.1)
    votes = ["partly", "reproduced", "reproduced"]
    # the 9-masking case: 2 of 3 seeds reproduced, the pooled interval straddles 0.25
    assert over_seeds_verdict(votes, {"value": 0.309, "ci95": [0.174, 0.444]}, rule) == ("partly", True)
    assert over_seeds_verdict(votes, {"value": 0.5, "ci95": [0.4, 0.6]}, rule) == ("reproduced", True)  # seeds differ
    assert over_seeds_verdict(["reproduced"] * 3, {"value": 0.5, "ci95": [0.4, 0.6]}, rule) == ("reproduced", False)
    refuted = over_seeds_verdict(["not reproduced"] * 3, {"value": 0.03, "ci95": [0.0, 0.05]}, rule)
    assert refuted == ("not reproduced", False)
    # identical values over seeds: an interval of zero width, unresolved, never decisive
    assert over_seeds_verdict(["reproduced"] * 3, {"value": 0.5, "ci95": [0.5, 0.5]}, rule) == ("partly", True)
    assert over_seeds_verdict(["not reached in this regime"] * 3) == ("not reached in this regime", False)


def test_t_interval():
    lo, hi = t_interval([1.0, 2.0, 3.0])
    assert lo < 2.0 < hi and hi - lo == pytest.approx(2 * 4.303 * 1 / math.sqrt(3), rel=1e-3)
    assert all(math.isnan(v) for v in t_interval([1.0]))


def test_a_ratio_is_pooled_on_the_log_scale_and_its_interval_stays_positive():
    # two seeds of final/peak, 0.01 and 0.3: the arithmetic t-interval (df = 1) reaches far below zero
    lo, hi = t_interval([0.01, 0.3])
    assert lo < 0
    mean, lo, hi, geometric = pooled_mean([0.01, 0.3], ratio=True)
    assert geometric and mean == pytest.approx(math.sqrt(0.01 * 0.3)) and 0 < lo < mean < hi
    logs = np.log([0.01, 0.3])
    half = 12.706 * logs.std(ddof=1) / math.sqrt(2)
    assert (lo, hi) == pytest.approx((math.exp(logs.mean() - half), math.exp(logs.mean() + half)), rel=1e-3)
    # a factor of 10 up weighs as much as a factor of 10 down
    assert pooled_mean([0.1, 10.0], ratio=True)[0] == pytest.approx(1.0)
    # not a ratio, or a value not above 0: the arithmetic mean and t-interval
    assert pooled_mean([1.0, 2.0, 3.0]) == pytest.approx((2.0, *t_interval([1.0, 2.0, 3.0]), False))
    arithmetic = pooled_mean([0.0, 2.0], ratio=True)
    assert arithmetic.mean == pytest.approx(1.0) and not arithmetic.geometric
    assert is_ratio("median final/peak") and is_ratio("ratio of median Tr H")
    assert not is_ratio("PGD robust accuracy gain")


def test_checks_are_data_with_ids_made_from_their_setting():
    c = Check(
        claim=6,
        part="rise",
        statement="s",
        verdict="reproduced",
        evidence="e",
        setting={"training": "clean", "norm": "linf", "eps": 8 / 255, "source": "live"},
    )
    assert c.id == "6-rise-clean-linf-eps=0.03137"
    assert Check.from_dict(c.as_dict()) == c
    assert check_id(9, "masking", {"norm": "linf", "eps": 0.1, "source": "sweep s"}) == "9-masking-linf-eps=0.1-sweep_s"
    # a sweep over more than seeds: two combinations, two names
    combos = [{"source": "study s", "varied": ["architecture", "epochs"], "architecture": a, "epochs": 8} for a in "ab"]
    assert [check_id(6, "rise", c) for c in combos] == [
        "6-rise-architecture=a-epochs=8-study_s",
        "6-rise-architecture=b-epochs=8-study_s",
    ]
    with pytest.raises(ValueError, match="verdict must be one of"):
        Check(claim=1, part="", statement="s", verdict="maybe", evidence="e")
    with pytest.raises(TypeError):
        Check(6, "rise", "s", "reproduced", "e")  # keyword arguments only


def test_shares_over_seeds_pool_as_counts_and_three_zeros_decide():
    from flatrob.evidence.checks import STILL_FOOLS
    from flatrob.evidence.seeds import over_seeds
    from flatrob.evidence.verdicts import judged, pooled_share, share_of

    def seed(count, n=1000):
        c = judged(9, "transfer", "s", share_of(count, n), STILL_FOOLS, name="share", evidence="", paper="", setting={})
        return [c.as_dict()]

    # each seed 0 of 1,000: a t-interval over three zeros has no width; as counts, 0 of 3,000 decides
    [entry] = over_seeds({0: seed(0), 1: seed(0), 2: seed(0)})
    assert entry["measure"]["pooled"] == "counts" and (entry["measure"]["count"], entry["measure"]["n"]) == (0, 3000)
    assert entry["measure"]["ci95"][0] == 0.0 and 0.001 < entry["measure"]["ci95"][1] < 0.0014
    assert entry["resolved"] and entry["verdict"] == "reproduced" and not entry["fragile"]
    # counts, not a mean of shares: 1 of 10 and 90 of 1,000 pool to 91 of 1,010
    assert pooled_share([1, 90], [10, 1000]).value == pytest.approx(91 / 1010)
    with pytest.raises(ValueError):
        share_of(3, 2)
    assert share_of(0, 1000).count == 0 and share_of(0, 1000).as_dict()["count"] == 0
    assert "count" not in Estimate(1.0, 0.5, 2.0, 10).as_dict()  # only shares carry a count


def test_combine_settings_leaves_out_a_row_outside_the_regime():
    from flatrob.evidence.verdicts import NOT_REACHED, combine_settings

    assert combine_settings(["reproduced", NOT_REACHED]) == "reproduced"
    assert combine_settings(["not reproduced", NOT_REACHED]) == "not reproduced"
    assert combine_settings([NOT_REACHED, NOT_REACHED]) == NOT_REACHED
    assert combine(["reproduced", NOT_REACHED]) == "partly"  # within one setting a part not reached still counts


def test_a_decisive_measure_of_zero_width_cannot_decide():
    # the loss-growth check: the median increase at the largest s is exactly 0 (a run recorded before the logarithms);
    # the tail decides
    import torch

    from flatrob.evidence import checks

    rng = np.random.default_rng(1)
    first = torch.tensor(rng.lognormal(0, 0.5, 300))
    last = torch.tensor(np.r_[np.zeros(200), rng.lognormal(0, 0.5, 100) * 10])  # median 0, the tail grows
    found = checks.check_loss_growth(
        torch.stack([first, first, last]), torch.ones(3, 300, dtype=torch.bool), [1, 2, 3], {}
    )
    assert found.measure["name"].startswith("log10 change of the 0.9 quantile") and found.verdict == "not reproduced"
    # the median's change is not a number (most increases did not rise: no logarithm): shown as such, never 0 [0, 0]
    assert not np.isfinite(found.values["median_log10_change"]["value"]) and "0 (no rise)" in found.evidence
    assert Rule("below", 1.0, refute=1.1).judge(Estimate(0.0, 0.0, 0.0, 300)) == "partly"  # never decisive


def test_every_verdict_word_is_defined_once_and_only_the_words_used_are_listed():
    from flatrob.evidence.verdicts import VERDICT_WORDS, VERDICTS, define

    assert set(VERDICTS) | {"fragile"} == set(VERDICT_WORDS)
    text = define(["not reproduced", "partly (fragile)", "not reached in this regime"])
    assert "**not reproduced**" in text and "**partly**" in text and "**fragile**" in text
    assert "**reproduced**" not in text and "**holds by construction**" not in text
    assert define(["reproduced"]).startswith("Verdict words: **reproduced**") and define([]) == ""


def test_shares_per_seed_pool_as_counts_per_group():
    import pandas as pd

    from flatrob.evidence.estimates import pooled_shares, share_of

    frame = pd.DataFrame(
        {
            "radius": [0.1, 0.1, 0.1, 0.2],
            "seed": [0, 1, 2, 0],
            "acc": [0.9, 0.85, 1.0, 0.0],
            "inputs": [100, 200, 50, 40],
        }
    )
    out = pooled_shares(frame, ["radius"], ["acc"], "inputs").set_index("radius")
    pooled = share_of(90 + 170 + 50, 350)  # by hand: the counts added
    assert out.loc[0.1, "seeds"] == 3 and out.loc[0.1, "acc"] == pytest.approx(310 / 350)
    assert (out.loc[0.1, "acc lo"], out.loc[0.1, "acc hi"]) == (pooled.lo, pooled.hi)
    assert out.loc[0.2, "acc"] == 0 and out.loc[0.2, "acc hi"] > 0  # 0 of 40: decided, an interval with width


def test_stored_values_are_read_by_type_and_refused_otherwise():
    """The evidence records' readers (flatrob.evidence.records) take what JSON holds and refuse anything else, so a
    malformed file fails where it is read, not as a wrong verdict later."""
    from flatrob.evidence import records as r

    assert r.number(3) == 3.0 and math.isnan(r.number(None)) and r.integer(4.0) == 4 and r.text("a") == "a"
    assert r.numbers([1, 2.5]) == [1.0, 2.5] and r.texts(["x"]) == ["x"] and r.flag(False) is False
    assert r.mapping({"a": 1}) == {"a": 1} and r.sequence([1]) == [1]
    for reader, bad in [(r.number, True), (r.number, "1"), (r.integer, 1.5), (r.text, 1), (r.flag, 0),
                        (r.mapping, [1]), (r.sequence, "ab"), (r.texts, ["a", 1]), (r.numbers, 1.0)]:  # fmt: skip
        with pytest.raises(TypeError):
            reader(bad)


def test_a_check_read_back_is_the_check_and_a_malformed_record_is_refused():
    from flatrob.evidence.verdicts import Check

    c = Check(claim=6, part="rise", statement="s", verdict="reproduced", evidence="e", setting={"eps": 0.03},
              values={"n": 3}, fragile=True)  # fmt: skip
    assert Check.from_dict(json.loads(json.dumps(c.as_dict()))) == c
    with pytest.raises(TypeError):
        Check.from_dict({**c.as_dict(), "claim": "six"})
    with pytest.raises(TypeError):
        Check.from_dict({**c.as_dict(), "fragile": "yes"})
