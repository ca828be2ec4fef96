"""From relative flatness to robustness: the quantities of the book's theory chapters.

Notation as in :mod:`flatrob.flatness`: features ``phi`` in R^m, last layer
``W`` (k, m) with rows ``w_s``, bias ``b``, logits ``z = W phi + b``,
``p = softmax(z)``, loss ``l = -log p_y``, ``Sigma(p) = diag(p) - p p^T``.

Implemented here (labels as in the book):

* ``eq-haar-moment`` the second moment of Haar-random orthogonal matrices (feature robustness chapter)
* ``eq-expected-change``  E_A[l(W + delta W A) - l(W)] = delta^2 kappa_neuron / (2 m) + O(delta^4)
* ``lem-bridging``   phi(xi) = phi(x) + Delta A phi(x) with A orthogonal (a Householder reflection)
* Lipschitz constants of phi (in :mod:`flatrob.lipschitz`, re-exported here): local (power iteration on the Jacobian),
  empirical (largest ratio over pairs) and a global upper bound (product of
  layer norms, for sequential ReLU bodies)
* ``thm-local-bound``  l(xi) - l(x) <= eps ||W^T (p - e_y)|| + eps^2 lambda_max(W^T Sigma W) / 2 + (D_W eps)^3 / 24
  with eps = ||phi(xi) - phi(x)|| <= L delta, and lambda_max(W^T Sigma W) <= kappa_neuron / ||phi||^2
* the certified loss-change radius: the largest delta whose bound stays <= a budget
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from flatrob import flatness
from flatrob.lipschitz import lipschitz_local, lipschitz_pairs, lipschitz_upper

__all__ = [
    "BoundTerms",
    "bound_terms",
    "bridging_decomposition",
    "certified_radius",
    "digest_bound",
    "random_bound_check",
    "violates",
    "worst_case_directions",
    "expected_change_mc",
    "haar_orthogonal",
    "householder",
    "lipschitz_local",
    "lipschitz_pairs",
    "lipschitz_upper",
    "loss_change_along",
    "weight_diameter",
]


def haar_orthogonal(
    n: int, m: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
) -> Tensor:
    """n Haar-distributed matrices of the orthogonal group O(m); their second moment is :eq:`eq-haar-moment`.

    QR of a standard Gaussian matrix with the signs of R's diagonal moved into Q (Mezzadri, 2007); without that
    correction the distribution is not Haar.

    Args:
        n: how many matrices.
        m: their size.
        generator: the random generator (None: torch's global one).
        dtype: their dtype.

    Returns:
        The matrices, shape (n, m, m).
    """
    if n < 1 or m < 1:
        raise ValueError(f"n and m must be >= 1; got n={n}, m={m}")
    g = torch.randn(n, m, m, generator=generator, dtype=dtype)
    q, r = torch.linalg.qr(g)
    out: Tensor = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    return out


def expected_change_mc(
    weight: Tensor,
    bias: Tensor | None,
    features: Tensor,
    labels: Tensor,
    deltas: Tensor,
    n_haar: int,
    *,
    generator: torch.Generator | None = None,
    antithetic: bool = True,
) -> dict[str, Tensor]:
    """Monte Carlo of E_A[l((W + delta W A) phi + b) - l(W phi + b)], A Haar on O(m) (:prf:ref:`thm-expected-change`).

    With ``antithetic``, pairs (A, -A): both have the Haar law, and averaging them cancels every odd-order term of
    the expansion exactly, draw by draw (a variance reduction for the leading term; but a check that the odd orders
    vanish *in expectation* cannot use it, since they cancel by construction). Without it, plain draws: the odd orders
    stay in every draw and vanish only on average, if the theorem is right. Uses W (phi + delta A phi) =
    (W + delta W A) phi (:eq:`eq-feature-weight`).

    Args:
        weight: the last layer W, shape (k, m).
        bias: its bias, shape (k,), or None.
        features: phi, shape (n, m).
        labels: shape (n,).
        deltas: the perturbation sizes delta, shape (d,).
        n_haar: Haar draws per sample.
        generator: the random generator.
        antithetic: draw (A, -A) pairs.

    Returns:
        Tensors (n, d), ``mean`` and ``se``, the Monte Carlo mean of the loss change and its standard error;
        ``quartic`` and ``quartic_se``, the mean of the loss change minus its own linear and quadratic terms,
        delta g^T (W A phi) + delta^2/2 (W A phi)^T Sigma (W A phi) with g = p - e_y, draw by draw. Their expectations
        are exactly 0 (E[A] = 0) and delta^2 kappa_n / (2m), so ``quartic`` estimates E[change] - delta^2 kappa_n /
        (2m), the part beyond the quadratic term, with far less noise (two control variates): O(delta^4) if the cubic
        term's expectation vanishes, as the theorem says.
    """
    m = weight.shape[1]
    A = haar_orthogonal(n_haar, m, generator=generator, dtype=features.dtype)  # (N, m, m)
    a_phi = torch.einsum("nij,bj->bni", A, features)  # (n, N, m)
    z0 = flatness.logits_of(weight, features, bias)
    l0 = -torch.log_softmax(z0, -1).gather(1, labels[:, None])  # (n, 1)
    u = a_phi @ weight.T  # (n, N, k): W A phi
    sigma = flatness.softmax_covariance(z0)  # (n, k, k)
    quad = torch.einsum("bnk,bkl,bnl->bn", u, sigma, u)  # (n, N)
    grad = torch.softmax(z0, -1) - torch.nn.functional.one_hot(labels, weight.shape[0]).to(z0)  # (n, k): p - e_y
    lin = torch.einsum("bnk,bk->bn", u, grad)  # (n, N): g^T W A phi
    out: dict[str, list[Tensor]] = {"mean": [], "se": [], "quartic": [], "quartic_se": []}
    for d in deltas.tolist():
        draws = []
        for sign in (1.0, -1.0) if antithetic else (1.0,):
            z = z0[:, None, :] + sign * d * u
            draws.append(
                -torch.log_softmax(z, -1).gather(2, labels[:, None, None].expand(-1, n_haar, 1)).squeeze(2) - l0
            )
        change = torch.stack(draws).mean(0)  # (n, N)
        rest = change - (0.0 if antithetic else d * lin) - d**2 / 2 * quad
        for name, v in (("mean", change), ("quartic", rest)):
            out[name].append(v.mean(1))
            out["se" if name == "mean" else "quartic_se"].append(v.std(1) / n_haar**0.5)
    return {k: torch.stack(v, 1) for k, v in out.items()}


def householder(u: Tensor, w: Tensor) -> Tensor:
    """Orthogonal A with A u = w for ||u|| = ||w|| (:prf:ref:`lem-bridging`).

    A = I - 2 v v^T / ||v||^2 with v = u - w (A = I where u = w). A u - w = v (||w||^2 - ||u||^2) / ||v||^2, so
    equal norms are required; they are checked to a relative tolerance of 1e-5.

    Args:
        u: shape (n, m).
        w: shape (n, m), each row of the norm of u's.

    Returns:
        A, shape (n, m, m).
    """
    if u.shape != w.shape or u.dim() != 2:
        raise ValueError(f"u and w must both have shape (n, m); got {tuple(u.shape)} and {tuple(w.shape)}")
    nu, nw = u.norm(dim=1), w.norm(dim=1)
    if not torch.allclose(nu, nw, rtol=1e-5, atol=1e-12):
        raise ValueError("householder(u, w) needs ||u|| = ||w|| for every row")
    v = u - w
    vv = v.pow(2).sum(1, keepdim=True)
    same = vv.squeeze(1) <= 1e-24 * nu.pow(2).clamp_min(1e-300)
    v = torch.where(same.unsqueeze(1), torch.zeros_like(v), v)
    vv = torch.where(same.unsqueeze(1), torch.ones_like(vv), vv)
    eye = torch.eye(u.shape[1], dtype=u.dtype, device=u.device).expand(u.shape[0], -1, -1)
    return eye - 2 * v.unsqueeze(2) * v.unsqueeze(1) / vv.unsqueeze(2)


def bridging_decomposition(phi_x: Tensor, phi_xi: Tensor) -> tuple[Tensor, Tensor]:
    """phi_xi = phi_x + Delta A phi_x with A orthogonal (:prf:ref:`lem-bridging`).

    Delta = ||phi_xi - phi_x|| / ||phi_x||; A maps phi_x to (phi_xi - phi_x) / Delta, a vector of the same norm as
    phi_x. Needs phi_x != 0.

    Args:
        phi_x: the features at x, shape (n, m).
        phi_xi: the features at the perturbed input, shape (n, m).

    Returns:
        Delta, shape (n,), and A, shape (n, m, m).
    """
    norm_x = phi_x.norm(dim=1)
    if (norm_x == 0).any():
        raise ValueError(
            "phi(x) = 0 for some sample: no relative perturbation exists (the lemma needs ||phi(x)|| >= r > 0)"
        )
    diff = phi_xi - phi_x
    delta = diff.norm(dim=1) / norm_x
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    target = torch.where((delta > 0).unsqueeze(1), diff / safe.unsqueeze(1), phi_x)
    return delta, householder(phi_x, target)


def weight_diameter(weight: Tensor) -> Tensor:
    """D_W = max_{s,s'} ||w_s - w_s'||, which bounds the range of the logit change W d over classes by
    D_W ||d|| (:prf:ref:`thm-local-bound`'s cubic term).

    Args:
        weight: W, shape (k, m).

    Returns:
        D_W, a scalar tensor.
    """
    return flatness.pairwise_sq_distances(weight).max().sqrt()


@dataclass(frozen=True)
class BoundTerms:
    """Per-sample coefficients of the local bound (:prf:ref:`thm-local-bound`), each (n,).

    bound(eps) = first * eps + second * eps^2 + third * eps^3 for a feature
    change of norm eps; ``second_kappa = kappa_neuron / (2 ||phi||^2)`` is the
    flatness form of the second coefficient (>= ``second``).
    """

    first: Tensor  # ||W^T (p - e_y)|| = ||grad_phi l||
    second: Tensor  # lambda_max(W^T Sigma(p) W) / 2
    second_kappa: Tensor  # kappa_neuron / (2 ||phi||^2)
    third: Tensor  # D_W^3 / 24 (the same for every sample)
    kappa_neuron: Tensor
    kappa_layer: Tensor
    phi_norm: Tensor

    def bound(self, eps: Tensor | float, *, use_kappa: bool = True, first_order: bool = True) -> Tensor:
        """The bound on l(xi) - l(x) for ||phi(xi) - phi(x)|| <= eps (broadcasts over eps)."""
        second = self.second_kappa if use_kappa else self.second
        lin = self.first * eps if first_order else 0.0
        return lin + second * eps**2 + self.third * eps**3


def bound_terms(weight: Tensor, features: Tensor, bias: Tensor | None, labels: Tensor) -> BoundTerms:
    """The coefficients of :prf:ref:`thm-local-bound` at each sample.

    Args:
        weight: W, shape (k, m).
        features: phi, shape (n, m).
        bias: b, shape (k,), or None.
        labels: shape (n,).

    Returns:
        ``BoundTerms``, each coefficient of shape (n,).
    """
    phi_sq = flatness.squared_norms(features)
    stats = flatness.last_layer_statistics(weight, flatness.logits_of(weight, features, bias), phi_sq)
    p = stats["p"]
    e_y = nn.functional.one_hot(labels, weight.shape[0]).to(p)
    sigma = torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)  # Sigma(p), eq-hessian-logits
    second = torch.linalg.eigvalsh(weight.T @ sigma @ weight)[:, -1].clamp_min(0) / 2
    return BoundTerms(
        first=((p - e_y) @ weight).norm(dim=1),
        second=second,
        second_kappa=stats["kappa_neuron"] / (2 * phi_sq),
        third=(weight_diameter(weight) ** 3 / 24).expand(features.shape[0]),
        kappa_neuron=stats["kappa_neuron"],
        kappa_layer=stats["kappa_layer"],
        phi_norm=phi_sq.sqrt(),
    )


def loss_change_along(
    weight: Tensor, features: Tensor, bias: Tensor | None, labels: Tensor, new_features: Tensor
) -> Tensor:
    """l(W phi' + b, y) - l(W phi + b, y) per sample: the exact left-hand side of :prf:ref:`thm-local-bound`.

    Args:
        weight: W, shape (k, m).
        features: phi, shape (n, m).
        bias: b, shape (k,), or None.
        labels: shape (n,).
        new_features: phi', shape (n, m).

    Returns:
        The loss changes, shape (n,).
    """
    ce = nn.functional.cross_entropy
    z0 = flatness.logits_of(weight, features, bias)
    z1 = flatness.logits_of(weight, new_features, bias)
    return ce(z1, labels, reduction="none") - ce(z0, labels, reduction="none")


def certified_radius(
    terms: BoundTerms,
    lipschitz: float,
    budget: float,
    *,
    use_kappa: bool = True,
    first_order: bool = True,
    iters: int = 200,
) -> Tensor:
    """Largest input radius delta with bound(L delta) <= budget, per sample (:eq:`eq-certified-radius`).

    The bound is increasing in delta, so bisection finds the root of bound(L delta) = budget to machine precision.

    Args:
        terms: the bound's coefficients (:func:`bound_terms`).
        lipschitz: L of the feature map.
        budget: the loss change allowed.
        use_kappa: the flatness form of the second coefficient (kappa_neuron / (2 ||phi||^2)).
        first_order: keep the first-order term (it vanishes only at a minimum).
        iters: bisection steps.

    Returns:
        The radii, shape (n,), float64.
    """
    if lipschitz <= 0 or budget <= 0:
        raise ValueError(f"lipschitz and budget must be positive; got {lipschitz}, {budget}")

    def bound_at(delta: Tensor) -> Tensor:
        return terms.bound(lipschitz * delta, use_kappa=use_kappa, first_order=first_order)

    lo = torch.zeros_like(terms.first, dtype=torch.float64)
    hi = torch.ones_like(lo)
    while bool((below := bound_at(hi) < budget).any()):
        if float(hi.max()) > 1e12:
            raise ValueError("the bound stays below the budget for every radius (all coefficients zero?)")
        hi = torch.where(below, hi * 2, hi)
    for _ in range(iters):
        mid = (lo + hi) / 2
        ok = bound_at(mid) <= budget
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    return lo


#: Relative and absolute slack of a float64 comparison "observed <= bound": the two sides are sums of a few terms
#: of order one each rounded at 1.1e-16, so 1e-12 relative (and 1e-12 absolute, for bounds near 0) is far above
#: rounding and far below any real violation.
VIOLATION_RTOL = VIOLATION_ATOL = 1e-12


def violates(observed: Tensor, bound: Tensor) -> Tensor:
    """Where an observed loss change exceeds its bound beyond float64 rounding (the one tolerance the book,
    the checks and the tests use; :prf:ref:`thm-local-bound`).

    Args:
        observed: the loss changes, shape (n,).
        bound: their bounds, shape (n,).

    Returns:
        A boolean mask, shape (n,).
    """
    return observed > bound + VIOLATION_RTOL * bound.abs() + VIOLATION_ATOL


def digest_bound(
    delta: float, lipschitz: float | Tensor, kappa: Tensor, r: Tensor, k: int, m: int, *, cubic: bool = True
) -> Tensor:
    """The local bound as the paper digest states it (second-hand, constants not derived):
    ``delta^2 L^2 kappa / (2 r^2) + delta^3 k m L^6 / (24 r^3)`` (:prf:ref:`thm-local-bound` as reported).

    Args:
        delta: the input radius.
        lipschitz: L, a float or shape (n,).
        kappa: the relative sharpness, shape (n,).
        r: the feature-norm lower bound, shape (n,).
        k: classes.
        m: features.
        cubic: keep the cubic term.

    Returns:
        The bound per sample, shape (n,).
    """
    quadratic = delta**2 * lipschitz**2 * kappa / (2 * r**2)
    return quadratic + (k * m * lipschitz**6 * delta**3 / (24 * r**3) if cubic else 0.0)


def worst_case_directions(
    weight: Tensor, features: Tensor, bias: Tensor | None, labels: Tensor, generator: torch.Generator
) -> dict[str, Tensor]:
    """Unit feature perturbations in three kinds of direction for testing :prf:ref:`thm-local-bound`: random, along the
    feature gradient ``W^T (p - e_y)`` (the worst case of the first-order term) and along the top eigenvector of
    ``W^T Sigma(p) W`` (the worst case of the second).

    Args:
        weight: W, shape (k, m).
        features: phi, shape (n, m).
        bias: b, shape (k,), or None.
        labels: shape (n,).
        generator: for the random directions.

    Returns:
        Unit directions by name (random, gradient, top eigenvector), each of shape (n, m).
    """
    z = flatness.logits_of(weight, features, bias)
    grad = (torch.softmax(z, -1) - nn.functional.one_hot(labels, weight.shape[0]).to(z)) @ weight
    top = torch.linalg.eigh(weight.T @ flatness.softmax_covariance(z) @ weight).eigenvectors[:, :, -1]
    rnd = torch.randn(features.shape, generator=generator, dtype=features.dtype)
    return {
        name: d / d.norm(dim=1, keepdim=True).clamp_min(1e-300)
        for name, d in (("random", rnd), ("gradient", grad), ("top eigenvector", top))
    }


def random_bound_check(instances: int, seed: int = 0, batch: int = 100) -> tuple[int, int, Tensor]:
    """:prf:ref:`thm-local-bound` on random instances in float64: random last layers (k in 2..10, m in 2..32, scales 0.1
    to 10), features, biases and labels, and feature perturbations of random size (1e-2.5 to 1e0.5) in the three
    directions of :func:`worst_case_directions`.

    Args:
        instances: how many points, rounded down to whole batches (three directions each).
        seed: seeds everything.
        batch: points per random last layer.

    Returns:
        (violations, instances checked, observed / bound of every instance, shape (n,)).
    """
    gen = torch.Generator().manual_seed(seed)
    viol, total, tight = 0, 0, []
    for _ in range(max(1, instances // batch)):
        k, m = int(torch.randint(2, 11, (1,), generator=gen)), int(torch.randint(2, 33, (1,), generator=gen))
        w = float(10 ** (2 * torch.rand(1, generator=gen) - 1)) * torch.randn(k, m, generator=gen, dtype=torch.float64)
        b = torch.randn(k, generator=gen, dtype=torch.float64)
        phi = torch.rand(batch, m, generator=gen, dtype=torch.float64) + 0.05
        y = torch.randint(0, k, (batch,), generator=gen)
        terms = bound_terms(w, phi, b, y)
        eps = 10 ** (3 * torch.rand(batch, 1, generator=gen, dtype=torch.float64) - 2.5)
        for d in worst_case_directions(w, phi, b, y, gen).values():
            change = loss_change_along(w, phi, b, y, phi + eps * d)
            bound = terms.bound(eps.squeeze(1))
            viol += int(violates(change, bound).sum())
            total += len(change)
            tight.append(change.clamp_min(0) / bound)
    return viol, total, torch.cat(tight)
