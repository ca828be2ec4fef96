"""The networks by name: :data:`ARCHITECTURES` (what :func:`build_model` builds and a chapter's ``architecture``
accepts), the small residual networks with batch norm that reach the paper's regime on the CPU
(``RESIDUAL_FAMILY``, with batch norm or residual connections taken out for the valley-conditions study), and the
paper's own networks with their CIFAR stems (ResNet-18, WideResNet-28-4, DenseNet-121, VGG-11-BN).

Every network is a :class:`~flatrob.models.FeatureClassifier`: ``features`` give the penultimate ``phi`` and the last
``nn.Linear`` gives the logits, so the closed forms of :mod:`flatrob.flatness` apply to all of them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from flatrob.models import MLP, MNIST1DCNN, DigitsCNN, FeatureClassifier, SmallCNN, _Wrapped

__all__ = [
    "ARCHITECTURES",
    "PAPER_KIND",
    "RESIDUAL_FAMILY",
    "architecture_traits",
    "build_model",
    "densenet121_cifar",
    "fits",
    "resnet18_cifar",
    "vgg11_bn_cifar",
    "vit_small",
    "wide_resnet_cifar",
]


def resnet18_cifar(n_classes: int = 10, in_channels: int = 3) -> FeatureClassifier:
    """torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 first convolution, no max-pool); m = 512.

    Any input size of at least 8x8 (global average pooling): 32x32 CIFAR, 28x28 Fashion-MNIST with ``in_channels=1``.

    Args:
        n_classes: k.
        in_channels: 3 for colour, 1 for grey.

    Returns:
        A :class:`~flatrob.models.FeatureClassifier` with phi of shape (n, 512).
    """
    from torchvision.models import resnet18

    net = resnet18(num_classes=n_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
    body = nn.Sequential(
        net.conv1, net.bn1, net.relu, net.layer1, net.layer2, net.layer3, net.layer4, net.avgpool, nn.Flatten()
    )
    return _Wrapped(body, net.fc)


def vgg11_bn_cifar(n_classes: int = 10, in_channels: int = 3) -> FeatureClassifier:
    """torchvision's VGG-11-BN convolutional stack; for 32x32 inputs it ends at 1x1x512, then Linear(512 -> k).

    Args:
        n_classes: k.
        in_channels: 3 for colour, 1 for grey.

    Returns:
        A :class:`~flatrob.models.FeatureClassifier` with phi of shape (n, 512) for 32x32 inputs.
    """
    from torchvision.models import vgg11_bn

    features = vgg11_bn().features
    features[0] = nn.Conv2d(in_channels, 64, 3, padding=1)
    return _Wrapped(nn.Sequential(features, nn.Flatten()), nn.Linear(512, n_classes))


def densenet121_cifar(n_classes: int = 10, in_channels: int = 3) -> FeatureClassifier:
    """torchvision's DenseNet-121 with a 3x3 stride-1 stem and no initial pooling; m = 1024.

    Args:
        n_classes: k.
        in_channels: 3 for colour, 1 for grey.

    Returns:
        A :class:`~flatrob.models.FeatureClassifier` with phi of shape (n, 1024).
    """
    from torchvision.models import densenet121

    net = densenet121(num_classes=n_classes)
    net.features.conv0 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
    net.features.pool0 = nn.Identity()
    body = nn.Sequential(net.features, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return _Wrapped(body, net.classifier)


class _WideBlock(nn.Module):
    """A pre-activation residual block of WRN: BN ReLU conv3x3 BN ReLU conv3x3, plus the input (or its 1x1 projection).

    ``batch_norm=False`` replaces both batch norms by the identity (the convolutions then carry biases);
    ``residual=False`` drops the addition of the input (a plain block of two convolutions)."""

    def __init__(self, c_in: int, c_out: int, stride: int, batch_norm: bool = True, residual: bool = True) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in) if batch_norm else nn.Identity()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=not batch_norm)
        self.bn2 = nn.BatchNorm2d(c_out) if batch_norm else nn.Identity()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=not batch_norm)
        self.residual = residual
        projection = residual and not (c_in == c_out and stride == 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False) if projection else None

    def forward(self, x: Tensor) -> Tensor:
        o = torch.relu(self.bn1(x))
        y: Tensor = self.conv2(torch.relu(self.bn2(self.conv1(o))))
        if not self.residual:
            return y
        out: Tensor = y + (x if self.shortcut is None else self.shortcut(o))
        return out


def wide_resnet_cifar(
    depth: int = 28,
    widen: int = 4,
    n_classes: int = 10,
    in_channels: int = 3,
    *,
    batch_norm: bool = True,
    residual: bool = True,
) -> FeatureClassifier:
    """Wide ResNet WRN-depth-widen (Zagoruyko and Komodakis, 2016) for 32x32 (or 28x28) inputs.

    ``(depth - 4) / 6`` pre-activation blocks per stage, three stages of 16k, 32k and 64k channels, global average
    pooling, m = 64k features. Without batch norm the convolutions are initialised as He et al. (2015) do, which
    keeps the signal's scale through a plain stack (with PyTorch's default, WRN-10-1 without either stays at chance
    on Fashion-MNIST), and, with residual connections, each block's second convolution at zero, so that every
    block starts as the identity (SkipInit, De and Smith 2020).

    Args:
        depth: 6n + 4 (10, 16, 28, ...).
        widen: the width factor k.
        n_classes: the number of classes.
        in_channels: 1 for grey images, 3 for colour.
        batch_norm: keep the batch norms (False: the identity in their place; the valley-conditions study's axis).
        residual: keep the residual connections (False: plain blocks of two convolutions).

    Returns:
        A :class:`~flatrob.models.FeatureClassifier` whose ``features`` are the pooled activations, shape
        (n, 64 widen).
    """
    if (depth - 4) % 6:
        raise ValueError(f"depth must be 6n + 4; got {depth}")
    n = (depth - 4) // 6
    widths = [16, 16 * widen, 32 * widen, 64 * widen]
    layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=not batch_norm)]
    c = widths[0]
    for stage, stride in zip(widths[1:], (1, 2, 2)):
        for i in range(n):
            layers.append(_WideBlock(c, stage, stride if i == 0 else 1, batch_norm, residual))
            c = stage
    layers += [nn.BatchNorm2d(c) if batch_norm else nn.Identity(), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    body = nn.Sequential(*layers)
    if not batch_norm:  # without batch norm the signal must keep its scale through the depth (see the docstring)
        for m in body.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for m in body.modules():
            if isinstance(m, _WideBlock) and residual:
                nn.init.zeros_(m.conv2.weight)  # each residual branch starts at zero: the block starts as identity
    return _Wrapped(body, nn.Linear(c, n_classes))


class _ViTBody(nn.Module):
    """Patch embedding, a class token and learned positions, ``depth`` pre-norm transformer encoder layers
    (multi-head self-attention and an MLP, each with a residual connection and LayerNorm), a final LayerNorm and the
    class token's output: phi, shape (n, dim)."""

    def __init__(self, in_channels: int, image: int, patch: int, dim: int, depth: int, heads: int) -> None:
        super().__init__()
        self.patches = nn.Conv2d(in_channels, dim, patch, patch)  # one token per non-overlapping patch
        n_tokens = (image // patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n_tokens + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, 2 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.patches(x).flatten(2).transpose(1, 2)  # (n, tokens, dim)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1) + self.pos
        out: Tensor = self.norm(self.encoder(tokens))[:, 0]
        return out


def vit_small(
    n_classes: int = 10,
    in_channels: int = 1,
    image: int = 28,
    *,
    patch: int = 7,
    dim: int = 64,
    depth: int = 4,
    heads: int = 4,
) -> FeatureClassifier:
    """A small vision transformer (Dosovitskiy et al., 2021) for the CPU: 7x7 patches of a 28x28 image (16 tokens and
    a class token), ``depth`` pre-norm encoder layers of ``heads``-head self-attention and a GELU MLP, LayerNorm,
    and a linear head on the class token's output.

    The head is an ``nn.Linear`` on ``features(x)``, so the last-layer closed forms apply unchanged; what they do not
    cover is the curvature that attention adds below the head.

    Args:
        n_classes: the number of classes.
        in_channels: 1 for grey images, 3 for colour.
        image: the image side (a multiple of ``patch``).
        patch: the patch side.
        dim: the token width, and m, the number of features.
        depth: encoder layers.
        heads: attention heads (dividing ``dim``).

    Returns:
        A :class:`~flatrob.models.FeatureClassifier` whose ``features`` are the class token's final output, shape
        (n, dim).
    """
    if image % patch or dim % heads:
        raise ValueError(f"image must be a multiple of patch and dim of heads; got {image}, {patch}, {dim}, {heads}")
    return _Wrapped(_ViTBody(in_channels, image, patch, dim, depth, heads), nn.Linear(dim, n_classes))


#: The small residual networks with batch norm that train on the CPU (name -> depth, widen, batch norm, residual).
#: WRN-10-1 is the CPU's network of the paper's kind; the others vary one axis of it (valley-conditions).
RESIDUAL_FAMILY: dict[str, tuple[int, int, bool, bool]] = {
    "wrn-10-1": (10, 1, True, True),
    "wrn-16-1": (16, 1, True, True),
    "wrn-10-2": (10, 2, True, True),
    "wrn-10-1-nobn": (10, 1, False, True),
    "wrn-10-1-plain": (10, 1, True, False),
    "wrn-10-1-plain-nobn": (10, 1, False, False),
}

#: The architectures by name, each with what it is and the inputs it takes; the values a chapter's
#: ``architecture`` accepts and ``build_model`` builds.
ARCHITECTURES: dict[str, str] = {
    "small-cnn": "small CNN for (1, 28, 28) grey images (Fashion-MNIST, MNIST); the CPU default",
    "wide-cnn": "the small CNN with twice the channels and width (32, 64 channels; 256 features), (1, 28, 28)",
    "digits-cnn": "small CNN for (1, 8, 8) digits",
    "mnist1d-cnn": "1-D CNN for (1, L) MNIST-1D",
    "mlp": "two hidden layers of 256, any input",
    "resnet18": "ResNet-18, CIFAR stem, (c, h, w) with h, w >= 8: (3, 32, 32) or (1, 28, 28)",
    "wrn-28-4": "WideResNet-28-4, (c, h, w) with h, w >= 8",
    "vgg11-bn": "VGG-11 with batch norm, (c, 32, 32)",
    "densenet121": "DenseNet-121, CIFAR stem, (c, h, w) with h, w >= 8",
    "wrn-10-1": "WideResNet-10-1 (77,562 parameters for 1x28x28): residual blocks with batch norm; the CPU's network "
    "of the paper's kind, (c, h, w) with h, w >= 8",
    "wrn-16-1": "WideResNet-16-1: WRN-10-1 twice as deep (174,778 parameters), (c, h, w) with h, w >= 8",
    "wrn-10-2": "WideResNet-10-2: WRN-10-1 twice as wide (303,418 parameters), (c, h, w) with h, w >= 8",
    "wrn-10-1-nobn": "WRN-10-1 without batch norm (residual connections kept), (c, h, w) with h, w >= 8",
    "wrn-10-1-plain": "WRN-10-1 without residual connections (batch norm kept), (c, h, w) with h, w >= 8",
    "wrn-10-1-plain-nobn": "WRN-10-1 without residual connections and batch norm, (c, h, w) with h, w >= 8",
    "vit": "a small vision transformer (4 pre-norm encoder layers of 4-head self-attention, width 64, LayerNorm, a "
    "linear head on the class token; 7x7 patches of 28x28 images or 4x4 of 32x32), (c, h, h) with h divisible by 7 or "
    "4",
}


def architecture_traits(name: str) -> dict[str, Any]:
    """What a network of ``RESIDUAL_FAMILY`` is made of, as the valley-conditions study varies it: depth, widen
    factor, batch norm and residual connections ({} for the other architectures).

    Args:
        name: a name of :data:`ARCHITECTURES`.

    Returns:
        The traits (depth, widen, batch_norm, residual) of a network of ``RESIDUAL_FAMILY``, else an empty dict.
    """
    if name not in RESIDUAL_FAMILY:
        return {}
    depth, widen, bn, res = RESIDUAL_FAMILY[name]
    return {"depth": depth, "widen": widen, "batch norm": bn, "residual": res}


#: The architectures of the paper's kind: the paper's own networks and the small residual networks with batch norm
#: (``RESIDUAL_FAMILY`` with both); a verdict "at the paper's setting" needs one of them.
PAPER_KIND: frozenset[str] = frozenset(
    {"resnet18", "wrn-28-4", "densenet121", "vgg11-bn"}
    | {name for name, (_, _, bn, res) in RESIDUAL_FAMILY.items() if bn and res}
)


def fits(name: str, input_shape: tuple[int, ...]) -> str:
    """Why an architecture cannot take inputs of a given shape (the check of a chapter's ``architecture``).

    Args:
        name: the architecture, a key of :data:`ARCHITECTURES`.
        input_shape: one input's shape, without the batch axis.

    Returns:
        The reason in one sentence, or "" when it can.
    """
    if name not in ARCHITECTURES:
        return f"architecture must be one of {sorted(ARCHITECTURES)}; got {name!r}"
    shape = tuple(input_shape)
    if name == "mlp":
        return ""
    image = len(shape) == 3 and shape[0] in (1, 3)
    wants, ok = {
        "small-cnn": ("(1, 28, 28)", shape == (1, 28, 28)),
        "wide-cnn": ("(1, 28, 28)", shape == (1, 28, 28)),
        "digits-cnn": ("(1, 8, 8)", shape == (1, 8, 8)),
        "mnist1d-cnn": ("(1, L) with L divisible by 4", len(shape) == 2 and shape[0] == 1 and shape[1] % 4 == 0),
        "vgg11-bn": ("(1 or 3, 32, 32)", image and shape[1:] == (32, 32)),
        "vit": (
            "(1 or 3, h, h) with h divisible by 7 or 4",
            image and shape[1] == shape[2] and (shape[1] % 7 == 0 or shape[1] % 4 == 0),
        ),
    }.get(name, ("(1 or 3, h, w) with h, w >= 8", image and min(shape[1:], default=0) >= 8))
    return "" if ok else f"architecture {name!r} needs inputs of shape {wants}; the data have {shape}"


def build_model(name: str, n_classes: int, input_shape: tuple[int, ...]) -> FeatureClassifier:
    """A fresh model by name (:data:`ARCHITECTURES`) for inputs of a given shape.

    Args:
        name: the architecture, a key of :data:`ARCHITECTURES`.
        n_classes: the number of classes.
        input_shape: one input's shape, without the batch axis: (1, 28, 28) for Fashion-MNIST.

    Returns:
        The model, initialised by torch's generator as it stands (seed it first).

    Raises:
        ValueError: the architecture cannot take inputs of that shape (:func:`fits` says why).
    """
    why = fits(name, input_shape)
    if why:
        raise ValueError(why)
    shape = tuple(input_shape)
    if name == "mlp":
        return MLP(int(torch.tensor(shape).prod()), n_classes)
    if name == "small-cnn":
        return SmallCNN(n_classes)
    if name == "wide-cnn":
        return SmallCNN(n_classes, channels=32, width=256)
    if name == "digits-cnn":
        return DigitsCNN(n_classes)
    if name == "mnist1d-cnn":
        return MNIST1DCNN(n_classes, length=shape[1])
    c = shape[0]
    if name == "vit":
        return vit_small(n_classes, c, shape[1], patch=7 if shape[1] % 7 == 0 else 4)
    if name in RESIDUAL_FAMILY:
        depth, widen, bn, res = RESIDUAL_FAMILY[name]
        return wide_resnet_cifar(depth, widen, n_classes, c, batch_norm=bn, residual=res)
    return {
        "resnet18": lambda k: resnet18_cifar(k, c),
        "vgg11-bn": lambda k: vgg11_bn_cifar(k, c),
        "densenet121": lambda k: densenet121_cifar(k, c),
        "wrn-28-4": lambda k: wide_resnet_cifar(28, 4, k, c),
    }[name](n_classes)
