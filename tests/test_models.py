"""The model zoo, the last layer of any model (torchvision's included), scaling and rescaling it."""

import math

import pytest
import torch

from flatrob import flatness
from flatrob.models import (
    DigitsCNN,
    last_layer_inputs,
    last_linear,
    log_loss_increase,
    rescale_feature_layer,
    scale_last_layer,
    scaled_log_losses,
    scaled_losses,
)
from flatrob.zoo import ARCHITECTURES, build_model, fits


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_model_zoo_interface(name):
    shape = {
        "small-cnn": (1, 28, 28),
        "wide-cnn": (1, 28, 28),
        "digits-cnn": (1, 8, 8),
        "mnist1d-cnn": (1, 40),
        "mlp": (1, 40),
    }.get(name, (3, 32, 32))
    torch.manual_seed(0)
    model = build_model(name, 10, shape).eval()
    x = torch.rand(2, *shape)
    logits, phi = model.forward_with_features(x)
    assert logits.shape == (2, 10) and phi.dim() == 2
    torch.testing.assert_close(model.classifier(phi), logits)
    torch.testing.assert_close(model(x), logits)


def test_model_zoo_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="needs inputs of shape"):
        build_model("resnet18", 10, (1, 4, 4))
    with pytest.raises(ValueError, match="needs inputs of shape \\(1, 28, 28\\)"):
        build_model("small-cnn", 10, (1, 8, 8))
    with pytest.raises(ValueError, match="needs inputs of shape"):
        build_model("vgg11-bn", 10, (1, 28, 28))  # five poolings need 32x32
    with pytest.raises(ValueError, match="architecture must be one of"):
        build_model("resnet50", 10, (3, 32, 32))


def test_scale_last_layer():
    torch.manual_seed(0)
    model = DigitsCNN().eval()
    x = torch.rand(16, 1, 8, 8)
    with torch.no_grad():
        z = model(x)
        for s in (0.25, 10.0):
            z_s = scale_last_layer(model, s)(x)
            torch.testing.assert_close(z_s, s * z)  # bias scaled too: logits scale, arg-max unchanged
            z_nb = scale_last_layer(model, s, scale_bias=False)(x)
            torch.testing.assert_close(z_nb, s * (z - model.classifier.bias) + model.classifier.bias)
    with pytest.raises(ValueError):
        scale_last_layer(model, 0)


def test_rescaling_preserves_function_and_relative_sharpness():
    torch.manual_seed(0)
    model = DigitsCNN(channels=4, width=16).double()
    x = torch.rand(20, 1, 8, 8, dtype=torch.float64)
    W, b, phi = last_layer_inputs(model, x)
    for lam in (0.1, 7.0):
        other = rescale_feature_layer(model, lam)
        torch.testing.assert_close(other(x), model(x))
        W2, b2, phi2 = last_layer_inputs(other, x)
        torch.testing.assert_close(phi2, lam * phi)
        for kind in flatness.KINDS:
            torch.testing.assert_close(
                flatness.relative_sharpness(W2, phi2, b2, kind), flatness.relative_sharpness(W, phi, b, kind)
            )
        torch.testing.assert_close(flatness.hessian_trace(W2, phi2, b2), lam**2 * flatness.hessian_trace(W, phi, b))
    with pytest.raises(ValueError, match="lam must be positive"):
        rescale_feature_layer(model, 0.0)


def test_last_linear_of_any_model():
    model = DigitsCNN()
    assert last_linear(model) is model.classifier
    plain = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    assert last_linear(plain) is plain[2]
    with pytest.raises(TypeError, match="no nn.Linear"):
        last_linear(torch.nn.ReLU())


def test_fits_says_why_before_any_model_is_built():
    assert fits("small-cnn", (1, 28, 28)) == "" and fits("mlp", (1, 40)) == ""
    assert "needs inputs of shape (1, 28, 28); the data have (1, 8, 8)" in fits("small-cnn", (1, 8, 8))
    assert "architecture must be one of" in fits("resnet50", (3, 32, 32))


def test_relative_sharpness_of_a_torchvision_resnet_without_surgery():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    net = resnet18(num_classes=10).eval()
    x = torch.rand(3, 3, 32, 32)
    W, b, phi = last_layer_inputs(net, x)
    assert W.shape == (10, 512) and phi.shape == (3, 512) and W is not net.fc.weight
    with torch.no_grad():
        torch.testing.assert_close(torch.nn.functional.linear(phi, W, b), net(x), rtol=1e-5, atol=1e-5)
    kappa = flatness.relative_sharpness(W, phi, b)
    assert kappa.shape == (3,) and bool((kappa > 0).all())
    assert not net.fc._forward_pre_hooks  # the hook is removed again


def test_scaled_losses_in_float64():
    torch.manual_seed(0)
    model = DigitsCNN().eval()
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    losses = scaled_losses(model, x, y, [1.0, 50.0])
    assert losses.shape == (2, 8) and losses.dtype == torch.float64
    with torch.no_grad():
        ref = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
    torch.testing.assert_close(losses[0].float(), ref, rtol=1e-5, atol=1e-6)


def test_log_losses_match_float64_and_go_on_where_the_loss_underflows():
    torch.manual_seed(0)
    model = DigitsCNN().eval()
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    scales = [0.25, 1.0, 5.0, 5000.0]
    logs, plain = scaled_log_losses(model, x, y, scales), scaled_losses(model, x, y, scales)
    assert logs.shape == (4, 16) and logs.dtype == torch.float64
    ok = plain > 1e-250  # where float64 still holds the loss, the two agree
    torch.testing.assert_close(logs[ok], plain[ok].log(), rtol=1e-9, atol=1e-9)
    # at s = 5000 every correct point's loss underflows to 0, its logarithm is finite and linear in s:
    _, _, phi = last_layer_inputs(model, x, dtype=torch.float64)
    w, b, _ = last_layer_inputs(model, x, dtype=torch.float64)
    z = torch.nn.functional.linear(phi, w, b)
    right = z.argmax(1) == y
    if right.any():
        assert bool((plain[-1][right] == 0).all()) and bool(logs[-1][right].isfinite().all())
        gap = (
            z[right].gather(1, y[right][:, None]) - z[right].scatter(1, y[right][:, None], -1e300).amax(1, keepdim=True)
        ).squeeze(1)  # the top two logits' gap
        torch.testing.assert_close(logs[-1][right] / 5000.0, -gap, rtol=1e-3, atol=1e-3)
    # the increase's logarithm, from the logarithms alone
    before, after = torch.tensor([1e-3, 0.5, 2.0]).double(), torch.tensor([2e-3, 0.5, 1.0]).double()
    inc = log_loss_increase(after.log(), before.log())
    torch.testing.assert_close(inc[0], torch.tensor(1e-3).double().log())
    assert inc[1] == -float("inf") and inc[2] == -float("inf")  # no rise: no increase to take the log of
    tiny = log_loss_increase(torch.tensor([-1000.0]).double(), torch.tensor([-1001.0]).double())
    torch.testing.assert_close(tiny, torch.tensor([-1000.0 + math.log1p(-math.exp(-1.0))]).double())


def test_the_vision_transformer_meets_the_closed_forms_assumptions():
    """The ViT's head is an nn.Linear on features(x), the class token's final output: the last-layer closed form
    applies unchanged, and equals autograd's Hessian of the head in float64."""
    from flatrob import relative_sharpness
    from flatrob.flatness import autograd_relative_sharpness
    from flatrob.models import last_layer_inputs

    torch.manual_seed(0)
    model = build_model("vit", 10, (1, 28, 28)).double().eval()
    assert isinstance(model.classifier, torch.nn.Linear) and model.classifier.in_features == 64
    x = torch.rand(5, 1, 28, 28, dtype=torch.float64)
    logits, phi = model.forward_with_features(x)
    torch.testing.assert_close(model.classifier(model.features(x)), logits, rtol=0, atol=0)
    w, b, feats = last_layer_inputs(model, x)
    torch.testing.assert_close(feats, phi)
    for kind in ("layer", "neuron"):
        torch.testing.assert_close(
            relative_sharpness(w, feats, b, kind=kind), autograd_relative_sharpness(w, feats, b, kind=kind)
        )
    # attention mixes the tokens: an input patch changes the class token's features (the curvature below the head
    # that the last-layer theory does not cover)
    x2 = x.clone()
    x2[:, :, :7, :7] += 0.5
    assert (model.features(x2) - phi).abs().max() > 1e-3
    assert fits("vit", (3, 32, 32)) == "" and "vit" in fits("vit", (1, 30, 30))
