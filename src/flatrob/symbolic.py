"""SymPy derivations behind the book's closed forms.

Each ``check_*`` function builds both sides of one identity from symbols,
returns the simplified difference (zero when the identity holds) and is called
by the book's chapters and by the tests alike. The labels name the boxes and
equations of the book.
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.kronecker import KroneckerProduct, combine_kronecker

__all__ = [
    "check_eigen_form",
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
    dot = lambda a, c: (a.T * c)[0]  # noqa: E731
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
    """prop-rescaling-invariance: Hessian in U of l(U (lam phi) + b) at U = W / lam, minus lam^2 times that of l(W phi + b)."""
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

