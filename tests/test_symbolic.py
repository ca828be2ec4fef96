"""The SymPy derivations of the book (flatrob.symbolic), each must give a zero residual."""

import pytest
import sympy as sp

from flatrob import symbolic


@pytest.mark.parametrize("k", [2, 3, 4])
def test_logit_hessian_every_label(k):
    residuals = symbolic.check_logit_hessian(k)
    assert set(residuals) == set(range(k))
    assert all(symbolic.is_zero(g) and symbolic.is_zero(h) for g, h in residuals.values())


def test_kronecker_mixed_product_general_sizes():
    combined, expected = symbolic.check_kronecker_mixed_product()
    assert combined == expected


@pytest.mark.parametrize("k,m", [(2, 2), (3, 2)])
def test_last_layer_hessian_kronecker(k, m):
    residuals = symbolic.check_last_layer_hessian(k, m)
    assert len(residuals) == 2 + k
    assert all(symbolic.is_zero(r) for r in residuals.values())


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_trace_identity(k):
    assert all(symbolic.is_zero(r) for r in symbolic.check_trace_identity(k))


@pytest.mark.parametrize("k,m", [(2, 1), (3, 2), (4, 3)])
def test_neuron_and_eigen_forms(k, m):
    assert all(symbolic.is_zero(r) for r in symbolic.check_neuron_forms(k, m))
    assert all(symbolic.is_zero(r) and rank == 1 for r, rank in symbolic.check_eigen_form(k, m))


def test_rescaling():
    assert all(symbolic.is_zero(r) for r in symbolic.check_relu_homogeneity())
    assert symbolic.is_zero(symbolic.check_rescaling_hessian(2, 2))


def test_is_zero_detects_nonzero():
    z = symbolic.symbol_vector("z", 2, real=True)
    assert not symbolic.is_zero(z)
    assert not symbolic.is_zero(sp.Symbol("x"))
    assert symbolic.is_zero(sp.zeros(2, 2))
