"""Every check driven to every verdict it can return, on constructed data; the bootstrap interval itself."""

import math

import numpy as np
import pytest
import torch

from flatrob import checks
from flatrob.attacks import STAT_NAMES, Trajectory, valley_samples

RNG = np.random.default_rng(0)


def around(center, spread, n=200):
    """n positive values whose median is about ``center``, spread multiplicatively by ``spread``."""
    return center * np.exp(RNG.normal(0, spread, n))


def valley(n=200, rise=5.0, offset=1.0, drop=0.01, wrong=1.0, conf=0.99, norm=1.05, flip=10.0, peak=None, steps=40,
           start_correct=None):
    """A valley_samples-like dict of ``n`` flipped inputs with the given medians."""
    peak_step = np.full(n, flip + offset) if peak is None else peak
    return {
        "steps": steps, "n_samples": n, "n_start_correct": n, "n_flipped": n,
        "peak_over_start": around(rise, 0.3, n), "abs_peak_minus_flip": np.abs(RNG.normal(offset, 0.5, n)),
        "final_over_peak": around(drop, 0.3, n), "final_wrong": (RNG.random(n) < wrong).astype(float),
        "final_confidence": np.clip(RNG.normal(conf, 0.01, n), 0, 1), "feature_norm_max_over_min": around(norm, 0.02, n),
        "decades_phi_sq": np.full(n, 0.1), "decades_one_minus_p2": np.full(n, 3.0),
        "flip_step": np.full(n, flip), "peak_step": peak_step,
        "start_correct": np.ones(n, dtype=bool) if start_correct is None else start_correct,
        "time_to_flip": np.full(n, flip) + RNG.integers(-1, 2, n),
    }


def verdicts(found):
    return [c.verdict for c in found]


def test_bootstrap_interval_covers_and_is_reproducible():
    x = RNG.normal(3.0, 1.0, 400)
    est = checks.bootstrap(np.median, x)
    assert est.lo < 3.0 < est.hi and est.lo < est.value < est.hi and est.n == 400
    assert checks.bootstrap(np.median, x) == est  # seeded
    assert checks.bootstrap(checks._median, x) == est  # all resamples at once: the same interval
    assert est.above(2.5) == "reproduced" and est.above(3.0) == "partly" and est.above(3.5) == "not reproduced"
    assert est.below(3.5) == "reproduced" and est.below(3.0) == "partly" and est.below(2.5) == "not reproduced"
    assert math.isnan(checks.bootstrap(np.median, np.array([])).value)
    with pytest.raises(ValueError, match="equal lengths"):
        checks.bootstrap(lambda a, b: 0.0, np.ones(3), np.ones(4))
    # coverage: the true median of N(0, 1) lies in about 95% of the intervals
    hits = sum(checks.bootstrap(np.median, np.random.default_rng(s).normal(0, 1, 100), n_boot=400).lo <= 0
               <= checks.bootstrap(np.median, np.random.default_rng(s).normal(0, 1, 100), n_boot=400).hi for s in range(60))
    assert hits >= 51


def test_valley_shape_every_verdict():
    assert verdicts(checks.check_valley_shape(valley(), "m")) == ["reproduced"] * 3
    assert verdicts(checks.check_valley_shape(valley(rise=1.0, offset=20, drop=0.9), "m")) == ["not reproduced"] * 3
    assert verdicts(checks.check_valley_shape(valley(rise=2.0, offset=4.0, drop=0.1), "m")) == ["partly"] * 3
    mixed = checks.check_valley_shape(valley(conf=0.5), "m")[2]  # collapsed, wrong, but not confident
    assert mixed.verdict == "partly"
    none = valley(n=5)
    assert verdicts(checks.check_valley_shape(none, "m")) == ["not testable here"] * 3


def test_shift_every_verdict():
    clean = valley(flip=10)
    later = valley(flip=20, peak=np.full(200, 21.0))
    later["time_to_flip"] = clean["time_to_flip"] + 10
    assert checks.check_adversarial_training_shift(clean, later).verdict == "reproduced"
    assert checks.check_adversarial_training_shift(later, clean).verdict == "not reproduced"
    flip_only = valley(flip=20, peak=clean["peak_step"] - 3)
    flip_only["time_to_flip"] = clean["time_to_flip"] + 10
    assert checks.check_adversarial_training_shift(clean, flip_only).verdict == "partly"
    assert checks.check_adversarial_training_shift(clean, valley(n=3)).verdict == "not testable here"


def test_feature_norm_every_verdict():
    assert checks.check_feature_norm(valley(norm=1.02), "m").verdict == "reproduced"
    assert checks.check_feature_norm(valley(norm=1.5), "m").verdict == "not reproduced"
    assert checks.check_feature_norm(valley(norm=1.1), "m").verdict == "partly"
    assert checks.check_feature_norm(valley(n=2), "m").verdict == "not testable here"


def test_valley_samples_from_a_trajectory():
    t, n = 6, 12
    kappa = torch.tensor([0.1, 1, 10, 1, 1e-3, 1e-4], dtype=torch.float64)[:, None].repeat(1, n)
    stats = {name: torch.ones(t, n, dtype=torch.float64) for name in STAT_NAMES}
    stats |= {"kappa_layer": kappa, "trace": kappa / 10, "feature_norm": torch.full((t, n), 2.0, dtype=torch.float64)}
    pred = torch.tensor([0, 0, 1, 1, 1, 1])[:, None].repeat(1, n)
    pred[:, -2:] = 0  # two never flip
    s = valley_samples(Trajectory(torch.zeros(n, dtype=torch.long), torch.zeros(t, n, 3), pred, stats, torch.zeros(n, 1)))
    assert s["n_flipped"] == 10 and s["steps"] == 5
    assert np.all(s["peak_over_start"] == 100) and np.all(s["flip_step"] == 2) and np.all(s["peak_step"] == 2)
    assert list(s["time_to_flip"][-3:]) == [2, 6, 6]  # never flipped: after the last step


def test_scaling_every_verdict():
    falling = torch.tensor([[3.0] * 40, [2.0] * 40, [1.0] * 40])
    assert checks.check_scaling(falling, [1, 2, 3], "v").verdict == "reproduced"
    bump = falling.clone()
    bump[1, :8] = 5.0
    assert checks.check_scaling(bump, [1, 2, 3], "v").verdict == "partly"
    assert checks.check_scaling(falling.flip(0), [1, 2, 3], "v").verdict == "not reproduced"
    with pytest.raises(ValueError, match="ascending"):
        checks.check_scaling(falling, [3, 2, 1], "v")


def test_scaling_median_every_verdict():
    base = torch.tensor(around(1.0, 0.5, 300))
    assert checks.check_scaling_median(torch.stack([base, base / 10, base / 100]), [1, 2, 3], "v").verdict == "reproduced"
    assert checks.check_scaling_median(torch.stack([base, base * 10, base]), [1, 2, 3], "v").verdict == "not reproduced"
    noisy = torch.stack([base, base * torch.tensor(around(1.0, 0.5, 300)), base / 100])
    assert checks.check_scaling_median(noisy, [1, 2, 3], "v").verdict == "partly"


def test_loss_growth_every_verdict():
    base = torch.tensor(around(1.0, 0.5, 300))
    shrinking = torch.stack([base, base / 10, base / 1000])
    everyone = torch.ones(3, 300, dtype=torch.bool)
    assert checks.check_loss_growth(shrinking, everyone, [1, 2, 3], "v").verdict == "reproduced"
    assert checks.check_loss_growth(shrinking.flip(0), everyone, [1, 2, 3], "v").verdict == "not reproduced"
    tail = torch.tensor(np.r_[around(1.0, 0.1, 250), around(100.0, 0.1, 50)])
    median_falls_tail_grows = torch.stack([base, base, torch.where(tail > 10, tail, tail / 100)])
    assert checks.check_loss_growth(median_falls_tail_grows, everyone, [1, 2, 3], "v").verdict == "partly"
    masked = everyone.clone()
    masked[-1, 5:] = False  # at the largest s only 5 points can be moved
    found = checks.check_loss_growth(shrinking, masked, [1, 2, 3], "v")
    assert found.verdict == "not testable here" and "295 of 300 points have a zero input gradient" in found.evidence


def masking_data(pgd_last=0.93, kept_last=0.0, scaled_transfer_changes=False, n=300):
    rng = np.random.default_rng(1)
    rows = lambda *ps: np.stack([(rng.random(n) < p).astype(float) for p in ps])  # noqa: E731
    clean = np.stack([np.ones(n)] * 3)
    transfer = rows(0.0, 0.0, 0.0)
    if scaled_transfer_changes:
        transfer[1, :10] = 1
    square = np.stack([rows(0.1)[0]] * 3)
    return {"clean": clean, "pgd": rows(0.0, 0.5, pgd_last), "transfer": transfer,
            "transfer, bias kept": rows(0.0, 0.0, kept_last), "square": square}


def test_gradient_masking_every_verdict():
    s = [1.0, 10.0, 100.0]
    found = {c.id: c.verdict for c in checks.check_gradient_masking(s, masking_data())}
    assert found == {"9-masking": "reproduced", "9-transfer-bias-kept": "reproduced",
                     "9-transfer-bias-scaled": "holds by construction", "9-square": "holds by construction"}
    found = {c.id: c.verdict for c in checks.check_gradient_masking(s, masking_data(0.05, 0.5, True))}
    assert found["9-masking"] == "not reproduced" and found["9-transfer-bias-kept"] == "not reproduced"
    assert found["9-transfer-bias-scaled"] == "not reproduced"  # a scaled model that changed its mind is a bug
    found = {c.id: c.verdict for c in checks.check_gradient_masking(s, masking_data(0.25, 0.05))}
    assert found["9-masking"] == "partly" and found["9-transfer-bias-kept"] == "partly"
    no_square = {k: v for k, v in masking_data().items() if k != "square"}
    assert len(checks.check_gradient_masking(s, no_square, "eps=0.1")) == 3


def test_basin_and_trace_every_verdict():
    c = torch.tensor(np.round(around(10, 0.3)))
    assert checks.check_basin(c, c * 3, "d").verdict == "reproduced"
    assert checks.check_basin(c, c * 1.3, "d").verdict == "partly"
    assert checks.check_basin(c, c, "d").verdict == "not reproduced"
    t = torch.tensor(around(0.6, 0.5))
    assert checks.check_clean_trace(t, t * 1.7).verdict == "reproduced"
    assert checks.check_clean_trace(t, t / 1.7).verdict == "not reproduced"
    assert checks.check_clean_trace(t, torch.tensor(around(0.6, 0.5))).verdict == "partly"


def test_confidently_wrong_flat_every_verdict():
    n = 200
    kappa = {"clean": torch.ones(n), "boundary": torch.tensor(around(1.0, 0.3, n)),
             "adversarial": torch.tensor(around(1e-3, 0.3, n))}
    conf = {k: torch.full((n,), 0.999) for k in kappa}
    wrong = {k: torch.ones(n, dtype=torch.bool) for k in kappa}
    assert checks.check_confidently_wrong_flat(kappa, conf, wrong).verdict == "reproduced"
    sharp = kappa | {"adversarial": torch.tensor(around(1.0, 0.3, n))}
    assert checks.check_confidently_wrong_flat(sharp, conf, wrong).verdict == "not reproduced"
    edge = kappa | {"adversarial": torch.tensor(around(0.1, 0.3, n))}
    assert checks.check_confidently_wrong_flat(edge, conf, wrong).verdict == "partly"
    unsure = {k: torch.full((n,), 0.6) for k in kappa}
    assert checks.check_confidently_wrong_flat(kappa, unsure, wrong).verdict == "not testable here"
    assert checks.check_confidence_band(0, 10).verdict == "holds by construction"
    assert checks.check_confidence_band(1, 10).verdict == "not reproduced"


def test_detector_every_verdict():
    good = (RNG.random(600) < 0.97).astype(float)
    coin = (RNG.random(600) < 0.5).astype(float)
    assert checks.check_detector(good, coin, "m").verdict == "reproduced"
    assert checks.check_detector((RNG.random(600) < 0.85).astype(float), coin, "m").verdict == "partly"
    assert checks.check_detector(coin, good, "m").verdict == "not reproduced"
    assert checks.check_detector(np.array([]), np.array([]), "m").verdict == "not testable here"


def test_not_global_every_verdict():
    n = 200
    wrong, conf = np.ones(n), np.full(n, 0.99)
    assert checks.check_not_global(wrong, conf, around(0.01, 0.3, n), "s").verdict == "reproduced"
    assert checks.check_not_global(np.zeros(n), conf, around(0.9, 0.3, n), "s").verdict == "not reproduced"
    assert checks.check_not_global(wrong, conf, around(0.9, 0.3, n), "s").verdict == "partly"
    assert checks.check_not_global(wrong[:3], conf[:3], np.ones(3), "s").verdict == "not testable here"


def test_theory_checks_every_verdict():
    assert verdicts(checks.check_closed_form(1e-15, 1e-15, "s")) == ["reproduced"] * 2
    assert verdicts(checks.check_closed_form(1e-3, 1e-3, "s")) == ["not reproduced"] * 2
    assert checks.check_flip_threshold(0, 100, 0, 50, -0.05, 0.2).verdict == "reproduced"
    assert checks.check_flip_threshold(1, 100, 0, 50, -0.05, 0.2).verdict == "not reproduced"
    assert checks.check_flip_threshold(0, 100, 0, 50, 0.05, 0.2).verdict == "not reproduced"
    L = {"upper": 100.0, "local": 20.0}
    assert checks.check_bridging(1e-15, 0, 10, L, 1.0).verdict == "holds by construction"
    assert checks.check_bridging(1e-15, 1, 10, L, 1.0).verdict == "not reproduced"
    ok = {"ours, eps observed": 0, "ours, L proven": 0, "digest, L proven": 0, "digest, L local": 3}
    assert checks.check_local_bound(ok, 500, 0, 6000).verdict == "reproduced"
    assert checks.check_local_bound(ok | {"digest, L proven": 2}, 500, 0, 6000).verdict == "partly"
    assert checks.check_local_bound(ok | {"ours, L proven": 1}, 500, 0, 6000).verdict == "not reproduced"
    assert "rate below 0.0005 at 95%" in checks.check_local_bound(ok, 500, 0, 6000).evidence


def test_combine_counts_only_evidence():
    assert checks.combine(["reproduced", "holds by construction"]) == "reproduced"
    assert checks.combine(["holds by construction"]) == "holds by construction"
    assert checks.combine(["not testable here"]) == "not testable here"
    assert checks.combine(["reproduced", "not reproduced"]) == "partly"
    assert checks.combine(["not reproduced", "not testable here"]) == "not reproduced"
    with pytest.raises(ValueError, match="verdict must be one of"):
        checks.Check("x", 1, "s", "maybe", "e")
