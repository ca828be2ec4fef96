"""CPU training speed: the library's loop against a bare PyTorch loop, the cost of the CPU pins and of channels_last,
and the cost of an epoch per architecture, all measured in one run on real Fashion-MNIST batches.

* **library / bare**: :func:`flatrob.training.train` (one epoch over ``--images`` images) against the loop a user
  would write (the same model, initialisation, data order, SGD with momentum, weight decay and cosine schedule),
  interleaved over ``--repeat`` tries, the ratio of their throughputs per try (goal: the library at least 0.95x the
  bare loop, median over tries);
* **pins**: the bare loop in a child process with and without flatrob's CPU pins (:mod:`flatrob._cpu`; they only
  take effect before torch starts), the ratio of their throughputs;
* **channels_last**: the bare loop with the model and the inputs in channels-last memory format, its throughput
  ratio, and whether it gives the same weights as the default format (bit for bit) after the same steps;
* **cost of an epoch** per architecture: the library's loop on ``--images`` images, scaled to all 59,945
  training images (wall-clock seconds, the machine otherwise quiet or not: the file says how many threads).

Writes JSON (``--out``), named by the machine (``make bench``); ``flatrob params`` shows the epoch costs.

    python benchmarks/bench_training.py [--images 2560 --repeat 5 --archs wrn-10-1,small-cnn --out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FULL_EPOCH = 59_945  # Fashion-MNIST training images after removing exact duplicates (flatrob.data)


def _data(n: int) -> tuple[Any, Any]:
    from flatrob.data import load_dataset

    split = load_dataset("fashion-mnist", seed=0)
    return split.x_train[:n].contiguous(), split.y_train[:n].contiguous()


def _bare(model: Any, x: Any, y: Any, batch: int, channels_last: bool = False) -> float:
    """One epoch of the loop a user would write; returns wall-clock seconds."""
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    steps = -(-len(y) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    start = time.perf_counter()
    for i in range(0, len(y), batch):
        idx = order[i : i + batch]
        xb, yb = x[idx], y[idx]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        loss = loss_fn(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return time.perf_counter() - start


def _fresh(arch: str, channels_last: bool = False) -> Any:
    import torch

    from flatrob.zoo import build_model

    torch.manual_seed(0)
    model = build_model(arch, 10, (1, 28, 28))
    return model.to(memory_format=torch.channels_last) if channels_last else model


def child(args: argparse.Namespace) -> None:
    """The bare loop alone, in a process of its own (the pins take effect only before torch starts)."""
    import flatrob

    assert flatrob.__version__  # imported first: the pins take effect only before torch starts
    import torch

    torch.set_num_threads(args.threads)
    x, y = _data(args.images)
    _bare(_fresh(args.archs.split(",")[0]), x[:256], y[:256], args.batch)  # warm-up
    times = [_bare(_fresh(args.archs.split(",")[0]), x, y, args.batch) for _ in range(args.repeat)]
    print(json.dumps({"seconds": times, "capability": torch.backends.cpu.get_cpu_capability()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", default="wrn-10-1,small-cnn,wrn-16-1,wrn-10-2,wrn-10-1-nobn,wrn-10-1-plain")
    ap.add_argument("--images", type=int, default=2560, help="images per timed epoch")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("FLATROB_THREADS", "2")))
    ap.add_argument("--device", default="cpu", choices=["cpu"], help="the CPU only: this measures CPU training")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if min(args.images, args.batch, args.repeat, args.threads) < 1:
        ap.error("--images, --batch, --repeat and --threads must be >= 1")
    if args.child:
        child(args)
        return
    load_start = os.getloadavg()[0]

    import flatrob

    assert flatrob.__version__  # imported first: the pins take effect only before torch starts
    import torch

    from flatrob.training import TrainConfig, train
    from flatrob.util.io import save_results
    from flatrob.util.provenance import provenance

    torch.set_num_threads(args.threads)
    x, y = _data(args.images)
    first = args.archs.split(",")[0]
    config = TrainConfig(epochs=1, lr=0.05, batch_size=args.batch, seed=0)

    def library(arch: str) -> float:
        model = _fresh(arch)
        start = time.perf_counter()
        train(model, x, y, config, device=torch.device("cpu"), progress=False)
        return time.perf_counter() - start

    # library vs bare, interleaved (which goes first alternates)
    library(first), _bare(_fresh(first), x, y, args.batch)  # warm-up
    ratios, lib_s, bare_s = [], [], []
    for r in range(args.repeat):
        if r % 2 == 0:
            t_lib = library(first)
            t_bare = _bare(_fresh(first), x, y, args.batch)
        else:
            t_bare = _bare(_fresh(first), x, y, args.batch)
            t_lib = library(first)
        lib_s.append(t_lib)
        bare_s.append(t_bare)
        ratios.append(t_bare / t_lib)  # throughput of the library over that of the bare loop

    # channels_last: speed, and whether the weights are the same after the same steps
    cl_ratio = []
    for _ in range(args.repeat):
        t_default = _bare(_fresh(first), x, y, args.batch)
        t_cl = _bare(_fresh(first, channels_last=True), x, y, args.batch, channels_last=True)
        cl_ratio.append(t_default / t_cl)
    a, b = _fresh(first), _fresh(first, channels_last=True)
    _bare(a, x[:512], y[:512], args.batch)
    _bare(b, x[:512], y[:512], args.batch, channels_last=True)
    identical = all(torch.equal(p, q.contiguous()) for p, q in zip(a.state_dict().values(), b.state_dict().values()))

    # the pins: the bare loop in child processes with and without them
    def run_child(pins: bool) -> dict[str, Any]:
        env = {
            k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")
        }
        env["FLATROB_CPU_PINS"] = "1" if pins else "0"
        cmd = [sys.executable, __file__, "--child", "--archs", first, "--images", str(args.images)]
        cmd += ["--repeat", str(args.repeat), "--threads", str(args.threads), "--batch", str(args.batch)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result

    pinned, native = run_child(True), run_child(False)

    # the cost of an epoch per architecture (the library's loop)
    costs = {}
    for arch in args.archs.split(","):
        library(arch)  # warm-up (and the allocator)
        t = statistics.median(library(arch) for _ in range(max(1, args.repeat // 2)))
        costs[arch] = {
            "parameters": sum(p.numel() for p in _fresh(arch).parameters()),
            "seconds_per_epoch": round(t * FULL_EPOCH / args.images, 1),
        }

    result = {
        "what": "CPU training: library vs bare loop, pins, channels_last, epoch cost per architecture",
        "images_per_try": args.images,
        "batch": args.batch,
        "threads": args.threads,
        # other work on the machine while this ran (1-minute load average at the start and the end, against the
        # cores): the ratios are measured interleaved in one run, the epoch costs are wall-clock and grow with it
        "load_average": [round(load_start, 2), round(os.getloadavg()[0], 2)],
        "cores": os.cpu_count(),
        "library_vs_bare": {
            "architecture": first,
            "throughput_ratio_median": statistics.median(ratios),
            "ratios": ratios,
            "library_s": lib_s,
            "bare_s": bare_s,
            "goal": "at least 0.95",
        },
        "channels_last": {
            "throughput_ratio_median": statistics.median(cl_ratio),
            "ratios": cl_ratio,
            "same_weights_as_default": identical,
        },
        "pins": {
            "pinned_capability": pinned["capability"],
            "native_capability": native["capability"],
            "throughput_pinned_over_native": statistics.median(native["seconds"])
            / statistics.median(pinned["seconds"]),
            "pinned_s": pinned["seconds"],
            "native_s": native["seconds"],
        },
        "epoch_cost": costs,
        "provenance": provenance({k: v for k, v in vars(args).items() if k != "out"}),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=1))
    if args.out:
        save_results(args.out.parent, {args.out.name: result})


if __name__ == "__main__":
    main()
