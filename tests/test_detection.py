"""The detector's stumps: the optimal threshold, held-out cross-validation, log scores."""

import itertools

import numpy as np
import pytest
import torch

from flatrob.detection import Stump, cross_validate_stump, fit_stump, log_score


def brute_force_accuracy(scores, labels):
    best = 0.0
    cands = np.r_[-np.inf, np.unique(scores), np.inf]
    for t, d in itertools.product(np.r_[cands, (cands[1:-2] + cands[2:-1]) / 2], (1, -1)):
        best = max(best, float((Stump(t, d).predict(scores) == labels).mean()))
    return best


@pytest.mark.parametrize("seed", range(20))
def test_fit_stump_is_optimal(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    scores = rng.integers(0, 8, n).astype(float) if seed % 2 else rng.normal(size=n)  # ties in half the cases
    labels = rng.integers(0, 2, n)
    stump = fit_stump(scores, labels)
    assert (stump.predict(scores) == labels).mean() == pytest.approx(brute_force_accuracy(scores, labels))


def test_stump_separates_and_cross_validation_is_held_out():
    rng = np.random.default_rng(0)
    clean, adv = rng.normal(0, 1, 200), rng.normal(3, 1, 200)
    scores, labels = np.r_[clean, adv], np.r_[np.zeros(200), np.ones(200)].astype(int)
    acc = cross_validate_stump(scores, labels, folds=5, seed=0)
    # two unit Gaussians 3 apart: the Bayes accuracy is Phi(1.5) = 0.933
    assert acc.shape == (5,) and 0.88 < acc.mean() < 0.98
    flipped = cross_validate_stump(-scores, labels, folds=5, seed=0)  # the direction is learned
    assert flipped.mean() == pytest.approx(acc.mean(), abs=0.02)
    noise = cross_validate_stump(rng.normal(size=400), labels, folds=5, seed=0)
    assert noise.mean() < 0.6  # held-out: no better than chance on noise
    with pytest.raises(ValueError, match="folds"):
        cross_validate_stump(scores, labels, folds=1)
    with pytest.raises(ValueError, match="labels"):
        fit_stump(np.zeros(3), np.array([0, 1, 2]))


def test_log_score_keeps_zeros_finite():
    out = log_score(torch.tensor([0.0, 1e-5, 1.0]))
    assert np.isfinite(out).all() and out[0] == pytest.approx(-300) and out[2] == 0
