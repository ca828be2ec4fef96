"""The derivations behind the bounds (chapters feature-robustness, bridging-lemma, local-bound, not-global): the
feature-weight identity, the directional derivatives of the loss, the Haar moments over O(2), the expected quadratic
change, the Householder reflection, the third-moment bounds, confident points are flat, and the linear toy."""

from __future__ import annotations

import sympy as sp

from flatrob.symbolic.base import cross_entropy, probability_simplex, sigma_of, softmax, symbol_matrix, symbol_vector

__all__ = [
    "check_confident_is_flat",
    "check_directional_derivatives",
    "check_expected_quadratic",
    "check_feature_weight_identity",
    "check_haar_first_moment",
    "check_haar_second_moment",
    "check_householder",
    "check_third_moment_bounds",
    "linear_toy",
]


# ---------------------------------------------------------------------------
# Chapter feature-robustness


def check_feature_weight_identity(k: int | None = None, m: int | None = None) -> sp.MatrixBase:
    """:eq:`eq-feature-weight`: W (phi + delta A phi) - (W + delta W A) phi.

    With matrix symbols of symbolic sizes when k, m are None, explicit
    entries otherwise; zero (after expansion) when the identity holds.

    Args:
        k: k, or None for a symbolic size.
        m: m, or None for a symbolic size.

    Returns:
        The residual matrix (k, m) or matrix expression, zero after expansion.
    """
    delta = sp.Symbol("delta", real=True)
    if k is None or m is None:
        kk, mm = sp.symbols("k m", integer=True, positive=True)
        W, A, phi = sp.MatrixSymbol("W", kk, mm), sp.MatrixSymbol("A", mm, mm), sp.MatrixSymbol("phi", mm, 1)
        return sp.expand((W * (phi + delta * A * phi) - (W + delta * W * A) * phi).doit())
    W, A, phi = (
        symbol_matrix("w", k, m, real=True),
        symbol_matrix("a", m, m, real=True),
        symbol_vector("phi", m, real=True),
    )
    return sp.expand(W * (phi + delta * A * phi) - (W + delta * W * A) * phi)


def check_directional_derivatives(k: int, y: int = 0) -> dict[str, sp.Expr]:
    """:prf:ref:`lem-directional`: g(t) = l(z + t u) has g' = (p - e_y).u, g'' = Var_p(u_S), g''' = E_p[(u_S - mu)^3].

    Residuals at t = 0 for symbolic z, u in R^k (the statements at any t follow by shifting z).

    Args:
        k: k, the number of classes.
        y: the label.

    Returns:
        The residuals of g', g'' and g''' at t = 0 by name, each zero when the lemma holds.
    """
    z, u = symbol_vector("z", k, real=True), symbol_vector("u", k, real=True)
    t = sp.Symbol("t", real=True)
    g = cross_entropy(z + t * u, y)
    p = softmax(z)
    mu = (p.T * u)[0]
    expected = {
        1: ((p - sp.eye(k)[:, y]).T * u)[0],
        2: sum(p[s] * (u[s] - mu) ** 2 for s in range(k)),
        3: sum(p[s] * (u[s] - mu) ** 3 for s in range(k)),
    }
    return {f"order {n}": sp.simplify(sp.diff(g, t, n).subs(t, 0) - e) for n, e in expected.items()}


def check_haar_second_moment() -> sp.Matrix:
    """:eq:`eq-haar-moment` for O(2): E_A[A phi phi^T A^T] - ||phi||^2 / 2 I, integrating over rotations and
    reflections.

    O(2) is the rotations R(theta) and the reflections R(theta) diag(1, -1);
    Haar measure is uniform theta on [0, 2 pi) and a fair choice between the two.

    Returns:
        The 2 x 2 residual, the zero matrix when the moment identity holds.
    """
    th = sp.Symbol("theta", real=True)
    phi = symbol_vector("phi", 2, real=True)
    rot = sp.Matrix([[sp.cos(th), -sp.sin(th)], [sp.sin(th), sp.cos(th)]])
    mats = (rot, rot * sp.diag(1, -1))
    avg = (
        sum(
            (
                (a * phi * phi.T * a.T).applyfunc(lambda e: sp.integrate(e, (th, 0, 2 * sp.pi)) / (2 * sp.pi))
                for a in mats
            ),
            sp.zeros(2, 2),
        )
        / 2
    )
    return sp.simplify(avg - (phi.T * phi)[0] / 2 * sp.eye(2))


def check_haar_first_moment() -> sp.Matrix:
    """E_A[A] over O(2) (rotations and reflections, uniform angle): the zero matrix.

    Returns:
        The 2 x 2 expectation, the zero matrix.
    """
    th = sp.Symbol("theta", real=True)
    rot = sp.Matrix([[sp.cos(th), -sp.sin(th)], [sp.sin(th), sp.cos(th)]])

    def integ(a: sp.Matrix) -> sp.Matrix:
        return a.applyfunc(lambda e: sp.integrate(e, (th, 0, 2 * sp.pi)) / (2 * sp.pi))

    return sp.simplify((integ(rot) + integ(rot * sp.diag(1, -1))) / 2)


def _o2_haar_expectation(expr: sp.Expr, a: sp.Matrix) -> sp.Expr:
    """E_A[expr] for a polynomial ``expr`` in the entries of a (2, 2) symbol matrix ``a``, A Haar on O(2).

    Each monomial in A's entries is replaced by its Haar expectation, integrated over the
    rotations R(theta) and reflections R(theta) diag(1, -1) (uniform theta, a fair choice).
    """
    th = sp.Symbol("theta", real=True)
    rot = sp.Matrix([[sp.cos(th), -sp.sin(th)], [sp.sin(th), sp.cos(th)]])
    mats = (rot, rot * sp.diag(1, -1))
    entries = list(a)
    poly = sp.Poly(sp.expand(expr), *entries)
    total = sp.Integer(0)
    for powers, coeff in poly.terms():
        moment = (
            sum(
                sp.integrate(sp.prod([e**k for e, k in zip(list(m), powers)]), (th, 0, 2 * sp.pi)) / (2 * sp.pi)
                for m in mats
            )
            / 2
        )
        total += coeff * moment
    return sp.expand(total)


def check_expected_quadratic(k: int, m: int = 2) -> sp.Expr:
    """:prf:ref:`thm-expected-change`: E_A[(W A phi)^T Sigma (W A phi)] - kappa_neuron / m, A Haar on O(m), for m = 2.

    The left side is built with A in it: the quadratic form is expanded in the entries of a
    symbolic A, and every monomial replaced by its Haar integral over O(2) (not by the moment
    identity the proof uses, so the check could fail if the proof were wrong). W (k, 2) and
    phi are symbols, p lies on the simplex, kappa_neuron = sum_{s,s'} <w_s, w_s'> Sigma_{ss'} ||phi||^2.
    Zero when the theorem's quadratic term holds.

    Args:
        k: k, the number of classes.
        m: m, the number of features (2: the Haar integral over O(2) is exact).

    Returns:
        The residual, zero when the theorem holds.
    """
    if m != 2:
        raise ValueError("the Haar integral is done in closed form over O(2) only: m must be 2")
    p = probability_simplex(k)
    sigma = sigma_of(p)
    W = symbol_matrix("w", k, m, real=True)
    a = symbol_matrix("a", m, m, real=True)
    phi = symbol_vector("phi", m, real=True)
    u = W * a * phi
    expected = _o2_haar_expectation((u.T * sigma * u)[0], a)
    phi_sq = (phi.T * phi)[0]
    kappa = sum((W[s, :] * W[t, :].T)[0] * sigma[s, t] * phi_sq for s in range(k) for t in range(k))
    return sp.simplify(sp.expand(expected - kappa / m))


# ---------------------------------------------------------------------------
# Chapter bridging-lemma and local-bound


def check_householder(m: int) -> dict[str, sp.MatrixBase]:
    """:prf:ref:`lem-bridging`: A = I - 2 v v^T / v^T v with v = u - w is orthogonal, and
    A u - w = v (``|w|^2 - |u|^2``) / ``|v|^2``.

    So A u = w exactly when ||u|| = ||w||. Returns both residuals (zero matrices).

    Args:
        m: the dimension of u and w.

    Returns:
        The two residuals by name (orthogonality and the image of u), zero matrices.
    """
    u, w = symbol_vector("u", m, real=True), symbol_vector("w", m, real=True)
    v = u - w
    vv = (v.T * v)[0]
    A = sp.eye(m) - 2 * v * v.T / vv
    nu, nw = (u.T * u)[0], (w.T * w)[0]
    return {
        "orthogonal": sp.simplify(A.T * A - sp.eye(m)),
        "maps u to w": sp.simplify(A * u - w - v * (nw - nu) / vv),
    }


def check_third_moment_bounds() -> dict[str, sp.Expr]:
    """:prf:ref:`lem-third-derivative`: bounds on the third central moment of a variable with range R.

    ``popoviciu``: max of Var over two-point laws on [0, 1] is 1/4 (so ``|E(X - mu)^3|`` <= R Var <= R^3 / 4);
    ``bernoulli_max``: max over q of the Bernoulli third central moment q (1 - q)(1 - 2 q), 1 / (6 sqrt 3).

    Returns:
        The two bounds by name (``popoviciu``, ``bernoulli_max``) as exact expressions.
    """
    q = sp.Symbol("q", positive=True)
    var = q * (1 - q)
    m3 = q * (1 - q) * (1 - 2 * q)
    crit_var = [c for c in sp.solve(sp.diff(var, q), q) if 0 < c < 1]
    crit_m3 = [c for c in sp.solve(sp.diff(m3, q), q) if 0 < c < 1]
    return {
        "popoviciu": sp.nsimplify(max(var.subs(q, c) for c in crit_var)),
        "bernoulli_max": sp.simplify(max((m3.subs(q, c) for c in crit_m3), key=lambda e: float(e))),
    }


# ---------------------------------------------------------------------------
# Chapter not-global


def check_confident_is_flat(k: int) -> sp.Expr:
    """:prf:ref:`prop-flat-wrong` (i): 2 (1 - p_j) - (1 - ||p||^2) - [(1 - p_j)^2 + sum_{s != j} p_s^2], p on the
    simplex (zero).

    The bracket is a sum of squares, so 1 - ||p||^2 <= 2 (1 - p_j) for every class j,
    in particular for the predicted one: a confident prediction has a small Tr H.

    Args:
        k: k, the number of classes.

    Returns:
        The residual, an expression that simplifies to zero when the identity holds.
    """
    p = probability_simplex(k)
    return sp.expand(
        2 * (1 - p[0]) - (1 - sum(ps**2 for ps in p)) - ((1 - p[0]) ** 2 + sum(p[s] ** 2 for s in range(1, k)))
    )


def linear_toy() -> dict[str, sp.Expr]:
    """The off-manifold profile of a linear binary classifier (chapter not-global), in closed form.

    Data on the line x_2 = 0 with label y = sign(x_1); the model's logit margin is
    f(x) = a x_1 + c x_2, a > 0; the data fix a but not c. From a point (x_1, 0), x_1 > 0,
    walk off the manifold, x(t) = (x_1, -t sgn(c)), t >= 0. With features phi = x,
    W = (w, -w) for w = (a, c)/2 (two logits), the margin is m(t) = a x_1 - ``|c|`` t and
    returns ``loss`` l(t) = log(1 + exp(-m)), ``p`` = sigma(m), ``kappa`` = ||W||_F^2 Tr H(t),
    ``flip`` = the t where m = 0, ``peak`` = the stationary points of p(1 - p),
    and the limits of loss and kappa as t -> oo.

    Returns:
        The profile's expressions by name (logit margin, relative sharpness and loss along the walk off the
        manifold).
    """
    a, c, x1, t = sp.symbols("a c x_1 t", positive=True)  # c here is |c|
    margin = a * x1 - c * t
    p = 1 / (1 + sp.exp(-margin))
    loss = sp.log(1 + sp.exp(-margin))
    phi_sq = x1**2 + t**2
    w_fro_sq = 2 * (a**2 + c**2) / 4
    kappa = w_fro_sq * 2 * p * (1 - p) * phi_sq  # Tr Sigma(p) = 2 p (1 - p) for k = 2
    return {
        "margin": margin,
        "p": p,
        "loss": loss,
        "kappa": sp.simplify(kappa),
        "flip": sp.solve(sp.Eq(margin, 0), t)[0],
        "loss_limit": sp.limit(loss, t, sp.oo),
        "kappa_limit": sp.limit(kappa, t, sp.oo),
        "loss_slope_limit": sp.limit(sp.diff(loss, t), t, sp.oo),
    }
