"""Closed-form relative sharpness against the last layer's own forward pass: how much does flatness cost?

The last layer computes ``z = F.linear(phi, W, b)``; every per-sample sharpness needs at
least that (or the logits themselves). For each size, in the same process and on the
same batch, this measures

* ``forward``: ``F.linear(phi, W, b)``, the reference;
* ``layer`` and ``neuron``: ``relative_sharpness(W, phi, b, kind)`` (eq-kappa-layer,
  eq-kappa-neuron), which compute their own logits;
* ``layer from logits`` and ``neuron from logits``: the same with the logits the forward
  already computed (``logits=z``), as the instrumented attack uses them;
* ``neuron from logits and D``: also with the pairwise distances of W's rows computed once
  (``dist_sq=``), as a caller that evaluates many batches with one W does;

and reports each time divided by the forward's. Goals: at most 1.5x on the CPU and 1.3x
on a GPU. Times are medians of interleaved repetitions (CUDA: synchronised wall clock;
CPU: wall clock on the default threads). With ``--out FILE`` the numbers and their
provenance are written as JSON.

    python benchmarks/bench_forward.py [--sizes 256x512x10 50000x512x10 50000x2048x100] [--device cpu] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from flatrob import flatness
from flatrob.util.io import save_results
from flatrob.util.provenance import provenance

DEFAULT_SIZES = ("256x512x10", "50000x512x10", "50000x2048x100")


def parse_size(text: str) -> tuple[int, int, int]:
    try:
        n, m, k = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is NxMxK (samples x features x classes); got {text!r}") from None
    if min(n, m, k) < 1 or k < 2:
        raise argparse.ArgumentTypeError(f"need n, m >= 1 and k >= 2; got {text!r}")
    return n, m, k


def measure(n: int, m: int, k: int, device: torch.device, dtype: torch.dtype, budget_s: float) -> dict:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(0)
    W = (torch.randn(k, m, generator=g) / m**0.5).to(device, dtype)
    b = torch.randn(k, generator=g).to(device, dtype)
    phi = torch.randn(n, m, generator=g).relu().mul(2.0).to(device, dtype)
    z = F.linear(phi, W, b)
    D = flatness.pairwise_sq_distances(W)
    fns = {
        "forward": lambda: F.linear(phi, W, b),
        "layer": lambda: flatness.relative_sharpness(W, phi, b, "layer"),
        "neuron": lambda: flatness.relative_sharpness(W, phi, b, "neuron"),
        "layer from logits": lambda: flatness.relative_sharpness(W, phi, b, "layer", logits=z),
        "neuron from logits": lambda: flatness.relative_sharpness(W, phi, b, "neuron", logits=z),
        "neuron from logits and D": lambda: flatness.relative_sharpness(W, phi, b, "neuron", logits=z, dist_sq=D),
    }
    for fn in fns.values():  # warm-up (and compilation, where a backend compiles)
        for _ in range(3):
            fn()
    sync()
    start = time.perf_counter()
    fns["forward"]()
    sync()
    one = max(time.perf_counter() - start, 1e-6)
    inner = max(1, int(2e-3 / one))  # calls per timed block: at least about 2 ms of work
    rounds = max(5, min(200, int(budget_s / (len(fns) * inner * one * 3))))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        order = list(fns) if r % 2 == 0 else list(reversed(fns))  # interleaved: drift hits all alike
        for name in order:
            sync()
            start = time.perf_counter()
            for _ in range(inner):
                fns[name]()
            sync()
            times[name].append((time.perf_counter() - start) / inner)
    med = {name: statistics.median(v) for name, v in times.items()}
    return {
        "n": n,
        "m": m,
        "k": k,
        "rounds": rounds,
        "calls_per_round": inner,
        "median_s": med,
        "ratio_to_forward": {name: med[name] / med["forward"] for name in fns if name != "forward"},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sizes",
        nargs="+",
        type=parse_size,
        default=[parse_size(s) for s in DEFAULT_SIZES],
        help="sizes NxMxK (samples x features x classes)",
    )
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--budget", type=float, default=10.0, help="seconds of timing per size (about)")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args()
    if args.budget <= 0:
        ap.error("--budget must be > 0")
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    results = [measure(n, m, k, device, dtype, args.budget) for n, m, k in args.sizes]
    prov = provenance(
        {
            "sizes": ["x".join(map(str, s)) for s in args.sizes],
            "dtype": args.dtype,
            "device": args.device,
            "budget": args.budget,
        },
        device,
    )
    print(f"relative sharpness / F.linear(phi, W, b), {args.dtype} on {prov['device']}")
    for r in results:
        ratios = "  ".join(f"{name} {v:.2f}x" for name, v in r["ratio_to_forward"].items())
        print(
            f"  n={r['n']:6d} m={r['m']:5d} k={r['k']:4d}: forward {r['median_s']['forward'] * 1e6:9.1f} us; {ratios}"
        )
    if args.out:
        save_results(args.out.parent, {args.out.name: {"results": results, "provenance": prov}})
        print(f"  written to {args.out}")


if __name__ == "__main__":
    main()
