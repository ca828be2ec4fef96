"""A known data manifold for the not-global chapter: points on a circle in the unit square, labelled by their
angle, and points off the circle; where the theory's "far from the data" can be measured exactly."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["circle_labels", "circle_manifold", "off_manifold_points"]


def circle_manifold(
    n: int, n_classes: int = 3, noise: float = 0.0, seed: int = 0, center: float = 0.5, radius: float = 0.3
) -> tuple[Tensor, Tensor]:
    """Points on a circle in [0, 1]^2, the data manifold of chapter not-global. (n, 2) inputs, (n,) labels.

    Angles uniform on [0, 2 pi); the label is the sector, floor(theta k / 2 pi);
    ``noise`` is the standard deviation of a radial jitter. The manifold is known:
    the circle of ``radius`` around (center, center).

    Args:
        n: how many points.
        n_classes: k, the number of sectors (classes).
        noise: the standard deviation of a radial jitter.
        seed: the generator's seed.
        center: the centre (center, center).
        radius: the circle's radius.

    Returns:
        The points (n, 2) on the circle and their sectors (n,).
    """
    if n < 1 or n_classes < 2 or not 0 < radius < center:
        raise ValueError(
            f"need n >= 1, n_classes >= 2 and 0 < radius < center; got {n}, {n_classes}, {radius}, {center}"
        )
    gen = torch.Generator().manual_seed(seed)
    theta = 2 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64)
    rad = radius + noise * torch.randn(n, generator=gen, dtype=torch.float64)
    x = center + rad[:, None] * torch.stack([theta.cos(), theta.sin()], 1)
    return x.float().clamp(0, 1), circle_labels(x, n_classes, center)


def circle_labels(x: Tensor, n_classes: int, center: float = 0.5) -> Tensor:
    """The label of the nearest manifold point (the sector of the angle around the centre): (n, 2) -> (n,).

    Args:
        x: points, shape (n, 2).
        n_classes: k, the number of sectors.
        center: the circle's centre (center, center).

    Returns:
        The sector of each point's angle, shape (n,).
    """
    theta = torch.atan2(x[:, 1] - center, x[:, 0] - center) % (2 * math.pi)
    return (theta * n_classes / (2 * math.pi)).long().clamp(max=n_classes - 1)


def off_manifold_points(n: int, margin: float, seed: int = 0, center: float = 0.5, radius: float = 0.3) -> Tensor:
    """n points uniform in [0, 1]^2 at distance > margin from the circle of :func:`circle_manifold`: (n, 2).

    Args:
        n: how many points.
        margin: the least distance from the circle.
        seed: the generator's seed.
        center: the circle's centre.
        radius: its radius.

    Returns:
        Points uniform in [0, 1]^2 farther than ``margin`` from the circle, shape (n, 2).
    """
    gen = torch.Generator().manual_seed(seed)
    out: list[Tensor] = []
    got = 0
    while got < n:
        cand = torch.rand(4 * n, 2, generator=gen)
        dist = ((cand - center).norm(dim=1) - radius).abs()
        keep = cand[dist > margin]
        out.append(keep)
        got += len(keep)
    return torch.cat(out)[:n]
