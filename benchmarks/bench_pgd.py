"""PGD throughput with and without tracking (images per second), measured in the same run.

Tracking records, at every iterate, loss, probabilities, prediction, feature
norm, Tr H and two relative sharpness forms from the forward pass the attack
makes anyway, plus one forward pass without backward at the final iterate.
Both variants run on the same model and inputs, interleaved (alternating which
goes first). The overhead is the median, over the interleaved pairs, of the
ratio tracked / plain: the two runs of a pair are adjacent in time and share
whatever else the machine is doing, which is what makes this estimate stable on
a shared machine (the ratio of the fastest runs and of the medians are reported
too, with a bootstrap 95% interval of the paired estimate). A third variant,
plain PGD again, interleaved the same way, gives the noise floor of the
machine (an A/A comparison, which would be 0% on a quiet machine). The goal:
tracking costs at most 5% on the CPU and 3% on a GPU.

On the CPU the benchmark runs on one thread (``--threads``) and measures
process CPU time, which other jobs on a shared machine disturb far less than
wall-clock time; on CUDA it measures synchronised wall-clock time.

    python benchmarks/bench_pgd.py [--arch digits-cnn --batch 256 --steps 50 --device cpu --out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from flatrob.attacks import AttackConfig, _Recorder, pgd
from flatrob.util.io import save_results
from flatrob.util.provenance import provenance
from flatrob.zoo import RESIDUAL_FAMILY, build_model

SHAPES = {"digits-cnn": (1, 8, 8), "mnist1d-cnn": (1, 40), "mlp": (1, 40), "small-cnn": (1, 28, 28)}
SHAPES |= {name: (1, 28, 28) for name in RESIDUAL_FAMILY}  # the CPU's residual networks on Fashion-MNIST


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="digits-cnn", help="architecture (flatrob.zoo.ARCHITECTURES)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args()
    if min(args.batch, args.steps, args.repeat, args.threads) < 1:
        ap.error("--batch, --steps, --repeat and --threads must be >= 1")
    torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    torch.manual_seed(0)
    shape = SHAPES.get(args.arch, (3, 32, 32))
    model = build_model(args.arch, 10, shape).to(device).eval()
    x = torch.rand(args.batch, *shape, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    cfg = AttackConfig("linf", 8 / 255, args.steps, 2 / 255)

    def run(track: bool) -> float:
        sync()
        start = clock()
        pgd(model, x, y, cfg, track=track)
        sync()
        return clock() - start

    def tracking_work() -> float:
        """The work tracking adds, timed on its own: T + 1 recorder updates, one forward pass, the statistics."""
        with torch.no_grad():
            logits, phi = model.forward_with_features(x)
        sync()
        start = clock()
        rec = _Recorder(model, y)
        for _ in range(args.steps):
            rec.add(logits, phi)
        with torch.no_grad():
            rec.add(*model.forward_with_features(x))
        rec.trajectory(x)
        sync()
        return clock() - start

    run(False), run(True), tracking_work()  # warm-up
    work = min(tracking_work() for _ in range(args.repeat))
    times: dict[str, list[float]] = {"plain": [], "plain again": [], "tracked": []}
    order = list(times)
    for i in range(args.repeat):
        for name in order[i % 3 :] + order[: i % 3]:  # rotate which goes first
            times[name].append(run(name == "tracked"))
    plain, tracked = min(times["plain"]), min(times["tracked"])
    gen = torch.Generator().manual_seed(0)

    def paired(a: str, b: str) -> tuple[float, list[float]]:
        ratios = torch.tensor(times[b]) / torch.tensor(times[a])
        boot = ratios[torch.randint(len(ratios), (2000, len(ratios)), generator=gen)].median(1).values
        return float(ratios.median()) - 1, [float(boot.quantile(0.025)) - 1, float(boot.quantile(0.975)) - 1]

    overhead, ci = paired("plain", "tracked")
    floor, floor_ci = paired("plain", "plain again")
    result = {
        "setting": {
            "arch": args.arch,
            "batch": args.batch,
            "steps": args.steps,
            "repeat": args.repeat,
            "threads": args.threads,
            "clock": clock.__name__,
        },
        "images_per_s": {"plain": args.batch / plain, "tracked": args.batch / tracked},
        "min_s": {"plain": plain, "tracked": tracked},
        "median_s": {k: statistics.median(v) for k, v in times.items()},
        "overhead": overhead,
        "overhead_ci95": ci,
        "noise_floor": floor,
        "noise_floor_ci95": floor_ci,
        "overhead_of_fastest": tracked / plain - 1,
        "tracking_work_s": work,
        "overhead_of_work": work / plain,
        "overhead_of_medians": statistics.median(times["tracked"]) / statistics.median(times["plain"]) - 1,
        "provenance": provenance(vars(args) | {"out": str(args.out) if args.out else None}, device),
    }
    print(
        f"PGD-linf, {args.arch}, batch {args.batch}, {args.steps} steps on {result['provenance']['device']}\n"
        f"  plain:   {result['images_per_s']['plain']:10.1f} images/s\n"
        f"  tracked: {result['images_per_s']['tracked']:10.1f} images/s\n"
        f"  tracking overhead: {100 * overhead:+.1f}% (median of {args.repeat} interleaved pairs, 95% interval "
        f"{100 * ci[0]:+.1f}% to {100 * ci[1]:+.1f}%; fastest runs {100 * result['overhead_of_fastest']:+.1f}%, "
        f"medians {100 * result['overhead_of_medians']:+.1f}%)\n"
        f"  noise floor, plain against plain: {100 * floor:+.1f}% "
        f"({100 * floor_ci[0]:+.1f}% to {100 * floor_ci[1]:+.1f}%)\n"
        f"  the tracking work timed on its own: {1000 * work:.1f} ms = "
        f"{100 * result['overhead_of_work']:.1f}% of plain PGD"
    )
    if args.out:
        save_results(args.out.parent, {args.out.name: result})  # atomic, like the chapters' results
        print(f"  written to {args.out}")


if __name__ == "__main__":
    main()
