"""The theory chapters' statements: SymPy identities, the Haar and Householder constructions,
Lipschitz estimates, the local robustness bound on random instances, the certified radius."""

from __future__ import annotations

import math

import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flatrob import bounds, flatness, symbolic
from flatrob.models import MLP

# ---------------------------------------------------------------------------
# SymPy


@pytest.mark.parametrize("k", [2, 3, 4, 5, None])
def test_flip_threshold(k):
    r = symbolic.check_flip_threshold(k)
    assert r["gap"] == 0 and r["tight"] == 0 and r["sign"].is_positive


def test_reviewer_counterexamples():
    flip = symbolic.loss_change([0.6, 0.1, 0.1], [0.6, 0.7, -5], 0)
    rise = symbolic.loss_change([0.6, 0.1, 0.1], [0.6, 0.5, 0.5], 0)
    assert flip["value"] < 0 and flip["pred_before"] == 0 and flip["pred_after"] == 1
    assert rise["value"] > 0 and rise["pred_after"] == 0
    # against torch, independently
    ce = torch.nn.functional.cross_entropy
    z0 = torch.tensor([[0.6, 0.1, 0.1]], dtype=torch.float64)
    for r, z1 in ((flip, [0.6, 0.7, -5.0]), (rise, [0.6, 0.5, 0.5])):
        ref = ce(torch.tensor([z1], dtype=torch.float64), torch.tensor([0])) - ce(z0, torch.tensor([0]))
        assert math.isclose(r["value"], float(ref), rel_tol=1e-12)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_directional_derivatives_and_feature_identity(k):
    assert all(v == 0 for v in symbolic.check_directional_derivatives(k).values())
    assert symbolic.is_zero(symbolic.check_feature_weight_identity(k, 3))
    assert symbolic.check_expected_quadratic(k, 2) == 0
    assert symbolic.check_confident_is_flat(k) == 0


def test_symbolic_size_identities_and_haar_moments():
    assert symbolic.check_feature_weight_identity().is_ZeroMatrix
    assert symbolic.is_zero(symbolic.check_haar_first_moment())
    assert symbolic.is_zero(symbolic.check_haar_second_moment())
    for m in (2, 3):
        assert all(symbolic.is_zero(v) for v in symbolic.check_householder(m).values())
    t = symbolic.check_third_moment_bounds()
    assert t["popoviciu"] == sp.Rational(1, 4) and sp.simplify(t["bernoulli_max"] - 1 / (6 * sp.sqrt(3))) == 0


def test_linear_toy_valley():
    toy = symbolic.linear_toy()
    assert toy["kappa_limit"] == 0 and toy["loss_limit"] == sp.oo
    a, c, x1 = sp.symbols("a c x_1", positive=True)
    assert sp.simplify(toy["flip"] - a * x1 / c) == 0 and sp.simplify(toy["loss_slope_limit"] - c) == 0


# ---------------------------------------------------------------------------
# Haar matrices, Householder, bridging lemma


def test_haar_orthogonal_and_moments():
    gen = torch.Generator().manual_seed(0)
    A = bounds.haar_orthogonal(4000, 5, generator=gen)
    assert (A.transpose(1, 2) @ A - torch.eye(5, dtype=A.dtype)).abs().max() < 1e-12
    assert A.mean(0).abs().max() < 0.05  # E[A] = 0
    phi = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0], dtype=torch.float64)
    second = torch.einsum("nij,j,k,nlk->il", A, phi, phi, A) / len(A)
    assert (second - phi.pow(2).sum() / 5 * torch.eye(5, dtype=A.dtype)).abs().max() < 0.2  # eq-haar-moment
    # without the sign correction, QR is not Haar: the diagonal of Q is biased; with it, symmetric
    assert abs(float(torch.diagonal(A, dim1=1, dim2=2).mean())) < 0.03


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 20), st.integers(0, 10_000))
def test_bridging_decomposition_reconstructs(m, seed):
    gen = torch.Generator().manual_seed(seed)
    phi_x = torch.randn(6, m, generator=gen, dtype=torch.float64)
    phi_xi = phi_x + 0.3 * torch.randn(6, m, generator=gen, dtype=torch.float64)
    phi_xi[0] = phi_x[0]  # Delta = 0 is allowed
    delta, A = bounds.bridging_decomposition(phi_x, phi_xi)
    assert (A.transpose(1, 2) @ A - torch.eye(m, dtype=A.dtype)).abs().max() < 1e-10
    rebuilt = phi_x + delta[:, None] * (A @ phi_x.unsqueeze(2)).squeeze(2)
    assert (rebuilt - phi_xi).abs().max() < 1e-10
    assert delta[0] == 0


def test_householder_rejects_unequal_norms():
    with pytest.raises(ValueError, match="needs"):
        bounds.householder(torch.ones(1, 3), 2 * torch.ones(1, 3))


def test_lipschitz_estimates_are_ordered():
    torch.manual_seed(0)
    net = MLP(10, 3, hidden=(32, 16)).double().eval()
    x = torch.rand(64, 10, dtype=torch.float64)
    upper = bounds.lipschitz_upper(net.body, (10,))
    local = bounds.lipschitz_local(net.features, x)
    pairs = bounds.lipschitz_pairs(net.features, x, x + 1e-3 * torch.randn_like(x))
    assert float(pairs.max()) <= upper * (1 + 1e-9) and float(local.max()) <= upper * (1 + 1e-6)
    # the local estimate is the Jacobian's spectral norm: compare with the full Jacobian
    jac = torch.func.jacrev(net.features)(x[:1]).reshape(16, 10)
    assert math.isclose(float(local[0]), float(torch.linalg.matrix_norm(jac.detach(), 2)), rel_tol=1e-6)


def test_lipschitz_upper_refuses_unknown_layers():
    with pytest.raises(TypeError, match="no proven"):
        bounds.lipschitz_upper(torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Tanh()), (3,))


# ---------------------------------------------------------------------------
# The local robustness bound (thm-local-bound)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 8), st.integers(2, 12), st.floats(1e-3, 3.0), st.floats(0.1, 10.0), st.integers(0, 10_000))
def test_local_bound_holds_on_random_instances(k, m, eps, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    n = 16
    W = scale * torch.randn(k, m, generator=gen, dtype=torch.float64)
    b = torch.randn(k, generator=gen, dtype=torch.float64)
    phi = torch.rand(n, m, generator=gen, dtype=torch.float64) + 0.1
    y = torch.randint(0, k, (n,), generator=gen)
    terms = bounds.bound_terms(W, phi, b, y)
    # directions: random, the feature gradient (worst first order), the top eigenvector of W^T Sigma W, and its opposite
    dirs = bounds.worst_case_directions(W, phi, b, y, gen)
    for d in (*dirs.values(), -dirs["top eigenvector"]):
        change = bounds.loss_change_along(W, phi, b, y, phi + eps * d)
        for use_kappa in (True, False):
            assert not bool(bounds.violates(change, terms.bound(eps, use_kappa=use_kappa)).any())
    tol = 1e-12 * float(W.pow(2).sum())  # eigvalsh's absolute rounding error scales with ||W^T Sigma W||
    assert bool((terms.second <= terms.second_kappa + tol).all())  # lambda_max <= trace


def test_certified_radius_solves_the_bound():
    gen = torch.Generator().manual_seed(1)
    W = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    phi = torch.rand(10, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (10,), generator=gen)
    terms = bounds.bound_terms(W, phi, None, y)
    r = bounds.certified_radius(terms, lipschitz=2.0, budget=0.1)
    assert torch.allclose(terms.bound(2.0 * r), torch.full_like(r, 0.1), rtol=1e-9)
    with pytest.raises(ValueError):
        bounds.certified_radius(terms, lipschitz=0.0, budget=0.1)


def test_expected_change_matches_theorem():
    """thm-expected-change on a random instance: the Monte Carlo mean over Haar pairs approaches
    delta^2 kappa_n / (2m)."""
    gen = torch.Generator().manual_seed(2)
    k, m, n = 5, 12, 6
    W = torch.randn(k, m, generator=gen, dtype=torch.float64)
    b = torch.randn(k, generator=gen, dtype=torch.float64)
    phi = torch.rand(n, m, generator=gen, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=gen)
    kappa_n = flatness.relative_sharpness(W, phi, b, "neuron")
    d = torch.tensor([1e-3, 1e-2], dtype=torch.float64)
    mc = bounds.expected_change_mc(W, b, phi, y, d, 4000, generator=gen)
    lead = d**2 * kappa_n[:, None] / (2 * m)
    assert ((mc["mean"] - lead).abs() <= 5 * mc["se"] + 1e-3 * lead).all()
    rel = (mc["quartic"] / lead).median(0).values
    assert 80 < float(rel[1] / rel[0]) < 120  # the correction is O(delta^4): ratio 10^2 for delta x 10


def test_plain_haar_draws_see_no_cubic_term():
    """Without antithetic pairs the odd orders stay in every draw; only their mean vanishes (thm-expected-change).
    So the correction beyond the quadratic term from plain draws (with the linear control variate) must agree with
    the antithetic one, which cancels the odd orders by construction, wherever it stands above its noise; and the
    antithetic correction grows 10^4-fold for delta x 10 (a cubic term would give 10^3)."""
    gen = torch.Generator().manual_seed(5)
    k, m, n = 4, 8, 5
    W = torch.randn(k, m, generator=gen, dtype=torch.float64)
    b = torch.randn(k, generator=gen, dtype=torch.float64)
    phi = torch.rand(n, m, generator=gen, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=gen)
    d = torch.tensor([0.02, 0.2], dtype=torch.float64)
    anti = bounds.expected_change_mc(W, b, phi, y, d, 4000, generator=torch.Generator().manual_seed(0))
    plain = bounds.expected_change_mc(
        W, b, phi, y, d, 20000, generator=torch.Generator().manual_seed(1), antithetic=False
    )
    resolved = plain["quartic"].abs() > 3 * plain["quartic_se"]
    assert resolved[:, 1].sum() >= 4  # the large delta is resolved at most points: the comparison has teeth
    assert ((plain["quartic"] - anti["quartic"]).abs() <= 4 * (plain["quartic_se"] + anti["quartic_se"])).all()
    growth = (anti["quartic"][:, 1] / anti["quartic"][:, 0]).abs()
    assert ((growth > 5000) & (growth < 20000)).all()
    # without the linear control variate the plain mean is far noisier
    assert (plain["se"][:, 0] > 3 * plain["quartic_se"][:, 0]).all()


def test_random_bound_check_finds_no_violation_and_would_find_one():
    viol, total, tight = bounds.random_bound_check(600, seed=3)
    assert viol == 0 and total == 1800 and float(tight.max()) <= 1 + 1e-9
    change = torch.tensor([1.0, 1.0 + 1e-13, 1.1])
    assert bounds.violates(change, torch.ones(3)).tolist() == [False, False, True]  # rounding is not a violation


def test_digest_bound_is_the_second_hand_formula():
    kappa, r = torch.tensor([2.0]), torch.tensor([4.0])
    full = bounds.digest_bound(0.1, 3.0, kappa, r, 10, 128)
    assert float(full) == pytest.approx(0.01 * 9 * 2 / 32 + 10 * 128 * 3**6 * 1e-3 / (24 * 64))
    assert float(bounds.digest_bound(0.1, 3.0, kappa, r, 10, 128, cubic=False)) == pytest.approx(0.01 * 9 * 2 / 32)
