"""The experiment chapters' library: stumps, loss-rise steps, input gradients, Square, and the claim checks."""

import itertools

import numpy as np
import pytest
import torch

from flatrob.attacks import Trajectory, input_gradient_norms, square
from flatrob.data import load_digits
from flatrob.detection import Stump, cross_validate_stump, fit_stump, log_score
from flatrob.models import DigitsCNN, scale_last_layer
from flatrob.provenance import resolve_device
from flatrob.training import TrainConfig, accuracy, train_clean_and_adversarial


# ---------------------------------------------------------------- stumps


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


# ---------------------------------------------------------------- trajectories and attacks


def test_loss_rise_step():
    loss = torch.tensor([[1e-6, 0.5], [3e-6, 0.55], [0.2, 0.7], [1.0, 0.7]])
    t = Trajectory(labels=torch.zeros(2, dtype=torch.long), probs=torch.zeros(4, 2, 3), pred=torch.zeros(4, 2, dtype=torch.long),
                   stats={"loss": loss}, x_final=torch.zeros(2, 1))
    assert t.loss_rise_step(0.1).tolist() == [2, 2]
    assert t.loss_rise_step(2.0, relative=True).tolist() == [1, 4]  # the second never doubles: steps + 1
    with pytest.raises(ValueError):
        t.loss_rise_step(0.0)


def test_uncertainty_is_one_minus_confidence_without_rounding():
    logits = torch.tensor([[[30.0, 0.0, -1.0], [0.2, 0.1, 0.0]]])  # (T + 1 = 1, n = 2, k = 3)
    probs = torch.softmax(logits, -1)
    t = Trajectory(labels=torch.zeros(2, dtype=torch.long), probs=probs, pred=probs.argmax(-1), stats={},
                   x_final=torch.zeros(2, 1))
    exact = 1 - torch.softmax(logits.double(), -1).amax(-1)
    torch.testing.assert_close(t.uncertainty(), exact, rtol=1e-3, atol=0)  # float32 softmax of a 1e-13 probability
    assert float(1 - probs[0, 0].amax()) == 0.0 and float(t.uncertainty()[0, 0]) > 0  # float32 1 - p_max rounds to 0


def test_input_gradient_vanishes_only_when_the_softmax_saturates(trained):
    model, x, y = trained
    g1 = input_gradient_norms(model, x, y)
    assert (g1 > 0).all()
    g_big = input_gradient_norms(scale_last_layer(model, 1e4), x, y)
    z = model(x).detach()
    top2 = z.topk(2, dim=1).values
    clear = (z.argmax(1) == y) & (top2[:, 0] - top2[:, 1] > 0.02)
    assert clear.sum() >= 5 and (g_big[clear] == 0).all()  # exp(-1e4 * margin) underflows in float32
    g64 = input_gradient_norms(scale_last_layer(model, 1.0).double(), x.double(), y)
    torch.testing.assert_close(g64.float(), g1, rtol=1e-3, atol=1e-7)


def test_square_attack_is_scale_invariant_and_stays_in_the_ball(trained):
    model, x, y = trained
    before = torch.rand(3)
    torch.manual_seed(123)
    ref = torch.rand(3)
    torch.manual_seed(123)
    x1 = square(model, x, y, eps=0.2, n_queries=50, seed=0)
    assert torch.equal(torch.rand(3), ref)  # the global generator is left alone
    assert (x1 - x).abs().max() <= 0.2 + 1e-6 and x1.min() >= 0 and x1.max() <= 1
    x50 = square(scale_last_layer(model, 50.0), x, y, eps=0.2, n_queries=50, seed=0)
    assert torch.equal(x1, x50)  # the margin only scales: the same search, the same result
    assert accuracy(model, x1, y) < accuracy(model, x, y)
    with pytest.raises(ValueError, match="image batches"):
        square(model, x.flatten(1), y, eps=0.2)
    del before


def test_train_clean_and_adversarial_shares_the_clean_cache_entry(tmp_cache):
    s = load_digits()
    cfg = TrainConfig(epochs=1, batch_size=256, adv_eps=0.1, adv_steps=1, adv_step_size=0.1)
    models, records = train_clean_and_adversarial("digits-cnn", s, cfg)
    assert set(models) == {"clean", "adversarial"} and records["clean"]["key"] != records["adversarial"]["key"]
    from flatrob.training import train_model

    _, plain = train_model("digits-cnn", s, TrainConfig(epochs=1, batch_size=256), progress=False)
    assert plain["cached"] and plain["key"] == records["clean"]["key"]
    with pytest.raises(ValueError, match="adv_eps"):
        train_clean_and_adversarial("digits-cnn", s, TrainConfig(epochs=1))


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            resolve_device("cuda")
