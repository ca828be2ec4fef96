"""The bootstrap of the verdicts, one resample at a time against all resamples at once, measured in the same run.

Every interval in the book is a seeded percentile bootstrap (:func:`flatrob.evidence.estimates.bootstrap`, 2,000
resamples). A statistic registered with :func:`flatrob.evidence.estimates.rowwise` is evaluated on a matrix of
resamples at once; the naive method calls the statistic once per resample. Both run here on the same samples, in
alternating order, for the statistics the checks use, at the sizes of a run (a few hundred inputs) and of the
committed sweeps (1,000 inputs per seed, 3,000 pooled); the script also asserts that both give the same interval, to
the last bit. It reports the median process CPU time of each and their ratio (naive / row-wise).

    python benchmarks/bench_bootstrap.py [--sizes 300,1000,3000 --repeat 5 --out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from flatrob.evidence.checks.rules import mean_difference, mean_ratio, median_ratio
from flatrob.evidence.checks.scale import log10_quantile_change
from flatrob.evidence.estimates import bootstrap, median
from flatrob.util.io import save_results
from flatrob.util.provenance import provenance


def _timed(stat: Callable[..., float], samples: tuple[np.ndarray, ...]) -> tuple[float, Any]:
    start = time.process_time()
    est = bootstrap(stat, *samples)
    return time.process_time() - start, est


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="300,1000,3000", help="numbers of inputs, comma-separated")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--device", default="cpu", help="accepted for symmetry with the other benchmarks (CPU only)")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        ap.error(f"--sizes must be integers separated by commas; got {args.sizes!r}")
    if args.repeat < 1 or min(sizes) < 2:
        ap.error("--repeat must be >= 1 and every size >= 2")

    stats: dict[str, Callable[..., float]] = {
        "median": median,
        "mean difference": mean_difference,
        "mean ratio": mean_ratio,
        "median ratio": median_ratio,
        "log10 change of the 0.9 quantile": log10_quantile_change(0.9),
    }
    rows = []
    for n in sizes:
        rng = np.random.default_rng(n)
        a, b = rng.lognormal(0, 1, n), rng.lognormal(1, 1, n)
        for name, stat in stats.items():
            samples = (a,) if name == "median" else (np.log(a), np.log(b)) if name.startswith("log10") else (a, b)
            naive: Callable[..., float] = lambda *x, s=stat: s(*x)  # noqa: E731 (unregistered: one resample at a time)
            times: dict[str, list[float]] = {"naive": [], "rowwise": []}
            for r in range(args.repeat):
                order = [("naive", naive), ("rowwise", stat)]
                for label, f in order if r % 2 == 0 else order[::-1]:
                    t, est = _timed(f, samples)
                    times[label].append(t)
                    if label == "naive":
                        expected = est
                    else:
                        got = est
                if got != expected:
                    raise SystemExit(f"{name}, n = {n}: row-wise {got} differs from one at a time {expected}")
            med = {k: statistics.median(v) for k, v in times.items()}
            rows.append(
                {
                    "statistic": name,
                    "inputs": n,
                    "naive_s": med["naive"],
                    "rowwise_s": med["rowwise"],
                    "speedup": med["naive"] / med["rowwise"] if med["rowwise"] > 0 else float("inf"),
                }
            )
            print(f"{name:34s} n={n:5d}  one at a time {med['naive']:.3f} s  all at once {med['rowwise']:.3f} s  "
                  f"x{rows[-1]['speedup']:.1f}")  # fmt: skip
    if args.out:
        result = {"rows": rows, "provenance": provenance(vars(args) | {"out": str(args.out)}, "cpu")}
        save_results(args.out.parent, {args.out.name: result})


if __name__ == "__main__":
    main()
