"""Relative flatness of the last layer of a softmax / cross-entropy classifier.

Notation (book chapter :ref:`closed-form`): a classifier with penultimate
features ``phi`` in R^m, last-layer weight ``W`` in R^{k x m} (row ``w_s`` is
the weight vector of output neuron ``s``), bias ``b`` in R^k, logits
``z = W phi + b``, probabilities ``p = softmax(z)`` and loss
``l = -log p_y``. ``vec(W)`` is row-major: entry ``W[s, i]`` has index
``s * m + i``.

Closed forms implemented here (labels as in the book):

* ``eq-hessian``   H = (diag(p) - p p^T) kron (phi phi^T)          shape (k m, k m)
* ``eq-trace``     Tr H = ||phi||^2 (1 - ||p||^2)
* ``eq-kappa-layer``   kappa_layer = ||W||_F^2 Tr H
* ``eq-kappa-neuron``  kappa_neuron = sum_{s,s'} <w_s, w_s'> Tr H_{s,s'}
                      = ||phi||^2 tr Cov_{s~p}(w_s)
                      = ||phi||^2 * 1/2 sum_{s,s'} p_s p_s' ||w_s - w_s'||^2
* ``eq-kappa-eigen``   kappa_eigen = sum_s ||w_s||^2 lambda_max(H_{s,s})
                      = ||phi||^2 sum_s p_s (1 - p_s) ||w_s||^2

Nothing here forms the Hessian to compute a sharpness. Every sharpness is a
sum of non-negative terms (no cancellation when the softmax saturates), and
probabilities come from ``log_softmax`` so logits of magnitude 1e4 stay
finite. The ``autograd_*`` functions are the references computed with
``torch.func``; they exist for the tests and for the book's comparison.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor
from torch.func import hessian, vmap
from torch.utils.weak import WeakIdKeyDictionary

Kind = Literal["layer", "neuron", "eigen"]
KINDS: tuple[str, ...] = get_args(Kind)

__all__ = [
    "KINDS",
    "Kind",
    "autograd_last_layer_hessian",
    "autograd_relative_sharpness",
    "complement_probabilities",
    "hessian_trace",
    "kappa_from_hessian",
    "last_layer_hessian",
    "last_layer_statistics",
    "logits_of",
    "pairwise_sq_distances",
    "relative_sharpness",
    "relative_sharpness_dataset",
    "softmax_covariance",
    "squared_norms",
]


# ---------------------------------------------------------------------------
# input checks


def _check(weight: Tensor, features: Tensor, bias: Tensor | None) -> None:
    """Shapes, types, dtypes and devices of the last layer's inputs; a few attribute reads when all is well."""
    if not (
        isinstance(weight, Tensor)
        and isinstance(features, Tensor)
        and (bias is None or isinstance(bias, Tensor))
        and weight.dtype == features.dtype
        and weight.device == features.device
        and (bias is None or (bias.dtype == weight.dtype and bias.device == weight.device))
    ):
        _explain_mismatch(weight, features, bias)
    if weight.dim() != 2:
        raise ValueError(f"weight must have shape (k, m); got {tuple(weight.shape)}")
    if features.dim() != 2:
        raise ValueError(
            f"features must have shape (n, m); got {tuple(features.shape)} "
            "(use features.unsqueeze(0) for a single sample)"
        )
    k, m = weight.shape
    if features.shape[1] != m:
        raise ValueError(f"features have m={features.shape[1]} columns but weight has m={m} columns")
    if bias is not None and bias.shape != (k,):
        raise ValueError(f"bias must have shape ({k},); got {tuple(bias.shape)}")


def _explain_mismatch(weight: object, features: object, bias: object) -> None:
    """Raise the TypeError that names what does not match: a type, a dtype or a device, with the fix."""
    named = {"weight": weight, "features": features, "bias": bias}
    for name, t in named.items():
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__} (convert with torch.as_tensor)")
    present = {k: t for k, t in named.items() if isinstance(t, Tensor)}
    if len({t.dtype for t in present.values()}) > 1:
        raise TypeError(
            "weight, features and bias must have one dtype; got "
            + ", ".join(f"{k} {t.dtype}" for k, t in present.items())
            + " (cast them, e.g. features.to(weight.dtype))"
        )
    raise TypeError(
        "weight, features and bias must be on one device; got "
        + ", ".join(f"{k} on {t.device}" for k, t in present.items())
    )


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")


def logits_of(weight: Tensor, features: Tensor, bias: Tensor | None = None) -> Tensor:
    """Logits ``z = phi W^T + b`` (``F.linear``, one fused product).

    Args: weight ``W`` (k, m), features ``phi`` (n, m), bias ``b`` (k,) or None. Returns: shape (n, k).
    """
    return torch.nn.functional.linear(features, weight, bias)


# ---------------------------------------------------------------------------
# closed forms


def softmax_covariance(logits: Tensor) -> Tensor:
    """Hessian of the cross-entropy in the logits, ``diag(p) - p p^T`` (:eq:`eq-hessian-logits`); it does not depend on
    the label.

    Args:
        logits: shape (n, k).

    Returns:
        Shape (n, k, k).
    """
    p = torch.softmax(logits, dim=-1)
    return torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)


def complement_probabilities(logits: Tensor) -> tuple[Tensor, Tensor]:
    """``(p, 1 - p)`` computed without cancellation.

    ``1 - p_s`` is formed as the sum of the other probabilities, ``sum_{s' != s} p_s'``, a sum of non-negative
    terms, so it stays accurate when the prediction saturates (``p_max -> 1``, where ``1 - p_max`` would round to
    0; :prf:ref:`cor-confident-flat`).

    Args:
        logits: shape (n, k).

    Returns:
        (p, 1 - p), each of shape (n, k).
    """
    p = torch.softmax(logits, dim=-1)
    return p, _others(p)


#: The matrix 11^T - I per (k, dtype, device): built once, not at every call.
_COMPLEMENT: dict[tuple[int, torch.dtype, torch.device], Tensor] = {}


def _others(p: Tensor) -> Tensor:
    """``q_s = sum_{s' != s} p_s'`` for every class at once: ``p (11^T - I)``, one small matrix product. (..., k)."""
    key = (p.shape[-1], p.dtype, p.device)
    complement = _COMPLEMENT.get(key)
    if complement is None:
        complement = _COMPLEMENT[key] = 1 - torch.eye(key[0], dtype=p.dtype, device=p.device)
    return p @ complement


def squared_norms(features: Tensor) -> Tensor:
    """``||phi||^2`` per sample, one reduction without an (n, m) temporary.

    Args: features ``phi`` (..., m). Returns: shape (...).
    """
    out: Tensor = torch.linalg.vector_norm(features, dim=-1).square()
    return out


#: pairwise_sq_distances of weight tensors, keyed by the tensor itself (an entry dies with its tensor) and checked
#: against its version counter (an in-place change of W recomputes them).
_DISTANCES: WeakIdKeyDictionary = WeakIdKeyDictionary()


def _distances(weight: Tensor) -> Tensor:
    """:func:`pairwise_sq_distances` of ``weight``, computed once per tensor and version.

    Evaluating many batches with one W (an attack's iterates, a benchmark) then costs one pass over the logits,
    not a (k, k) distance computation per call. Not cached where autograd must see the computation.
    """
    if weight.requires_grad and torch.is_grad_enabled():
        return pairwise_sq_distances(weight)
    hit = _DISTANCES.get(weight)  # type: ignore[no-untyped-call]
    if hit is not None and hit[0] == weight._version:
        cached: Tensor = hit[1]
        return cached
    dist = pairwise_sq_distances(weight)
    _DISTANCES[weight] = (weight._version, dist)
    return dist


#: ||W||_F^2 of weight tensors, cached as the distances are.
_FROBENIUS: WeakIdKeyDictionary = WeakIdKeyDictionary()


def _frobenius_sq(weight: Tensor) -> Tensor:
    """``||W||_F^2`` (a 0-d tensor), computed once per tensor and version (not where autograd must see it)."""
    if weight.requires_grad and torch.is_grad_enabled():
        return weight.square().sum()
    hit = _FROBENIUS.get(weight)  # type: ignore[no-untyped-call]
    if hit is not None and hit[0] == weight._version:
        cached: Tensor = hit[1]
        return cached
    value = weight.square().sum()
    _FROBENIUS[weight] = (weight._version, value)
    return value


def pairwise_sq_distances(weight: Tensor) -> Tensor:
    """The squared distances ``D_{ss'} = ||w_s - w_s'||^2`` between the rows of the last layer.

    From the differences themselves (``torch.cdist`` without the Gram-matrix shortcut, which cancels for nearby
    rows), with no (k, k, m) temporary; the neuron-wise sharpness takes them (:func:`relative_sharpness`).

    Args:
        weight: the last layer ``W``, shape (k, m).

    Returns:
        The distances, shape (k, k), with exact zeros on the diagonal.
    """
    dist = torch.cdist(weight.unsqueeze(0), weight.unsqueeze(0), compute_mode="donot_use_mm_for_euclid_dist")
    return dist[0].square()


# The closed forms from shared pieces: p, q = 1 - p, ||phi||^2 (eq-trace, eq-kappa-neuron, eq-kappa-eigen).
# Each is a bilinear form in p with a non-negative matrix: 1 - ||p||^2 = p^T (11^T - I) p and
# sum_{s,s'} p_s p_s' D_ss' = p^T D p, sums of non-negative terms (no cancellation at saturation).
def _trace(p: Tensor, q: Tensor, phi_sq: Tensor) -> Tensor:
    out: Tensor = phi_sq * torch.linalg.vecdot(p, q)
    return out


def _neuron(p: Tensor, phi_sq: Tensor, dist_sq: Tensor) -> Tensor:
    out: Tensor = (0.5 * phi_sq) * torch.linalg.vecdot(p @ dist_sq, p)
    return out


def _eigen(p: Tensor, q: Tensor, phi_sq: Tensor, w_sq: Tensor) -> Tensor:
    out: Tensor = phi_sq * torch.linalg.vecdot(p * q, w_sq)
    return out


def last_layer_hessian(weight: Tensor, features: Tensor, bias: Tensor | None = None) -> Tensor:
    """Closed-form per-sample Hessian of the cross-entropy in ``vec(W)`` (:eq:`eq-hessian`).

    ``H = (diag(p) - p p^T) kron (phi phi^T)`` with row-major ``vec(W)`` (index ``s * m + i``); independent of the
    label. It materialises n (k m)^2 numbers: the sharpness functions never call it.

    Args:
        weight: the last layer ``W``, shape (k, m).
        features: the penultimate features ``phi``, shape (n, m).
        bias: the last layer's bias ``b``, shape (k,), or None.

    Returns:
        The Hessians, shape (n, k*m, k*m).
    """
    _check(weight, features, bias)
    k, m = weight.shape
    sigma = softmax_covariance(logits_of(weight, features, bias))
    outer = features.unsqueeze(-1) * features.unsqueeze(-2)  # (n, m, m)
    h = sigma[:, :, None, :, None] * outer[:, None, :, None, :]  # (n, k, m, k, m)
    return h.reshape(features.shape[0], k * m, k * m)


def hessian_trace(
    weight: Tensor,
    features: Tensor,
    bias: Tensor | None = None,
    *,
    logits: Tensor | None = None,
) -> Tensor:
    """Per-sample ``Tr H = ||phi||^2 (1 - ||p||^2) = ||phi||^2 sum_s p_s (1 - p_s)`` (:eq:`eq-trace`).

    Args:
        weight: the last layer ``W``, shape (k, m).
        features: the penultimate features ``phi``, shape (n, m).
        bias: the bias ``b``, shape (k,), or None.
        logits: ``W phi + b``, shape (n, k), when the caller's forward pass has them (saves the product).

    Returns:
        ``Tr H`` per sample, shape (n,).
    """
    _check(weight, features, bias)
    p, q = complement_probabilities(logits_of(weight, features, bias) if logits is None else logits)
    return _trace(p, q, squared_norms(features))


def relative_sharpness(
    weight: Tensor,
    features: Tensor,
    bias: Tensor | None = None,
    kind: Kind = "layer",
    *,
    logits: Tensor | None = None,
    dist_sq: Tensor | None = None,
) -> Tensor:
    """Per-sample relative sharpness of the last layer, in closed form.

    * ``kind="layer"``: ``||W||_F^2 Tr H`` (:eq:`eq-kappa-layer`), the form the 2025 paper uses;
    * ``kind="neuron"``: ``sum_{s,s'} <w_s, w_s'> Tr H_{s,s'}`` (:eq:`eq-kappa-neuron`), Petzka et al.'s trace
      form, computed as ``||phi||^2 * 1/2 sum_{s,s'} p_s p_s' ||w_s - w_s'||^2``;
    * ``kind="eigen"``: ``sum_s ||w_s||^2 lambda_max(H_{s,s})`` (:eq:`eq-kappa-eigen`)
      ``= ||phi||^2 sum_s p_s (1 - p_s) ||w_s||^2``.

    Works batched, in float32 and float64, on any device; costs O(n k m + k^2 m + n k^2), never O((k m)^2), and
    with the forward's logits given, one pass over them and one over the features.

    Args:
        weight: the last layer ``W``, shape (k, m).
        features: the penultimate features ``phi``, shape (n, m).
        bias: the bias ``b``, shape (k,), or None.
        kind: "layer", "neuron" or "eigen".
        logits: ``W phi + b``, shape (n, k), when the caller's forward pass has them.
        dist_sq: for ``kind="neuron"``, :func:`pairwise_sq_distances` of ``weight``, shape (k, k), computed once by
            a caller that evaluates many batches with one ``W``.

    Returns:
        The relative sharpness per sample, shape (n,).
    """
    _check_kind(kind)
    _check(weight, features, bias)
    z = logits_of(weight, features, bias) if logits is None else logits
    phi_sq = squared_norms(features)
    if kind == "neuron":
        return _neuron(torch.softmax(z, dim=-1), phi_sq, _distances(weight) if dist_sq is None else dist_sq)
    p, q = complement_probabilities(z)
    if kind == "layer":
        return _frobenius_sq(weight) * _trace(p, q, phi_sq)
    return _eigen(p, q, phi_sq, weight.square().sum(-1))


def last_layer_statistics(
    weight: Tensor, logits: Tensor, phi_sq: Tensor, *, dist_sq: Tensor | None = None
) -> dict[str, Tensor]:
    """Everything an instrumented forward pass records, sharing one softmax (:eq:`eq-trace`, :eq:`eq-kappa-layer`,
    :eq:`eq-kappa-neuron`). Any leading shape, so that the iterates of a whole attack are evaluated in one call.

    Args:
        weight: ``W``, shape (k, m).
        logits: ``W phi + b``, shape (..., k).
        phi_sq: ``||phi||^2``, shape (...).
        dist_sq: the squared distances between the rows of ``W``, shape (k, k), from
            :func:`pairwise_sq_distances` (optional; computed when absent).

    Returns:
        A dict with ``log_p`` and ``p`` of shape (..., k); ``trace``, ``kappa_layer`` and ``kappa_neuron`` of shape
        (...), equal to :func:`hessian_trace` and :func:`relative_sharpness`.
    """
    log_p = torch.log_softmax(logits, dim=-1)
    p = log_p.exp()
    trace = _trace(p, _others(p), phi_sq)
    dist_sq = _distances(weight) if dist_sq is None else dist_sq
    return {
        "log_p": log_p,
        "p": p,
        "trace": trace,
        "kappa_layer": _frobenius_sq(weight) * trace,
        "kappa_neuron": _neuron(p, phi_sq, dist_sq),
    }


def relative_sharpness_dataset(
    weight: Tensor,
    features: Tensor,
    bias: Tensor | None = None,
    kind: Kind = "layer",
) -> Tensor:
    """Relative sharpness of the empirical loss on a sample set (:prf:ref:`prop-kappa-dataset`).

    The empirical loss is the mean of the per-sample losses and its Hessian the mean of the per-sample Hessians.
    The trace forms (``layer``, ``neuron``) are linear in the Hessian, so the set's value is the mean of the
    per-sample values. The eigenvalue form is not: the set's diagonal block
    ``H_ss = (1/n) sum_i p_is (1 - p_is) phi_i phi_i^T`` has rank up to n, and ``sum_s ||w_s||^2 lambda_max(H_ss)``
    is computed from it exactly (as Petzka et al.'s code does), from an eigendecomposition of the smaller of its
    (m, m) form and the (n, n) Gram form; the mean of the per-sample eigenvalue forms only bounds it from above.

    Args:
        weight: the last layer ``W``, shape (k, m).
        features: the penultimate features ``phi`` of the set, shape (n, m).
        bias: the bias ``b``, shape (k,), or None.
        kind: "layer", "neuron" or "eigen".

    Returns:
        The set's relative sharpness, a scalar tensor.
    """
    _check_kind(kind)
    if kind != "eigen":
        return relative_sharpness(weight, features, bias, kind).mean()
    _check(weight, features, bias)
    p, q = complement_probabilities(logits_of(weight, features, bias))
    c = p * q  # (n, k): p_s (1 - p_s), the weight of phi phi^T in H_ss
    n, m = features.shape
    lam = []
    for s in range(weight.shape[0]):
        if m <= n:
            block = features.T @ (c[:, s, None] * features) / n  # (m, m)
        else:
            scaled = c[:, s].sqrt()[:, None] * features  # (n, m)
            block = scaled @ scaled.T / n  # (n, n), the same non-zero eigenvalues
        lam.append(torch.linalg.eigvalsh(block)[-1].clamp_min(0))
    return (weight.square().sum(-1) * torch.stack(lam)).sum()


def kappa_from_hessian(weight: Tensor, hess: Tensor, kind: Kind = "layer") -> Tensor:
    """The definition of relative sharpness applied to given Hessians (:eq:`eq-kappa-def`).

    Used with autograd Hessians as the reference for :func:`relative_sharpness`.

    Args:
        weight: the last layer ``W``, shape (k, m).
        hess: Hessians in row-major ``vec(W)``, shape (n, k*m, k*m).
        kind: "layer", "neuron" or "eigen".

    Returns:
        The relative sharpness per Hessian, shape (n,).
    """
    _check_kind(kind)
    k, m = weight.shape
    if hess.dim() != 3 or hess.shape[1:] != (k * m, k * m):
        raise ValueError(f"hess must have shape (n, {k * m}, {k * m}); got {tuple(hess.shape)}")
    blocks = hess.reshape(-1, k, m, k, m)
    block_traces = torch.diagonal(blocks, dim1=2, dim2=4).sum(-1)  # (n, k, k): Tr H_{s,s'}
    if kind == "layer":
        return weight.pow(2).sum() * torch.diagonal(block_traces, dim1=1, dim2=2).sum(-1)
    if kind == "neuron":
        gram = weight @ weight.T  # <w_s, w_s'>
        return (gram * block_traces).sum((-1, -2))
    diag_blocks = torch.diagonal(blocks, dim1=1, dim2=3).permute(0, 3, 1, 2)  # (n, k, m, m)
    lam_max: Tensor = torch.linalg.eigvalsh(diag_blocks)[..., -1]  # (n, k)
    return (weight.pow(2).sum(-1) * lam_max).sum(-1)


# ---------------------------------------------------------------------------
# autograd references (torch.func)


def _cross_entropy_in_weight(weight: Tensor, feature: Tensor, bias: Tensor | None, label: Tensor) -> Tensor:
    """``l(W) = -log softmax(W phi + b)_y`` for one sample: (k, m), (m,), (k,)|None, () -> ()."""
    z = weight @ feature
    if bias is not None:
        z = z + bias
    return -torch.log_softmax(z, dim=-1).gather(0, label.reshape(1)).squeeze(0)


def autograd_last_layer_hessian(
    weight: Tensor,
    features: Tensor,
    bias: Tensor | None = None,
    labels: Tensor | None = None,
) -> Tensor:
    """Reference Hessian of the per-sample cross-entropy in ``vec(W)``, by ``torch.func.hessian``.

    Args:
        weight: the last layer ``W``, shape (k, m).
        features: the penultimate features ``phi``, shape (n, m).
        bias: the bias ``b``, shape (k,), or None.
        labels: the labels, shape (n,) (default: class 0; the Hessian does not depend on them).

    Returns:
        The Hessians, shape (n, k*m, k*m), to compare with :func:`last_layer_hessian`.
    """
    _check(weight, features, bias)
    k, m = weight.shape
    n = features.shape[0]
    if labels is None:
        labels = torch.zeros(n, dtype=torch.long, device=features.device)
    h: Tensor = vmap(hessian(_cross_entropy_in_weight), in_dims=(None, 0, None, 0))(weight, features, bias, labels)
    return h.reshape(n, k * m, k * m)


def autograd_relative_sharpness(
    weight: Tensor,
    features: Tensor,
    bias: Tensor | None = None,
    kind: Kind = "layer",
    labels: Tensor | None = None,
) -> Tensor:
    """Reference relative sharpness from the full autograd Hessian (:func:`autograd_last_layer_hessian`).

    Args:
        weight: the last layer ``W``, shape (k, m).
        features: the penultimate features ``phi``, shape (n, m).
        bias: the bias ``b``, shape (k,), or None.
        kind: "layer", "neuron" or "eigen".
        labels: the labels, shape (n,) (default: class 0).

    Returns:
        The relative sharpness per sample, shape (n,), to compare with :func:`relative_sharpness`.
    """
    return kappa_from_hessian(weight, autograd_last_layer_hessian(weight, features, bias, labels), kind)
