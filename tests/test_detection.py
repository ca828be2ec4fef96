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


def valley_trajectory(n=60, steps=20, flip=6, seed=0):
    """A hand-made attack record: every input flips at ``flip``; its sharpness rises from about 1 to a peak of about
    100 at the flip and falls back to about 1 by the end; its confidence is lowest at the flip and back near 1
    (confidently wrong) at the end: the uncanny valley in miniature."""
    from flatrob.attacks import Trajectory

    rng = np.random.default_rng(seed)
    t = torch.arange(steps + 1, dtype=torch.float64)[:, None]
    height = torch.exp(-((t - flip) ** 2) / 2.0) * 99 + 1  # 1 -> 100 at the flip -> 1
    kappa = height * torch.tensor(np.exp(rng.normal(0, 0.3, (steps + 1, n))))
    jitter = torch.tensor(rng.uniform(0.99, 0.999, (steps + 1, n)))  # clean and final confidence alike
    top = (1 - 0.45 * torch.exp(-((t - flip) ** 2) / 2.0)) * jitter
    labels = torch.zeros(n, dtype=torch.long)
    pred = torch.where(t.expand(steps + 1, n) >= flip, 1, 0).long()
    probs = torch.zeros(steps + 1, n, 10, dtype=torch.float64)
    probs[..., 2:] = ((1 - top) / 9)[..., None]
    probs[..., 0] = torch.where(pred == 0, top, (1 - top) / 9)
    probs[..., 1] = torch.where(pred == 1, top, (1 - top) / 9)
    return Trajectory(labels, probs.float(), pred, {"kappa_layer": kappa.float()}, torch.zeros(n, 1))


def test_detector_along_the_path_separates_at_the_flip_and_not_in_the_valley():
    from flatrob.detection import detector_along_path, path_steps_of

    traj = valley_trajectory()
    assert path_steps_of(traj, "first flip").tolist() == [6] * 60
    assert path_steps_of(traj, 50).tolist() == [-1] * 60  # beyond the path
    with pytest.raises(ValueError, match="position"):
        path_steps_of(traj, "somewhere")
    table = detector_along_path(traj, ("first flip", "sharpness peak", 1, 2, 10, 20), folds=5, seed=0).set_index(
        "position"
    )
    assert "1" not in table.index and "2" not in table.index  # not yet fooled: no pairs
    assert table.loc["20", "confidence accuracy"] < 0.75  # confidently wrong at the end: as confident as clean
    assert table.loc["first flip", "pairs"] == 60 and table.loc["first flip", "points"] == 120
    assert table.loc["first flip", "sharpness accuracy"] > 0.95  # at the flip the sharpness is 100x the clean one
    assert table.loc["20", "sharpness accuracy"] < 0.75  # in the valley it is back where it started
    assert table.loc["20", "log10 kappa, adversarial"] == pytest.approx(table.loc["20", "log10 kappa, clean"], abs=0.2)
    assert table.loc["first flip", "sharpness correct"] == round(120 * table.loc["first flip", "sharpness accuracy"])


def test_paired_folds_keep_a_pair_together():
    from flatrob.detection import _cross_validate

    scores = np.r_[np.arange(50.0), np.arange(50.0) + 0.5]
    labels = np.r_[np.zeros(50, int), np.ones(50, int)]
    groups = np.r_[np.arange(50), np.arange(50)]
    _, fold = _cross_validate(scores, labels, 5, 0, groups)
    assert (fold[:50] == fold[50:]).all()  # each clean input and its adversarial version share a fold
    _, unpaired = _cross_validate(scores, labels, 5, 0)
    assert not (unpaired[:50] == unpaired[50:]).all()


def test_seeds_along_the_path_pool_as_counts():
    from flatrob.detection import detector_along_path, pool_along_path

    tables = [detector_along_path(valley_trajectory(seed=s), ("first flip", 20)).assign(model="clean") for s in (0, 1)]
    pooled = pool_along_path(tables).set_index("position")
    first = [t.set_index("position").loc["first flip"] for t in tables]
    assert pooled.loc["first flip", "points"] == sum(f["points"] for f in first) == 240
    assert pooled.loc["first flip", "sharpness correct"] == sum(f["sharpness correct"] for f in first)
    assert pooled.loc["first flip", "sharpness accuracy"] == pooled.loc["first flip", "sharpness correct"] / 240
    assert pooled.loc["20", "seeds"] == 2
