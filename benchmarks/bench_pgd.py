"""PGD throughput with and without tracking (images per second), measured in the same run.

Tracking records, at every iterate, loss, probabilities, prediction, feature
norm, Tr H and two relative sharpness forms from the forward pass the attack
makes anyway, plus one forward pass without backward at the final iterate.
Both variants run on the same model and inputs, interleaved, and the medians
are compared. The goal: tracking costs at most 5%.

    python benchmarks/bench_pgd.py [--arch digits-cnn --batch 256 --steps 20 --device cpu --out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from flatrob.attacks import AttackConfig, pgd
from flatrob.models import build_model
from flatrob.runs import provenance

SHAPES = {"digits-cnn": (1, 8, 8), "mnist1d-cnn": (1, 40), "mlp": (1, 40)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="digits-cnn", help="architecture (flatrob.models.ARCHITECTURES)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args()
    if min(args.batch, args.steps, args.repeat) < 1:
        ap.error("--batch, --steps and --repeat must be >= 1")

    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    shape = SHAPES.get(args.arch, (3, 32, 32))
    model = build_model(args.arch, 10, shape).to(device).eval()
    x = torch.rand(args.batch, *shape, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    cfg = AttackConfig("linf", 8 / 255, args.steps, 2 / 255)

    def run(track: bool) -> float:
        sync()
        start = time.perf_counter()
        pgd(model, x, y, cfg, track=track)
        sync()
        return time.perf_counter() - start

    run(False), run(True)  # warm-up
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeat):
        for track in (False, True):
            times[track].append(run(track))
    plain, tracked = statistics.median(times[False]), statistics.median(times[True])
    result = {
        "setting": {"arch": args.arch, "batch": args.batch, "steps": args.steps, "repeat": args.repeat},
        "images_per_s": {"plain": args.batch / plain, "tracked": args.batch / tracked},
        "median_s": {"plain": plain, "tracked": tracked},
        "overhead": tracked / plain - 1,
        "provenance": provenance(vars(args) | {"out": str(args.out) if args.out else None}, device),
    }
    print(
        f"PGD-linf, {args.arch}, batch {args.batch}, {args.steps} steps on {result['provenance']['device']}\n"
        f"  plain:   {result['images_per_s']['plain']:10.1f} images/s\n"
        f"  tracked: {result['images_per_s']['tracked']:10.1f} images/s\n"
        f"  tracking overhead: {100 * result['overhead']:+.1f}% (median of {args.repeat})"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(args.out)
        print(f"  written to {args.out}")


if __name__ == "__main__":
    main()
