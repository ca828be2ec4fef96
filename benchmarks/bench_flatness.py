"""Closed-form relative sharpness against the autograd Hessian: time per batch and ratio.

For a last layer of ResNet-18 size (m = 512 features, k = 10 classes) and n = 128
samples, both methods run in the same process on the same inputs:

* closed form: ``flatrob.flatness.relative_sharpness`` (eq-kappa-layer, eq-kappa-neuron),
  which never forms the Hessian;
* naive: the full per-sample Hessian of the cross-entropy in vec(W) by
  ``torch.func.hessian`` (vmapped over chunks of samples), then its trace and
  block traces (``kappa_from_hessian``).

Both results are compared (the benchmark fails if they disagree), and the ratio
of the medians is printed. With ``--out FILE`` the numbers and their provenance
are written as JSON.

    python benchmarks/bench_flatness.py [--m 512 --k 10 --n 128 --device cpu --out data/benchmarks/x.json]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from flatrob import flatness
from flatrob.util.io import save_results
from flatrob.util.provenance import provenance


def timed(fn, repeat: int, sync) -> list[float]:
    times = []
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--m", type=int, default=512, help="feature dimension")
    ap.add_argument("--k", type=int, default=10, help="number of classes")
    ap.add_argument("--n", type=int, default=128, help="samples")
    ap.add_argument(
        "--chunk", type=int, default=4, help="samples per vmapped autograd Hessian (memory: chunk (km)^2 floats)"
    )
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions of the autograd method")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args()
    for name in ("m", "k", "n", "chunk", "repeat"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1")

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(0)
    W = (torch.randn(args.k, args.m, generator=g) / args.m**0.5).to(device, dtype)
    b = torch.randn(args.k, generator=g).to(device, dtype)
    phi = torch.randn(args.n, args.m, generator=g).relu().mul(2.0).to(device, dtype)

    def closed():
        return {kind: flatness.relative_sharpness(W, phi, b, kind) for kind in ("layer", "neuron")}

    def naive():
        out = {"layer": [], "neuron": []}
        for i in range(0, args.n, args.chunk):
            h = flatness.autograd_last_layer_hessian(W, phi[i : i + args.chunk], b)
            for kind in out:
                out[kind].append(flatness.kappa_from_hessian(W, h, kind))
            del h
        return {kind: torch.cat(v) for kind, v in out.items()}

    # warm-up and agreement
    c, a = closed(), naive()
    rel_err = {kind: float(((c[kind] - a[kind]).abs() / a[kind].abs().max()).max()) for kind in c}
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    if max(rel_err.values()) > tol:
        raise SystemExit(f"closed form and autograd disagree: {rel_err}")

    t_naive = timed(naive, args.repeat, sync)
    closed_repeat = max(10, int(min(t_naive) / 1e-4)) if device.type == "cpu" else 200
    t_closed = timed(closed, min(closed_repeat, 2000), sync)
    med_naive, med_closed = statistics.median(t_naive), statistics.median(t_closed)
    result = {
        "setting": {"m": args.m, "k": args.k, "n": args.n, "dtype": args.dtype, "chunk": args.chunk},
        "closed_form_s": {"median": med_closed, "min": min(t_closed), "repeats": len(t_closed)},
        "autograd_hessian_s": {"median": med_naive, "min": min(t_naive), "repeats": len(t_naive)},
        "ratio_median": med_naive / med_closed,
        "max_relative_difference": rel_err,
        "provenance": provenance(vars(args) | {"out": str(args.out) if args.out else None}, device),
    }
    print(
        f"m={args.m} k={args.k} n={args.n} {args.dtype} on {result['provenance']['device']}\n"
        f"  closed form (layer + neuron): {med_closed * 1e3:9.3f} ms  (median of {len(t_closed)})\n"
        f"  autograd Hessian + traces:    {med_naive * 1e3:9.1f} ms  (median of {len(t_naive)})\n"
        f"  ratio: {result['ratio_median']:.0f}x   max relative difference: {max(rel_err.values()):.1e}"
    )
    if args.out:
        save_results(args.out.parent, {args.out.name: result})  # atomic, like the chapters' results
        print(f"  written to {args.out}")


if __name__ == "__main__":
    main()
