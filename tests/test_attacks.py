"""The instrumented PGD (against torchattacks), trajectories and their statistics, Square, the scaled-model attacks."""

import numpy as np
import pytest
import torch

from flatrob import flatness
from flatrob.attacks import (
    STAT_NAMES,
    AttackConfig,
    Trajectory,
    input_gradient_norms,
    interpolation_path,
    pgd,
    square,
)
from flatrob.masking import scale_attacks
from flatrob.models import last_layer_inputs, scale_last_layer
from flatrob.training import accuracy


@pytest.mark.parametrize("norm,eps,step", [("linf", 0.1, 0.02), ("l2", 1.0, 0.15)])
def test_pgd_matches_torchattacks(trained, norm, eps, step):
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = trained
    cfg = AttackConfig(norm, eps, 10, step)
    ref_attack = (torchattacks.PGD if norm == "linf" else torchattacks.PGDL2)(
        model, eps=eps, alpha=step, steps=10, random_start=False
    )
    ref = ref_attack(x, y)
    ours = pgd(model, x, y, cfg)
    tracked = pgd(model, x, y, cfg, track=True)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(tracked.x_final, ours, atol=0, rtol=0)  # tracking changes nothing
    assert (ours != x).any()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_the_ball_with_random_start(trained, norm):
    model, x, y = trained
    eps = 0.05 if norm == "linf" else 0.5
    adv = pgd(model, x, y, AttackConfig(norm, eps, 5, eps / 2, random_start=True, seed=3))
    d = (adv - x).reshape(len(x), -1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert float(size.max()) <= eps + 1e-6 and float(adv.min()) >= 0 and float(adv.max()) <= 1
    again = pgd(model, x, y, AttackConfig(norm, eps, 5, eps / 2, random_start=True, seed=3))
    assert torch.equal(adv, again)


def test_tracked_statistics_equal_separate_computation(trained):
    model, x, y = trained
    traj = pgd(model, x, y, AttackConfig("linf", 0.2, 6, 0.05), track=True)
    assert traj.steps == 6 and set(traj.stats) == set(STAT_NAMES)
    assert traj.probs.shape == (7, len(x), 10) and all(v.shape == (7, len(x)) for v in traj.stats.values())
    # the final iterate's statistics, recomputed from scratch
    W, b, phi = last_layer_inputs(model, traj.x_final)
    torch.testing.assert_close(traj.stats["kappa_layer"][-1], flatness.relative_sharpness(W, phi, b, "layer"))
    torch.testing.assert_close(traj.stats["kappa_neuron"][-1], flatness.relative_sharpness(W, phi, b, "neuron"))
    torch.testing.assert_close(traj.stats["feature_norm"][-1], phi.norm(dim=1))
    loss = torch.nn.functional.cross_entropy(model(traj.x_final), y, reduction="none").detach()
    torch.testing.assert_close(traj.stats["loss"][-1], loss)
    # iterate 0 is the clean input
    W0, b0, phi0 = last_layer_inputs(model, x)
    torch.testing.assert_close(traj.stats["trace"][0], flatness.hessian_trace(W0, phi0, b0))
    flips = traj.flip_step()
    for i in range(len(x)):
        wrong = (traj.pred[:, i] != y[i]).nonzero()
        assert int(flips[i]) == (int(wrong[0]) if len(wrong) else -1)
    frame = traj.to_frame(model="m")
    assert len(frame) == 7 * len(x) and {"kappa_layer", "flip_step", "model"} <= set(frame.columns)


def test_interpolation_path_endpoints(trained):
    model, x, y = trained
    for target in ("gaussian", "uniform"):
        traj = interpolation_path(model, x, y, target, steps=4, seed=1)
        W, b, phi = last_layer_inputs(model, x)
        torch.testing.assert_close(traj.stats["kappa_layer"][0], flatness.relative_sharpness(W, phi, b))
        W, b, phi = last_layer_inputs(model, traj.x_final)
        torch.testing.assert_close(traj.stats["kappa_layer"][-1], flatness.relative_sharpness(W, phi, b))
        assert 0 <= float(traj.x_final.min()) and float(traj.x_final.max()) <= 1
    with pytest.raises(ValueError, match="target"):
        interpolation_path(model, x, y, "pink")


def test_attack_config_validation():
    with pytest.raises(ValueError, match="norm"):
        AttackConfig("l1")
    with pytest.raises(ValueError, match="eps"):
        AttackConfig(eps=-1)


def test_attack_at_another_radius_scales_its_step():
    a = AttackConfig("linf", 0.1, 10, 0.02, seed=3)
    b = a.at_radius(0.3)
    assert (b.eps, b.steps, b.seed) == (0.3, 10, 3) and b.step_size == pytest.approx(0.06)
    assert a.setting() == {"norm": "linf", "eps": 0.1, "steps": 10, "step_size": 0.02}


def test_loss_rise_step():
    loss = torch.tensor([[1e-6, 0.5], [3e-6, 0.55], [0.2, 0.7], [1.0, 0.7]])
    t = Trajectory(
        labels=torch.zeros(2, dtype=torch.long),
        probs=torch.zeros(4, 2, 3),
        pred=torch.zeros(4, 2, dtype=torch.long),
        stats={"loss": loss},
        x_final=torch.zeros(2, 1),
    )
    assert t.loss_rise_step(0.1).tolist() == [2, 2]
    assert t.loss_rise_step(2.0, relative=True).tolist() == [1, 4]  # the second never doubles: steps + 1
    with pytest.raises(ValueError):
        t.loss_rise_step(0.0)


def test_uncertainty_is_one_minus_confidence_without_rounding():
    logits = torch.tensor([[[30.0, 0.0, -1.0], [0.2, 0.1, 0.0]]])  # (T + 1 = 1, n = 2, k = 3)
    probs = torch.softmax(logits, -1)
    t = Trajectory(
        labels=torch.zeros(2, dtype=torch.long), probs=probs, pred=probs.argmax(-1), stats={}, x_final=torch.zeros(2, 1)
    )
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


def test_scale_attacks_rows_c_and_d(trained):
    model, x, y = trained
    rows, per_input = scale_attacks(
        model, x, y, [1.0, 10.0, 1e4], AttackConfig("linf", 0.2, 3, 0.1), square_queries=20, float64=True
    )
    assert [r["s"] for r in rows] == [1.0, 10.0, 1e4] and per_input["pgd"].shape == (3, len(y))
    assert per_input["square"].shape == (2, len(y))  # its two ends
    assert np.all(per_input["transfer"] == per_input["transfer"][0])  # bias scaled: the same decision regions
    assert rows[-1]["zero input gradient"] > 0.5 and rows[-1]["pgd"] >= rows[0]["pgd"]  # masking at s = 1e4
    assert "pgd, float64" in rows[0] and "square" in rows[0] and "square" not in rows[1]
