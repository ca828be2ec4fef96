"""The closed forms of flatrob.flatness against torch.func autograd Hessians (float64)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flatrob import flatness

DT = torch.float64


def random_layer(k, m, n, seed, logit_scale=1.0, bias=True, dtype=DT):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(k, m, generator=g, dtype=dtype) * logit_scale
    phi = torch.randn(n, m, generator=g, dtype=dtype).abs()  # ReLU features are non-negative
    b = torch.randn(k, generator=g, dtype=dtype) if bias else None
    y = torch.randint(0, k, (n,), generator=g)
    return W, phi, b, y


shapes = dict(
    k=st.integers(2, 6),
    m=st.integers(1, 7),
    n=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
    logit_scale=st.sampled_from([0.1, 1.0, 3.0]),
    bias=st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(**shapes)
def test_hessian_equals_autograd(k, m, n, seed, logit_scale, bias):
    W, phi, b, y = random_layer(k, m, n, seed, logit_scale, bias)
    closed = flatness.last_layer_hessian(W, phi, b)
    auto = flatness.autograd_last_layer_hessian(W, phi, b, y)
    assert closed.shape == (n, k * m, k * m)
    torch.testing.assert_close(closed, auto, rtol=1e-10, atol=1e-13)


@settings(max_examples=60, deadline=None)
@given(**shapes, kind=st.sampled_from(flatness.KINDS))
def test_sharpness_equals_definition_on_autograd_hessian(k, m, n, seed, logit_scale, bias, kind):
    W, phi, b, y = random_layer(k, m, n, seed, logit_scale, bias)
    ref = flatness.autograd_relative_sharpness(W, phi, b, kind, y)
    val = flatness.relative_sharpness(W, phi, b, kind)
    assert val.shape == (n,)
    torch.testing.assert_close(val, ref, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(
        flatness.hessian_trace(W, phi, b),
        torch.diagonal(flatness.autograd_last_layer_hessian(W, phi, b, y), dim1=1, dim2=2).sum(-1),
        rtol=1e-10,
        atol=1e-13,
    )


@settings(max_examples=30, deadline=None)
@given(k=st.integers(2, 6), m=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_label_independence(k, m, seed):
    W, phi, b, y = random_layer(k, m, 3, seed)
    hessians = [flatness.autograd_last_layer_hessian(W, phi, b, torch.full((3,), c)) for c in range(k)]
    for h in hessians[1:]:
        torch.testing.assert_close(h, hessians[0], rtol=1e-12, atol=1e-14)


def test_layer_and_neuron_forms():
    W, phi, b, _ = random_layer(5, 4, 16, seed=3)
    p = torch.softmax(flatness.logits_of(W, phi, b), -1)
    phi_sq = phi.pow(2).sum(-1)
    layer = W.pow(2).sum() * phi_sq * (1 - p.pow(2).sum(-1))
    w_bar = p @ W  # (n, m)
    covariance = phi_sq * ((p * W.pow(2).sum(-1)).sum(-1) - w_bar.pow(2).sum(-1))
    eigen = phi_sq * (p * (1 - p) * W.pow(2).sum(-1)).sum(-1)
    torch.testing.assert_close(flatness.relative_sharpness(W, phi, b, "layer"), layer)
    torch.testing.assert_close(flatness.relative_sharpness(W, phi, b, "neuron"), covariance)
    torch.testing.assert_close(flatness.relative_sharpness(W, phi, b, "eigen"), eigen)
    # the two forms differ in general: ||W||^2 (1-||p||^2) is not tr Cov(w)
    assert not torch.allclose(layer, covariance)


def test_hessian_is_psd():
    W, phi, b, _ = random_layer(4, 3, 8, seed=5, logit_scale=2.0)
    eig = torch.linalg.eigvalsh(flatness.last_layer_hessian(W, phi, b))
    assert eig.min() > -1e-12


def test_saturation_keeps_digits():
    # logits (a, 0): 1 - ||p||^2 = 2 e^{-a} / (1 + e^{-a})^2, about 8.5e-18 for a = 40 in float64,
    # where the naive 1 - ||p||^2 is exactly 0.
    a = 40.0
    W = torch.tensor([[1.0], [0.0]], dtype=DT)
    phi = torch.tensor([[a]], dtype=DT)
    exact = a**2 * 2 * math.exp(-a) / (1 + math.exp(-a)) ** 2
    naive = a**2 * float(1 - torch.softmax(flatness.logits_of(W, phi), -1).pow(2).sum())
    assert naive == 0.0
    assert float(flatness.hessian_trace(W, phi)) == pytest.approx(exact, rel=1e-12)
    # neuron form: ||phi||^2 p0 p1 ||w0 - w1||^2
    assert float(flatness.relative_sharpness(W, phi, kind="neuron")) == pytest.approx(exact / 2, rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", flatness.KINDS)
def test_extreme_logits_are_finite(dtype, kind):
    g = torch.Generator().manual_seed(0)
    W = torch.randn(10, 8, generator=g, dtype=dtype)
    phi = torch.randn(64, 8, generator=g, dtype=dtype)
    phi = (
        phi / flatness.logits_of(W, phi).abs().amax(-1, keepdim=True) * torch.logspace(-2, 4, 64, dtype=dtype)[:, None]
    )
    assert float(flatness.logits_of(W, phi).abs().max()) == pytest.approx(1e4, rel=1e-3)
    val = flatness.relative_sharpness(W, phi, kind=kind)
    assert val.dtype == dtype and torch.isfinite(val).all() and (val >= 0).all()


@pytest.mark.parametrize("kind", flatness.KINDS)
def test_float32_matches_float64(kind):
    W, phi, b, _ = random_layer(10, 32, 50, seed=11)
    v64 = flatness.relative_sharpness(W, phi, b, kind)
    v32 = flatness.relative_sharpness(W.float(), phi.float(), b.float(), kind)
    torch.testing.assert_close(v32.double(), v64, rtol=1e-4, atol=1e-6)


def test_batched_equals_per_sample_and_logits_shortcut():
    W, phi, b, _ = random_layer(6, 5, 9, seed=2)
    for kind in flatness.KINDS:
        batched = flatness.relative_sharpness(W, phi, b, kind)
        single = torch.cat([flatness.relative_sharpness(W, phi[i : i + 1], b, kind) for i in range(9)])
        torch.testing.assert_close(batched, single)
        via_logits = flatness.relative_sharpness(W, phi, b, kind, logits=flatness.logits_of(W, phi, b))
        torch.testing.assert_close(batched, via_logits)
    given_d = flatness.relative_sharpness(W, phi, b, "neuron", dist_sq=flatness.pairwise_sq_distances(W))
    torch.testing.assert_close(flatness.relative_sharpness(W, phi, b, "neuron"), given_d)
    d = flatness.pairwise_sq_distances(W)
    assert torch.equal(torch.diagonal(d), torch.zeros(6, dtype=W.dtype))  # exact zeros: no Gram-matrix cancellation
    # the distances are cached per tensor and version: an in-place change of W is seen
    before = flatness.relative_sharpness(W, phi, b, "neuron")
    assert flatness._distances(W) is flatness._distances(W)
    W.mul_(2.0)
    torch.testing.assert_close(
        flatness.relative_sharpness(W, phi, b, "neuron"),
        flatness._neuron(
            torch.softmax(flatness.logits_of(W, phi, b), -1),
            flatness.squared_norms(phi),
            flatness.pairwise_sq_distances(W),
        ),
    )
    assert not torch.allclose(flatness.relative_sharpness(W, phi, b, "neuron"), before)
    W.div_(2.0)
    # where autograd must see it, it is not cached: gradients flow through the distances
    Wg = W.clone().requires_grad_(True)
    flatness.relative_sharpness(Wg, phi, b, "neuron").sum().backward()
    assert Wg.grad is not None and Wg.grad.abs().sum() > 0
    torch.testing.assert_close(d, (W[:, None] - W[None]).pow(2).sum(-1))


def test_dataset_level_is_the_sharpness_of_the_mean_loss():
    W, phi, b, y = random_layer(4, 3, 7, seed=9)

    def mean_loss(weight):
        return torch.nn.functional.cross_entropy(flatness.logits_of(weight, phi, b), y)

    H = torch.func.hessian(mean_loss)(W).reshape(1, 12, 12)
    for kind in flatness.KINDS:  # every form equals the definition applied to the Hessian of the mean loss
        torch.testing.assert_close(
            flatness.relative_sharpness_dataset(W, phi, b, kind), flatness.kappa_from_hessian(W, H, kind)[0]
        )
    # the mean of the per-sample eigenvalue forms is only an upper bound (prop-kappa-dataset), here a strict one
    per_sample_mean = flatness.relative_sharpness(W, phi, b, "eigen").mean()
    assert flatness.relative_sharpness_dataset(W, phi, b, "eigen") < per_sample_mean
    # the Gram form (more features than samples) gives the same eigenvalues
    W2, phi2, b2, y2 = random_layer(3, 9, 4, seed=1)

    def mean_loss2(weight):
        return torch.nn.functional.cross_entropy(flatness.logits_of(weight, phi2, b2), y2)

    H2 = torch.func.hessian(mean_loss2)(W2).reshape(1, 27, 27)
    torch.testing.assert_close(
        flatness.relative_sharpness_dataset(W2, phi2, b2, "eigen"), flatness.kappa_from_hessian(W2, H2, "eigen")[0]
    )


def test_bad_arguments_fail_clearly():
    W, phi, b, _ = random_layer(3, 4, 2, seed=0)
    with pytest.raises(ValueError, match="kind must be one of"):
        flatness.relative_sharpness(W, phi, b, kind="trace")
    with pytest.raises(ValueError, match="m=3 columns but weight has m=4"):
        flatness.relative_sharpness(W, phi[:, :3], b)
    with pytest.raises(ValueError, match=r"features must have shape \(n, m\)"):
        flatness.relative_sharpness(W, phi[0], b)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        flatness.hessian_trace(W, phi, b[:2])
    with pytest.raises(ValueError, match="hess must have shape"):
        flatness.kappa_from_hessian(W, torch.zeros(1, 5, 5, dtype=DT))


def test_mismatched_arguments_are_named_with_the_fix():
    W, phi, b, _ = random_layer(3, 4, 2, seed=0)
    with pytest.raises(TypeError, match="one dtype.*weight torch.float32, features torch.float64.*features.to"):
        flatness.relative_sharpness(W.float(), phi, None)
    with pytest.raises(TypeError, match="features must be a torch.Tensor; got ndarray.*torch.as_tensor"):
        flatness.relative_sharpness(W, phi.numpy(), b)
    with pytest.raises(TypeError, match="bias must be a torch.Tensor; got list"):
        flatness.hessian_trace(W, phi, b.tolist())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    W, phi, b, _ = random_layer(10, 64, 32, seed=4)
    for kind in flatness.KINDS:
        torch.testing.assert_close(
            flatness.relative_sharpness(W.cuda(), phi.cuda(), b.cuda(), kind).cpu(),
            flatness.relative_sharpness(W, phi, b, kind),
        )
