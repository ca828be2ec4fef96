"""Every claim check driven to every verdict it can return, on constructed data."""

import math
import warnings

import numpy as np
import pytest
import torch

from flatrob.attacks import STAT_NAMES, Trajectory
from flatrob.evidence import checks
from flatrob.valley import valley_samples

RNG = np.random.default_rng(0)
S = {"source": "live"}


def around(center, spread, n=200):
    """n positive values whose median is about ``center``, spread multiplicatively by ``spread``."""
    return center * np.exp(RNG.normal(0, spread, n))


def valley(n=200, rise=5.0, offset=1.0, drop=0.01, wrong=1.0, conf=0.99, norm=1.2, flip=10.0, steps=40, flips=None):
    """A valley_samples-like dict of ``n`` inputs that all start correct; ``flips`` of them flip (default all)."""
    flips = n if flips is None else flips
    flip_step = np.full(flips, flip)
    peak_step = flip_step + offset
    time_to_flip = np.r_[flip_step + RNG.integers(-1, 2, flips), np.full(n - flips, steps + 1.0)]
    flipped = np.r_[np.ones(flips, bool), np.zeros(n - flips, bool)]
    return {
        "steps": steps,
        "n_samples": n,
        "n_start_correct": n,
        "n_flipped": flips,
        "peak_over_start": around(rise, 0.3, flips),
        "final_over_peak": around(drop, 0.3, flips),
        "final_wrong": (RNG.random(flips) < wrong).astype(float),
        "final_confidence": np.clip(RNG.normal(conf, 0.01, flips), 0, 1),
        "feature_norm_max_over_min": around(norm, 0.02, flips),
        "decades_phi_sq": np.full(flips, 0.1),
        "decades_one_minus_p2": np.full(flips, 3.0),
        "flip_step": flip_step,
        "peak_step": peak_step,
        "start_correct": np.ones(n, dtype=bool),
        "flipped": flipped,
        "time_to_flip": time_to_flip,
        "peak_step_all": np.r_[peak_step, np.full(n - flips, np.nan)],
    }


def verdicts(found):
    return [c.verdict for c in found]


def test_valley_shape_every_verdict():
    assert verdicts(checks.check_valley_shape(valley(), S)) == ["reproduced"] * 3
    assert verdicts(checks.check_valley_shape(valley(rise=1.0, drop=0.9), S)) == [
        "not reproduced",
        "not testable here",
        "not reproduced",
    ]  # no rise: the peak is not judged
    assert verdicts(checks.check_valley_shape(valley(rise=5.0, offset=20.0, drop=0.9), S))[1] == "not reproduced"
    partial = checks.check_valley_shape(valley(rise=2.0, drop=0.1), S)
    assert partial[0].verdict == "partly" and partial[2].verdict == "partly"
    assert checks.check_valley_shape(valley(conf=0.8), S)[2].verdict == "partly"  # collapsed, wrong, not confident
    assert checks.check_valley_shape(valley(drop=0.3), S)[2].verdict == "partly"  # falls, less than tenfold
    # the attacks end near the boundary: the paper's regime is not reached, whatever the fall
    for drop in (0.01, 0.9):
        near = checks.check_valley_shape(valley(conf=0.5, drop=drop), S)[2]
        assert near.verdict == "not reached in this regime" and "not reached" in near.evidence
    assert checks.check_valley_shape(valley(wrong=0.1), S)[2].verdict == "not reached in this regime"
    assert verdicts(checks.check_valley_shape(valley(n=5), S)) == ["not testable here"] * 3
    assert checks.MIN_POINTS >= 30


def test_peak_tolerance_grows_with_the_flip_step():
    early = valley(flip=4.0, offset=2.0)  # 2 steps after a flip at step 4: more than max(1, 0.25 * 4)
    late = valley(flip=40.0, offset=2.0, steps=80)  # 2 steps after a flip at step 40: within 10
    assert checks.check_valley_shape(early, S)[1].verdict == "not reproduced"
    assert checks.check_valley_shape(late, S)[1].verdict == "reproduced"


def test_a_row_whose_attack_flips_too_few_inputs_refutes_nothing():
    # 50 of 900 correct inputs flip, rising by 1.03 (the adversarially trained model at 8/255): outside the regime
    few = valley(n=900, flips=50, rise=1.03, drop=0.9, conf=0.52)
    found = [*checks.check_valley_shape(few, S), checks.check_feature_norm(few, S)]
    assert [c.verdict for c in found] == ["not reached in this regime"] * 4
    assert all("50 of 900" in c.evidence for c in found)
    shown = float(found[0].evidence.split("median peak/start ")[1].split(" ")[0])  # what was measured stays visible
    assert shown == pytest.approx(float(np.median(few["peak_over_start"])), rel=0.01)
    # the threshold: a flip share refuted as a majority (its whole interval below a quarter)
    assert checks.REACHES.refutation == 0.25
    # from a quarter to a half the row is judged, and a refutation there stays one
    assert checks.check_valley_shape(valley(n=200, flips=80, rise=0.8, drop=0.9), S)[0].verdict == "not reproduced"


def test_shift_counts_censored_inputs_by_the_restricted_mean():
    clean = valley(flips=100)  # half the inputs never flip within 40 steps
    adv = valley(flips=10)  # most never flip: the medians of both would be the cap
    shift = checks.check_adversarial_training_shift(clean, adv, S)
    assert shift.values["never_flipped"] == {"clean": 100, "adversarial": 190}
    assert shift.values["flip_later"]["value"] > 10 and shift.measure["ci95"][0] > 0
    assert checks.check_adversarial_training_shift(adv, clean, S).verdict == "not reproduced"
    same = checks.check_adversarial_training_shift(clean, clean, S)
    assert same.verdict in ("partly", "not reproduced")
    few = valley()
    few["start_correct"][:190] = False  # 10 inputs start correct under both models
    assert checks.check_adversarial_training_shift(clean, few, S).verdict == "not testable here"
    assert "restricted mean" in shift.evidence and "never flipped" in shift.evidence


def test_feature_norm_reads_the_papers_way():
    moves = valley(norm=1.5)
    moves["decades_one_minus_p2"] = np.full(200, 0.2)  # 1 - ||p||^2 does not dominate ||phi||^2 (0.1 decades)
    assert checks.check_feature_norm(moves, S).verdict == "reproduced"  # ||phi|| moves
    # ||phi|| moves, but 1 - ||p||^2 spans 30 times its decades: the claim's own test favours the reviewer
    dominated = checks.check_feature_norm(valley(norm=1.5), S)
    assert dominated.verdict == "partly" and "reviewer's reading" in dominated.evidence
    assert checks.check_feature_norm(valley(norm=1.02), S).verdict == "not reproduced"  # the reviewer's reading
    assert checks.check_feature_norm(valley(norm=1.1), S).verdict == "partly"
    assert checks.check_feature_norm(valley(n=2), S).verdict == "not testable here"


def test_valley_samples_from_a_trajectory():
    t, n = 6, 12
    kappa = torch.tensor([0.1, 1, 10, 1, 1e-3, 1e-4], dtype=torch.float64)[:, None].repeat(1, n)
    stats = {name: torch.ones(t, n, dtype=torch.float64) for name in STAT_NAMES}
    stats |= {"kappa_layer": kappa, "trace": kappa / 10, "feature_norm": torch.full((t, n), 2.0, dtype=torch.float64)}
    pred = torch.tensor([0, 0, 1, 1, 1, 1])[:, None].repeat(1, n)
    pred[:, -2:] = 0  # two never flip
    s = valley_samples(
        Trajectory(torch.zeros(n, dtype=torch.long), torch.zeros(t, n, 3), pred, stats, torch.zeros(n, 1))
    )
    assert s["n_flipped"] == 10 and s["steps"] == 5
    assert np.all(s["peak_over_start"] == 100) and np.all(s["flip_step"] == 2) and np.all(s["peak_step"] == 2)
    assert list(s["time_to_flip"][-3:]) == [2, 6, 6]  # never flipped: after the last step
    assert s["flipped"].tolist() == [True] * 10 + [False] * 2 and np.isnan(s["peak_step_all"][-1])


def test_scaling_every_verdict():
    falling = torch.tensor([[3.0] * 100, [2.0] * 100, [1.0] * 100])
    assert checks.check_scaling(falling, [1, 2, 3], S).verdict == "reproduced"
    bump = falling.clone()
    bump[1, :20] = 5.0
    assert checks.check_scaling(bump, [1, 2, 3], S).verdict == "partly"
    assert checks.check_scaling(falling.flip(0), [1, 2, 3], S).verdict == "not reproduced"
    with pytest.raises(ValueError, match="ascending"):
        checks.check_scaling(falling, [3, 2, 1], S)


def test_scaling_median_every_verdict():
    base = torch.tensor(around(1.0, 0.5, 300))
    assert checks.check_scaling_median(torch.stack([base, base / 10, base / 100]), [1, 2, 3], S).verdict == "reproduced"
    rises = checks.check_scaling_median(torch.stack([base, base * 10, base]), [1, 2, 3], S)
    assert rises.verdict == "not reproduced" and "it rises from s = 1 to 2" in rises.evidence
    noisy = torch.stack([base, base * torch.tensor(around(1.0, 0.5, 300)), base / 100])
    assert checks.check_scaling_median(noisy, [1, 2, 3], S).verdict == "partly"


def test_loss_growth_every_verdict():
    base = torch.tensor(around(1.0, 0.5, 300))
    shrinking = torch.stack([base, base / 10, base / 1000]).log()
    everyone = torch.ones(300, dtype=torch.bool)
    assert checks.check_paired_loss_growth(shrinking, everyone, [1, 2, 3], S).verdict == "reproduced"
    assert checks.check_paired_loss_growth(shrinking.flip(0), everyone, [1, 2, 3], S).verdict == "not reproduced"
    tail = torch.tensor(np.r_[around(1.0, 0.1, 250), around(100.0, 0.1, 50)])
    # only the tail decides: the median falls, the tail grows
    median_falls_tail_grows = torch.stack([base, base, torch.where(tail > 10, tail * 10, tail / 100)]).log()
    grows = checks.check_paired_loss_growth(median_falls_tail_grows, everyone, [1, 2, 3], S)
    assert grows.verdict == "not reproduced" and grows.values["median_log10_change"]["value"] < 0
    masked = everyone.clone()
    masked[5:] = False  # only 5 inputs are compared at every scale
    found = checks.check_paired_loss_growth(shrinking, masked, [1, 2, 3], S)
    assert found.verdict == "not testable here" and "5 of 300 inputs are compared" in found.evidence


def test_loss_growth_is_paired_and_cannot_underflow():
    rng = np.random.default_rng(3)
    log_first = torch.tensor(rng.normal(-2.0, 1.0, 400))
    # at the largest s every increase is about e^-900: float64 holds none of them, their logarithms fall by 898
    log_last = log_first - 898.0 + torch.tensor(rng.normal(0.0, 0.5, 400))
    found = checks.check_paired_loss_growth(
        torch.stack([log_first, log_last]), torch.ones(400, dtype=torch.bool), [1, 50], S
    )
    change = found.values[found.measure["name"]]  # in decades: a number, not 0 [0, 0]
    assert found.verdict == "reproduced" and -391 < change["ci95"][0] < change["ci95"][1] < -389
    # the same inputs at both ends: the least confident inputs alone at the largest s no longer pass for the whole
    # sample (the old, unpaired comparison); one input's own increase is compared with itself
    grows = log_first.clone()
    grows[:40] += 5.0 + torch.tensor(
        rng.normal(0.0, 0.5, 40)
    )  # a tenth of the inputs gains e^5 at the largest s, the rest falls
    mixed = torch.where(torch.arange(400) < 40, grows, log_first - 3.0)
    keep = torch.arange(400) < 40
    paired = checks.check_paired_loss_growth(torch.stack([log_first, mixed]), keep, [1, 50], S)
    assert paired.verdict == "not reproduced" and paired.values["paired"] == 40
    # no rise at all for more than a tenth of the inputs at the largest s: the tail is not a positive number
    none = log_first.clone()
    none[:100] = -math.inf
    none[100:] = -math.inf
    with warnings.catch_warnings():  # no interval to take, and no warning printed on the reader's page
        warnings.simplefilter("error")
        silent = checks.check_paired_loss_growth(
            torch.stack([log_first, none]), torch.ones(400, dtype=torch.bool), [1, 50], S
        )
    assert silent.verdict == "not testable here"


def test_loss_growth_of_a_run_recorded_before_the_logarithms():
    base = torch.tensor(around(1.0, 0.5, 300))
    shrinking = torch.stack([base, base / 10, base / 1000])
    movable = torch.ones(3, 300, dtype=torch.bool)
    movable[-1, 200:] = False  # the least confident 200 can be moved at the largest s: the same 200 at every s
    found = checks.check_loss_growth(shrinking, movable, [1, 2, 3], S)
    assert found.verdict == "reproduced" and found.values["paired"] == 200
    assert "recorded before the logarithms" in found.evidence


def masking_data(pgd_last=0.93, kept_last=0.0, scaled_transfer_changes=False, n=300):
    rng = np.random.default_rng(1)

    def rows(*ps):
        return np.stack([(rng.random(n) < p).astype(float) for p in ps])

    clean = np.stack([np.ones(n)] * 3)
    transfer = rows(0.0, 0.0, 0.0)
    if scaled_transfer_changes:
        transfer[1, :10] = 1
    square = np.stack([rows(0.1)[0]] * 2)
    return {
        "clean": clean,
        "pgd": rows(0.0, 0.5, pgd_last),
        "transfer": transfer,
        "transfer, bias kept": rows(0.0, 0.0, kept_last),
        "square": square,
    }


def test_gradient_masking_every_verdict():
    s = [1.0, 10.0, 100.0]
    found = {c.part: c.verdict for c in checks.check_gradient_masking(s, masking_data(), S)}
    assert found == {
        "masking": "reproduced",
        "transfer-bias-kept": "reproduced",
        "transfer-bias-scaled": "holds by construction",
        "square": "holds by construction",
    }
    found = {c.part: c.verdict for c in checks.check_gradient_masking(s, masking_data(0.05, 0.5, True), S)}
    assert found["masking"] == "not reproduced" and found["transfer-bias-kept"] == "not reproduced"
    assert found["transfer-bias-scaled"] == "not reproduced"  # a scaled model that changed its mind is a bug
    found = {c.part: c.verdict for c in checks.check_gradient_masking(s, masking_data(0.25, 0.05), S)}
    assert found["masking"] == "partly" and found["transfer-bias-kept"] == "partly"
    no_square = {k: v for k, v in masking_data().items() if k != "square"}
    assert len(checks.check_gradient_masking(s, no_square, S)) == 3


def test_basin_uses_restricted_means_and_says_when_the_cap_limits_it():
    c = torch.tensor(np.minimum(np.round(around(10, 0.3)), 51))
    assert checks.check_basin(c, c * 3, 100, S).verdict == "reproduced"
    assert checks.check_basin(c, c * 1.3, 100, S).verdict == "partly"
    assert checks.check_basin(c, c * 0.7, 100, S).verdict == "not reproduced"
    late = torch.full((200,), 38.0)
    capped = checks.check_basin(late, torch.full((200,), 51.0), 50, S)  # everything the AT model does is censored
    assert capped.verdict == "cannot decide here" and capped.values["never_rose"]["adversarial"] == 200
    assert capped.values["limits"]["largest measurable ratio"] < 2 and capped.values["limits"]["cap"] == 51
    assert "cannot show a factor of 2" in capped.evidence and capped.values["largest_measurable_ratio"] < 2
    t = torch.tensor(around(0.6, 0.5))
    assert checks.check_clean_trace(t, t * 1.7, S).verdict == "reproduced"
    assert checks.check_clean_trace(t, t / 1.7, S).verdict == "not reproduced"
    assert checks.check_clean_trace(t, torch.tensor(around(0.6, 0.5)), S).verdict == "partly"


def test_confidently_wrong_flat_is_shown_as_holding_by_construction():
    n = 200
    kappa = {
        "clean": torch.ones(n),
        "boundary": torch.tensor(around(1.0, 0.3, n)),
        "adversarial": torch.tensor(around(1e-3, 0.3, n)),
    }
    conf = {k: torch.full((n,), 0.999) for k in kappa}
    wrong = {k: torch.ones(n, dtype=torch.bool) for k in kappa}
    phi = {k: torch.ones(n) for k in kappa}
    held = checks.check_confidently_wrong_flat(kappa, conf, wrong, phi, S)
    assert held.verdict == "holds by construction" and "close to true by construction" in held.evidence
    sharp = kappa | {"adversarial": torch.tensor(around(1.0, 0.3, n))}  # only a grown feature norm can do this
    assert checks.check_confidently_wrong_flat(sharp, conf, wrong, phi, S).verdict == "not reproduced"
    unsure = {k: torch.full((n,), 0.6) for k in kappa}
    assert checks.check_confidently_wrong_flat(kappa, unsure, wrong, phi, S).verdict == "not testable here"
    assert checks.check_confidence_band(0, 10, S).verdict == "holds by construction"
    assert checks.check_confidence_band(1, 10, S).verdict == "not reproduced"


def test_detector_must_beat_the_confidence_stump():
    good = (RNG.random(600) < 0.97).astype(float)
    coin = (RNG.random(600) < 0.5).astype(float)
    assert verdicts(checks.check_detector(good, coin, S)) == ["reproduced", "reproduced"]
    # accurate, but no better than confidence: the accuracy is reproduced and not flagged, the baseline part is not
    accurate, tie = checks.check_detector(good, good, S)
    assert (accurate.verdict, accurate.fragile, tie.verdict) == ("reproduced", False, "partly")
    assert tie.part == "beats-confidence" and tie.id != accurate.id
    assert verdicts(checks.check_detector((RNG.random(600) < 0.85).astype(float), coin, S))[0] == "partly"
    assert verdicts(checks.check_detector(coin, good, S)) == ["not reproduced", "not reproduced"]
    inconclusive = (RNG.random(40) < 0.9).astype(float)  # 0.9 [0.77, 0.96]-ish: neither side
    assert checks.check_detector(inconclusive, np.zeros(40), S)[0].verdict == "partly"
    assert verdicts(checks.check_detector(np.array([]), np.array([]), S)) == ["not testable here"]


def test_not_global_every_verdict():
    n = 200
    wrong, conf = np.ones(n), np.full(n, 0.99)
    assert checks.check_not_global(wrong, conf, around(0.01, 0.3, n), S).verdict == "reproduced"
    assert checks.check_not_global(np.zeros(n), conf, around(0.9, 0.3, n), S).verdict == "not reproduced"
    assert checks.check_not_global(wrong, conf, around(0.3, 0.3, n), S).verdict == "partly"
    assert checks.check_not_global(wrong, conf, around(0.9, 0.3, n), S).verdict == "not reproduced"
    assert checks.check_not_global(wrong[:3], conf[:3], np.ones(3), S).verdict == "not testable here"


def test_theory_checks_every_verdict():
    assert verdicts(checks.check_closed_form(1e-15, 1e-15, S)) == ["reproduced"] * 2
    assert verdicts(checks.check_closed_form(1e-3, 1e-3, S)) == ["not reproduced"] * 2
    assert checks.check_loss_change_flip(0, 100, 0, 50, -0.05, 0.2, S).verdict == "reproduced"
    assert checks.check_loss_change_flip(1, 100, 0, 50, -0.05, 0.2, S).verdict == "not reproduced"
    assert checks.check_loss_change_flip(0, 100, 0, 50, 0.05, 0.2, S).verdict == "not reproduced"
    L = {"upper": 100.0, "local": 20.0}
    assert checks.check_bridging(1e-15, 0, 10, L, 1.0, S).verdict == "holds by construction"
    assert checks.check_bridging(1e-15, 1, 10, L, 1.0, S).verdict == "not reproduced"
    ok = {"ours, eps observed": 0, "ours, L proven": 0, "digest, L proven": 0, "digest, L local": 3}
    assert checks.check_local_bound(ok, 500, 0, 6000, S).verdict == "reproduced"
    assert checks.check_local_bound(ok | {"digest, L proven": 2}, 500, 0, 6000, S).verdict == "partly"
    assert checks.check_local_bound(ok | {"ours, L proven": 1}, 500, 0, 6000, S).verdict == "not reproduced"
    assert "rate below 0.0005 at 95%" in checks.check_local_bound(ok, 500, 0, 6000, S).evidence
