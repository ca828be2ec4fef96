"""Classifiers with a common interface: ``features(x) -> phi`` and a findable last layer.

Every model is a :class:`FeatureClassifier`: ``forward(x) = classifier(features(x))``
where ``classifier`` is an ``nn.Linear`` with weight ``W`` of shape (k, m).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

__all__ = ["DigitsCNN", "FeatureClassifier", "last_layer_inputs", "last_linear", "rescale_feature_layer"]


class FeatureClassifier(nn.Module):
    """Base class. Subclasses set ``self.body`` (x -> phi, ending in a ReLU) and ``self.classifier``."""

    body: nn.Module
    classifier: nn.Linear

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features phi(x): (n, *input_shape) -> (n, m)."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits: (n, *input_shape) -> (n, k)."""
        return self.classifier(self.features(x))

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """One pass returning (logits (n, k), phi (n, m))."""
        phi = self.features(x)
        return self.classifier(phi), phi


class DigitsCNN(FeatureClassifier):
    """A small CNN for 8x8 single-channel images (scikit-learn digits).

    conv3x3(1->c) ReLU conv3x3(c->2c) ReLU maxpool2 -> flatten -> Linear(8c -> m) ReLU -> Linear(m -> k).
    """

    def __init__(self, n_classes: int = 10, channels: int = 16, width: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * channels * 16, width),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(width, n_classes)


def last_linear(model: nn.Module) -> nn.Linear:
    """The last layer ``W`` (an ``nn.Linear``) of a :class:`FeatureClassifier`."""
    layer = getattr(model, "classifier", None)
    if not isinstance(layer, nn.Linear):
        raise TypeError(f"{type(model).__name__} has no nn.Linear attribute 'classifier'")
    return layer


@torch.no_grad()
def rescale_feature_layer(model: FeatureClassifier, lam: float) -> FeatureClassifier:
    """The layer-rescaling symmetry of ReLU nets (chapter relative-flatness).

    Returns a copy in which the last ``nn.Linear`` of the body (weight and bias)
    is multiplied by ``lam > 0`` and the classifier weight divided by ``lam``.
    Since ReLU is positively homogeneous, phi -> lam phi and W phi is unchanged:
    the copy computes the same function.
    """
    if lam <= 0:
        raise ValueError(f"lam must be positive; got {lam}")
    out = copy.deepcopy(model)
    body = out.body
    if not (
        isinstance(body, nn.Sequential)
        and len(body) >= 2
        and isinstance(body[-1], nn.ReLU)
        and isinstance(body[-2], nn.Linear)
    ):
        raise TypeError("rescale_feature_layer needs a body that ends in nn.Linear followed by nn.ReLU")
    body[-2].weight.mul_(lam)
    if body[-2].bias is not None:
        body[-2].bias.mul_(lam)
    last_linear(out).weight.div_(lam)
    return out


@torch.no_grad()
def last_layer_inputs(
    model: FeatureClassifier, x: Tensor, dtype: torch.dtype | None = None, batch_size: int = 1024
) -> tuple[Tensor, Tensor | None, Tensor]:
    """``(W (k, m), b (k,) or None, phi (n, m))`` of a model on inputs x (n, ...), on the CPU.

    With ``dtype`` (for example ``torch.float64``) all three are cast, so that the
    closed forms and their autograd references can be compared in double precision.
    """
    model.eval()
    device = next(model.parameters()).device
    phi = torch.cat([model.features(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])
    layer = last_linear(model)
    w = layer.weight.detach().cpu()
    b = None if layer.bias is None else layer.bias.detach().cpu()
    if dtype is not None:
        w, phi = w.to(dtype), phi.to(dtype)
        b = None if b is None else b.to(dtype)
    return w, b, phi
