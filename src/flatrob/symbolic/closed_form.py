"""The derivations of the closed form (chapters closed-form, relative-flatness, loss-change): the logits' Hessian,
the last layer's Hessian, the trace identity, the neuron-wise and eigenvalue forms, the rescaling invariance, the flip
threshold and the reviewers' counterexamples."""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.matrices.expressions.kronecker import KroneckerProduct, combine_kronecker

from flatrob.symbolic.base import cross_entropy, probability_simplex, sigma_of, softmax, symbol_matrix, symbol_vector

__all__ = [
    "check_eigen_form",
    "check_flip_threshold",
    "check_kronecker_mixed_product",
    "check_last_layer_hessian",
    "check_logit_hessian",
    "check_neuron_forms",
    "check_relu_homogeneity",
    "check_rescaling_hessian",
    "check_trace_identity",
    "loss_change",
]


def check_logit_hessian(k: int) -> dict[int, tuple[sp.Matrix, sp.Matrix]]:
    """:prf:ref:`lem-logit-hessian`: for every label y, (grad_z l - (p - e_y), hess_z l - Sigma(p)), simplified.

    Fully symbolic logits z in R^k. Both residuals are zero matrices when the lemma holds.

    Args:
        k: k, the number of classes.

    Returns:
        Per label y, the pair of residuals (gradient (k, 1), Hessian (k, k)), zero when the lemma holds.
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
    """:prf:ref:`thm-closed-form-hessian`, general sizes: the mixed-product step.

    With matrix symbols of symbolic sizes k and m, returns
    ``(combine_kronecker((I_k kron phi)(Sigma kron 1)(I_k kron phi^T)), Sigma kron phi phi^T)``;
    the step holds when the two are equal.

    Returns:
        The two sides of the step, equal when it holds.
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
    """:prf:ref:`lem-logit-jacobian` and :prf:ref:`thm-closed-form-hessian` for explicit symbolic W (k, m), phi (m,),
    b (k,).

    Returns residuals: the Jacobian minus I_k kron phi^T, the stacked Hessians of
    the logits in W, and for every label y the Hessian of the loss minus
    Sigma(p) kron phi phi^T. All zero when the statements hold.

    Args:
        k: k, the number of classes.
        m: m, the number of features.

    Returns:
        The residuals by name (the Jacobian, the logits' Hessians, the loss's Hessian per label), zero matrices.
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
    """:prf:ref:`cor-trace`: (Tr Sigma(p) - (1 - ||p||^2), Tr Sigma(p) - sum_s p_s (1 - p_s)) for softmax p in R^k.

    Args:
        k: k, the number of classes.

    Returns:
        The two residuals, zero when the corollary holds.
    """
    p = softmax(symbol_vector("z", k, real=True))
    tr = sigma_of(p).trace()
    return sp.simplify(tr - (1 - (p.T * p)[0])), sp.simplify(tr - sum(p_s * (1 - p_s) for p_s in p))


def check_neuron_forms(k: int, m: int) -> tuple[sp.Expr, sp.Expr]:
    """:prf:ref:`prop-kappa-closed`, neuron-wise: (definition - covariance form, definition - pairwise form) /
    ||phi||^2.

    Definition (:eq:`eq-kappa-def`) with Tr H_{s,s'} = Sigma_{ss'} ||phi||^2 (:prf:ref:`cor-trace`);
    p on the simplex (p_k = 1 - sum of the others); symbolic w_s in R^m.

    Args:
        k: k, the number of classes.
        m: m, the number of features.

    Returns:
        The two residuals (against the covariance form and the pairwise form), zero when the proposition holds.
    """
    p = probability_simplex(k)
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
    """:prf:ref:`prop-kappa-closed`, eigenvalue form: per class s, (H_ss phi - p_s (1 - p_s) ||phi||^2 phi, rank H_ss).

    H_ss = Sigma_ss phi phi^T has rank one, phi is its eigenvector with eigenvalue
    p_s (1 - p_s) ||phi||^2 >= 0, so that eigenvalue is the largest.

    Args:
        k: k, the number of classes.
        m: m, the number of features.

    Returns:
        One pair per class s, the eigenvector residual (m, 1) and the rank of H_ss.
    """
    p = probability_simplex(k)
    phi = symbol_vector("phi", m, positive=True)
    phi_sq = (phi.T * phi)[0]
    sigma = sigma_of(p)
    out = []
    for s in range(k):
        h_ss = sigma[s, s] * phi * phi.T
        out.append((sp.expand(h_ss * phi - p[s] * (1 - p[s]) * phi_sq * phi), h_ss.rank()))
    return out


def check_relu_homogeneity() -> list[sp.Expr]:
    """:prf:ref:`prop-rescaling-invariance`: relu(lam u) - lam relu(u) for lam > 0, in the cases u > 0 and u <= 0.

    Returns:
        The residuals for u > 0 and u <= 0, each zero.
    """
    lam = sp.Symbol("lambda", positive=True)
    cases = (sp.Symbol("u", positive=True), sp.Symbol("u", nonpositive=True))
    return [sp.simplify(sp.Max(0, lam * u) - lam * sp.Max(0, u)) for u in cases]


def check_rescaling_hessian(k: int, m: int, y: int = 0) -> sp.Matrix:
    """:prf:ref:`prop-rescaling-invariance`: Hessian in U of l(U (lam phi) + b) at U = W / lam, minus lam^2 times
    that of l(W phi + b).

    Args:
        k: k, the number of classes.
        m: m, the number of features.
        y: the label.

    Returns:
        The residual Hessian (k m, k m), zero when the proposition holds.
    """
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
    """:prf:ref:`prop-log-k-flip`: a loss above log k forces a label flip.

    With p_y = exp(-l) < 1/k, the mean of the other k - 1 probabilities is
    (1 - p_y) / (k - 1), and (1 - p_y)/(k - 1) - p_y = (1 - k p_y) / (k - 1) > 0:
    some other class beats y. Returns, for numeric k or a symbolic k when None:
    ``gap`` = that difference minus (1 - k p_y)/(k - 1) (zero), ``sign`` = the
    factored gap at p_y = (1 - t)/k with t in (0, 1] (positive by its factors),
    ``tight`` = the loss of the uniform-but-y prediction p_y = 1/k + u minus log k
    as u -> 0+ (zero: the threshold log k cannot be lowered).

    Args:
        k: k, or None for a symbolic k.

    Returns:
        The expressions of the proof by name (``gap`` and the conditions), as the proposition uses them.
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

    Args:
        z: the logits before, length k.
        z_new: the logits after, length k.
        y: the label.

    Returns:
        The exact change ``delta`` = l(z_new) - l(z), its float value and the predicted classes before and
        after, by name.
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
