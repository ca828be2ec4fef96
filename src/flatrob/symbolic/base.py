"""The symbols and functions every derivation shares: symbolic vectors and matrices, softmax, cross-entropy,
Sigma(p), and the test of a residual for zero."""

from __future__ import annotations

import sympy as sp

__all__ = [
    "probability_simplex",
    "cross_entropy",
    "is_zero",
    "sigma_of",
    "softmax",
    "symbol_matrix",
    "symbol_vector",
]


def symbol_vector(name: str, n: int, **assumptions: bool) -> sp.Matrix:
    """Column vector (n, 1) of symbols ``name0 .. name{n-1}``.

    Args:
        name: the symbols' stem.
        n: the length.
        assumptions: SymPy assumptions (``real=True``, ...).

    Returns:
        The column vector of symbols, (n, 1).
    """
    return sp.Matrix(n, 1, lambda i, _: sp.Symbol(f"{name}{i}", **assumptions))


def symbol_matrix(name: str, rows: int, cols: int, **assumptions: bool) -> sp.Matrix:
    """Matrix (rows, cols) of symbols ``name{r}{c}``.

    Args:
        name: the symbols' stem.
        rows: rows.
        cols: columns.
        assumptions: SymPy assumptions (``real=True``, ...).

    Returns:
        The matrix of symbols, (rows, cols).
    """
    return sp.Matrix(rows, cols, lambda r, c: sp.Symbol(f"{name}{r}{c}", **assumptions))


def softmax(z: sp.Matrix) -> sp.Matrix:
    """p_s = exp(z_s) / sum_j exp(z_j) for a column vector z (k, 1).

    Args:
        z: logits, a column vector (k, 1).

    Returns:
        The probabilities p, a column vector (k, 1).
    """
    e = z.applyfunc(sp.exp)
    return e / sum(e)


def cross_entropy(z: sp.Matrix, y: int) -> sp.Expr:
    """l = -log softmax(z)_y = -z_y + log sum_j exp(z_j).

    Args:
        z: logits, a column vector (k, 1).
        y: the label.

    Returns:
        The loss l(z, y) as an expression.
    """
    return -(z[y] - sp.log(sum(sp.exp(z_j) for z_j in z)))


def sigma_of(p: sp.Matrix) -> sp.Matrix:
    """Sigma(p) = diag(p) - p p^T (:eq:`eq-hessian-logits`).

    Args:
        p: probabilities, a column vector (k, 1).

    Returns:
        The matrix Sigma(p), (k, k).
    """
    return sp.diag(*p) - p * p.T


def is_zero(residual: sp.MatrixBase | sp.Expr) -> bool:
    """True when a residual returned by a ``check_*`` function is exactly zero.

    Args:
        residual: a residual of a ``check_*`` function (an expression or a matrix).

    Returns:
        True when it simplifies to exactly zero.
    """
    if isinstance(residual, sp.MatrixBase):
        return bool(residual == sp.zeros(*residual.shape))
    return bool(residual == 0)


def probability_simplex(k: int) -> sp.Matrix:
    """A point of the probability simplex in symbols: p_0 .. p_{k-2} positive and p_{k-1} = 1 - their sum.

    Args:
        k: the number of classes.

    Returns:
        The column vector p, (k, 1).
    """
    q = sp.symbols(f"p0:{k - 1}", positive=True)
    return sp.Matrix([*q, 1 - sum(q)])
