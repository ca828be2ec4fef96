"""SymPy derivations behind the book's closed forms.

Each ``check_*`` function builds both sides of one identity from symbols,
returns the simplified difference (zero when the identity holds) and is called
by the book's chapters and by the tests alike. The labels name the boxes and
equations of the book.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.matrices.expressions.kronecker import KroneckerProduct, combine_kronecker

__all__ = [
    "check_confident_is_flat",
    "check_directional_derivatives",
    "check_eigen_form",
    "check_expected_quadratic",
    "check_feature_weight_identity",
    "check_flip_threshold",
    "check_haar_first_moment",
    "check_haar_second_moment",
    "check_householder",
    "check_third_moment_bounds",
    "linear_toy",
    "loss_change",
    "check_kronecker_mixed_product",
    "check_last_layer_hessian",
    "check_logit_hessian",
    "check_neuron_forms",
    "check_relu_homogeneity",
    "check_rescaling_hessian",
    "check_trace_identity",
    "cross_entropy",
    "is_zero",
    "sigma_of",
    "softmax",
    "symbol_matrix",
    "symbol_vector",
]


def symbol_vector(name: str, n: int, **assumptions: bool) -> sp.Matrix:
    """Column vector (n, 1) of symbols ``name0 .. name{n-1}``."""
    return sp.Matrix(n, 1, lambda i, _: sp.Symbol(f"{name}{i}", **assumptions))


def symbol_matrix(name: str, rows: int, cols: int, **assumptions: bool) -> sp.Matrix:
    """Matrix (rows, cols) of symbols ``name{r}{c}``."""
    return sp.Matrix(rows, cols, lambda r, c: sp.Symbol(f"{name}{r}{c}", **assumptions))


def softmax(z: sp.Matrix) -> sp.Matrix:
    """p_s = exp(z_s) / sum_j exp(z_j) for a column vector z (k, 1)."""
    e = z.applyfunc(sp.exp)
    return e / sum(e)


def cross_entropy(z: sp.Matrix, y: int) -> sp.Expr:
    """l = -log softmax(z)_y = -z_y + log sum_j exp(z_j)."""
    return -(z[y] - sp.log(sum(sp.exp(z_j) for z_j in z)))


def sigma_of(p: sp.Matrix) -> sp.Matrix:
    """Sigma(p) = diag(p) - p p^T (eq-hessian-logits)."""
    return sp.diag(*p) - p * p.T


def is_zero(residual: sp.MatrixBase | sp.Expr) -> bool:
    """True when a residual returned by a ``check_*`` function is exactly zero."""
    if isinstance(residual, sp.MatrixBase):
        return bool(residual == sp.zeros(*residual.shape))
    return bool(residual == 0)


def check_logit_hessian(k: int) -> dict[int, tuple[sp.Matrix, sp.Matrix]]:
    """lem-logit-hessian: for every label y, (grad_z l - (p - e_y), hess_z l - Sigma(p)), simplified.

    Fully symbolic logits z in R^k. Both residuals are zero matrices when the lemma holds.
    """
    z = symbol_vector("z", k, real=True)
    p = softmax(z)
    out = {}
    for y in range(k):
        loss = cross_entropy(z, y)
        grad = sp.Matrix([loss.diff(z_s) for z_s in z])
        out[y] = (
            sp.simplify(grad - (p - sp.eye(k)[:, y])),
            sp.simplify(sp.hessian(loss, list(z)) - sigma_of(p)),
        )
    return out


def check_kronecker_mixed_product() -> tuple[sp.MatrixExpr, sp.MatrixExpr]:
    """thm-closed-form-hessian, general sizes: the mixed-product step.

    With matrix symbols of symbolic sizes k and m, returns
    ``(combine_kronecker((I_k kron phi)(Sigma kron 1)(I_k kron phi^T)), Sigma kron phi phi^T)``;
    the step holds when the two are equal.
    """
    k, m = sp.symbols("k m", integer=True, positive=True)
    sigma = sp.MatrixSymbol("Sigma", k, k)
    phi = sp.MatrixSymbol("phi", m, 1)
    return combine_kronecker(
        KroneckerProduct(sp.Identity(k), phi)
        * KroneckerProduct(sigma, sp.Identity(1))
        * KroneckerProduct(sp.Identity(k), phi.T)
    ), KroneckerProduct(sigma, phi * phi.T)


def check_last_layer_hessian(k: int, m: int) -> dict[str, sp.Matrix]:
    """lem-logit-jacobian and thm-closed-form-hessian for explicit symbolic W (k, m), phi (m,), b (k,).

    Returns residuals: the Jacobian minus I_k kron phi^T, the stacked Hessians of
    the logits in W, and for every label y the Hessian of the loss minus
    Sigma(p) kron phi phi^T. All zero when the statements hold.
    """
    W = symbol_matrix("w", k, m, real=True)
    phi = symbol_vector("phi", m, real=True)
    b = symbol_vector("b", k, real=True)
    z = W * phi + b
    w = list(W)  # row-major vec(W)
    p = softmax(z)
    closed = sp.kronecker_product(sigma_of(p), phi * phi.T)
    out = {
        "jacobian": z.jacobian(w) - sp.kronecker_product(sp.eye(k), phi.T),
        "logit curvature": sp.Matrix.vstack(*[sp.hessian(z_s, w) for z_s in z]),
    }
    for y in range(k):
        out[f"hessian, label {y}"] = sp.simplify(sp.hessian(cross_entropy(z, y), w) - closed)
    return out


def check_trace_identity(k: int) -> tuple[sp.Expr, sp.Expr]:
    """cor-trace: (Tr Sigma(p) - (1 - ||p||^2), Tr Sigma(p) - sum_s p_s (1 - p_s)) for softmax p in R^k."""
    p = softmax(symbol_vector("z", k, real=True))
    tr = sigma_of(p).trace()
    return sp.simplify(tr - (1 - (p.T * p)[0])), sp.simplify(tr - sum(p_s * (1 - p_s) for p_s in p))


def _probability_simplex(k: int) -> sp.Matrix:
    q = sp.symbols(f"p0:{k - 1}", positive=True)
    return sp.Matrix([*q, 1 - sum(q)])


def check_neuron_forms(k: int, m: int) -> tuple[sp.Expr, sp.Expr]:
    """prop-kappa-closed, neuron-wise: (definition - covariance form, definition - pairwise form) / ||phi||^2.

    Definition (eq-kappa-def) with Tr H_{s,s'} = Sigma_{ss'} ||phi||^2 (cor-trace);
    p on the simplex (p_k = 1 - sum of the others); symbolic w_s in R^m.
    """
    p = _probability_simplex(k)
    sigma = sigma_of(p)
    w = [symbol_vector(f"w{s}_", m, real=True) for s in range(k)]

    def dot(a: sp.Matrix, c: sp.Matrix) -> sp.Expr:
        return (a.T * c)[0]

    definition = sum(dot(w[s], w[t]) * sigma[s, t] for s in range(k) for t in range(k))
    w_bar = sum((p[s] * w[s] for s in range(k)), sp.zeros(m, 1))
    covariance = sum(p[s] * dot(w[s], w[s]) for s in range(k)) - dot(w_bar, w_bar)
    pairwise = sp.Rational(1, 2) * sum(p[s] * p[t] * dot(w[s] - w[t], w[s] - w[t]) for s in range(k) for t in range(k))
    return sp.expand(definition - covariance), sp.expand(definition - pairwise)


def check_eigen_form(k: int, m: int) -> list[tuple[sp.Matrix, int]]:
    """prop-kappa-closed, eigenvalue form: per class s, (H_ss phi - p_s (1 - p_s) ||phi||^2 phi, rank H_ss).

    H_ss = Sigma_ss phi phi^T has rank one, phi is its eigenvector with eigenvalue
    p_s (1 - p_s) ||phi||^2 >= 0, so that eigenvalue is the largest.
    """
    p = _probability_simplex(k)
    phi = symbol_vector("phi", m, positive=True)
    phi_sq = (phi.T * phi)[0]
    sigma = sigma_of(p)
    out = []
    for s in range(k):
        h_ss = sigma[s, s] * phi * phi.T
        out.append((sp.expand(h_ss * phi - p[s] * (1 - p[s]) * phi_sq * phi), h_ss.rank()))
    return out


def check_relu_homogeneity() -> list[sp.Expr]:
    """prop-rescaling-invariance: relu(lam u) - lam relu(u) for lam > 0, in the cases u > 0 and u <= 0."""
    lam = sp.Symbol("lambda", positive=True)
    cases = (sp.Symbol("u", positive=True), sp.Symbol("u", nonpositive=True))
    return [sp.simplify(sp.Max(0, lam * u) - lam * sp.Max(0, u)) for u in cases]


def check_rescaling_hessian(k: int, m: int, y: int = 0) -> sp.Matrix:
    """prop-rescaling-invariance: Hessian in U of l(U (lam phi) + b) at U = W / lam, minus lam^2 times that of
    l(W phi + b)."""
    lam = sp.Symbol("lambda", positive=True)
    W = symbol_matrix("w", k, m, real=True)
    U = symbol_matrix("u", k, m, real=True)
    phi = symbol_vector("phi", m, real=True)
    b = symbol_vector("b", k, real=True)
    h = sp.hessian(cross_entropy(W * phi + b, y), list(W))
    h_new = sp.hessian(cross_entropy(U * (lam * phi) + b, y), list(U)).subs(
        {U[s, i]: W[s, i] / lam for s in range(k) for i in range(m)}
    )
    return sp.simplify(h_new - lam**2 * h)


# ---------------------------------------------------------------------------
# Chapter loss-change: adversarial examples by loss change


def check_flip_threshold(k: int | None = None) -> dict[str, sp.Expr]:
    """prop-log-k-flip: a loss above log k forces a label flip.

    With p_y = exp(-l) < 1/k, the mean of the other k - 1 probabilities is
    (1 - p_y) / (k - 1), and (1 - p_y)/(k - 1) - p_y = (1 - k p_y) / (k - 1) > 0:
    some other class beats y. Returns, for numeric k or a symbolic k when None:
    ``gap`` = that difference minus (1 - k p_y)/(k - 1) (zero), ``sign`` = the
    factored gap at p_y = (1 - t)/k with t in (0, 1] (positive by its factors),
    ``tight`` = the loss of the uniform-but-y prediction p_y = 1/k + u minus log k
    as u -> 0+ (zero: the threshold log k cannot be lowered).
    """
    # symbolic k >= 2 written as j + 2 with j a non-negative integer, so that SymPy knows k - 1 > 0
    kk = sp.Symbol("j", integer=True, nonnegative=True) + 2 if k is None else sp.Integer(k)
    py, t = sp.Symbol("p_y", positive=True), sp.Symbol("t", positive=True)
    others_mean = (1 - py) / (kk - 1)
    gap = sp.simplify(others_mean - py - (1 - kk * py) / (kk - 1))
    sign = sp.factor(sp.simplify((others_mean - py).subs(py, (1 - t) / kk)))
    u = sp.Symbol("u", positive=True)
    tight = sp.limit(-sp.log(1 / kk + u) - sp.log(kk), u, 0, "+")
    return {"gap": gap, "sign": sign, "tight": sp.simplify(tight)}


def loss_change(z: list[float], z_new: list[float], y: int) -> dict[str, sp.Expr | int]:
    """Exact loss change and argmaxes when logits z move to z_new, label y (the reviewers' counterexamples).

    Returns ``delta`` = l(z_new) - l(z) in closed form, its float value, and the
    predicted classes before and after.
    """
    zv, zn = sp.Matrix([sp.nsimplify(v) for v in z]), sp.Matrix([sp.nsimplify(v) for v in z_new])
    # l(z') - l(z) = z_y - z'_y + log(sum_j e^{z'_j} / sum_j e^{z_j}), checked against the definition
    delta = zv[y] - zn[y] + sp.log(sum(zn.applyfunc(sp.exp)) / sum(zv.applyfunc(sp.exp)))
    assert (
        sp.simplify(sp.expand_log(delta - (cross_entropy(zn, y) - cross_entropy(zv, y)), force=True)) == 0
    )  # sums of exps > 0

    def argmax(v: list[Any]) -> int:
        return max(range(len(v)), key=lambda i: v[i])

    return {"delta": delta, "value": float(delta), "pred_before": argmax(list(zv)), "pred_after": argmax(list(zn))}


# ---------------------------------------------------------------------------
# Chapter feature-robustness


def check_feature_weight_identity(k: int | None = None, m: int | None = None) -> sp.MatrixBase:
    """eq-feature-weight: W (phi + delta A phi) - (W + delta W A) phi.

    With matrix symbols of symbolic sizes when k, m are None, explicit
    entries otherwise; zero (after expansion) when the identity holds.
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
    """lem-directional: g(t) = l(z + t u) has g' = (p - e_y).u, g'' = Var_p(u_S), g''' = E_p[(u_S - mu)^3].

    Residuals at t = 0 for symbolic z, u in R^k (the statements at any t follow by shifting z).
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
    """eq-haar-moment for O(2): E_A[A phi phi^T A^T] - ||phi||^2 / 2 I, integrating over rotations and reflections.

    O(2) is the rotations R(theta) and the reflections R(theta) diag(1, -1);
    Haar measure is uniform theta on [0, 2 pi) and a fair choice between the two.
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
    """E_A[A] over O(2) (rotations and reflections, uniform angle): the zero matrix."""
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
    """thm-expected-change: E_A[(W A phi)^T Sigma (W A phi)] - kappa_neuron / m, A Haar on O(m), for m = 2.

    The left side is built with A in it: the quadratic form is expanded in the entries of a
    symbolic A, and every monomial replaced by its Haar integral over O(2) (not by the moment
    identity the proof uses, so the check could fail if the proof were wrong). W (k, 2) and
    phi are symbols, p lies on the simplex, kappa_neuron = sum_{s,s'} <w_s, w_s'> Sigma_{ss'} ||phi||^2.
    Zero when the theorem's quadratic term holds.
    """
    if m != 2:
        raise ValueError("the Haar integral is done in closed form over O(2) only: m must be 2")
    p = _probability_simplex(k)
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
    """lem-bridging: A = I - 2 v v^T / v^T v with v = u - w is orthogonal, and A u - w = v (|w|^2 - |u|^2) / |v|^2.

    So A u = w exactly when ||u|| = ||w||. Returns both residuals (zero matrices).
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
    """lem-third-derivative: bounds on the third central moment of a variable with range R.

    ``popoviciu``: max of Var over two-point laws on [0, 1] is 1/4 (so |E(X - mu)^3| <= R Var <= R^3 / 4);
    ``bernoulli_max``: max over q of the Bernoulli third central moment q (1 - q)(1 - 2 q), 1 / (6 sqrt 3).
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
    """prop-flat-wrong (i): 2 (1 - p_j) - (1 - ||p||^2) - [(1 - p_j)^2 + sum_{s != j} p_s^2], p on the simplex (zero).

    The bracket is a sum of squares, so 1 - ||p||^2 <= 2 (1 - p_j) for every class j,
    in particular for the predicted one: a confident prediction has a small Tr H.
    """
    p = _probability_simplex(k)
    return sp.expand(
        2 * (1 - p[0]) - (1 - sum(ps**2 for ps in p)) - ((1 - p[0]) ** 2 + sum(p[s] ** 2 for s in range(1, k)))
    )


def linear_toy() -> dict[str, sp.Expr]:
    """The off-manifold profile of a linear binary classifier (chapter not-global), in closed form.

    Data on the line x_2 = 0 with label y = sign(x_1); the model's logit margin is
    f(x) = a x_1 + c x_2, a > 0; the data fix a but not c. From a point (x_1, 0), x_1 > 0,
    walk off the manifold, x(t) = (x_1, -t sgn(c)), t >= 0. With features phi = x,
    W = (w, -w) for w = (a, c)/2 (two logits), the margin is m(t) = a x_1 - |c| t and
    returns ``loss`` l(t) = log(1 + exp(-m)), ``p`` = sigma(m), ``kappa`` = ||W||_F^2 Tr H(t),
    ``flip`` = the t where m = 0, ``peak`` = the stationary points of p(1 - p),
    and the limits of loss and kappa as t -> oo.
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
