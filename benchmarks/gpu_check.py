"""The GPU check: everything the book runs, run once on a CUDA device, with one report.

    make gpu-check
    # or, under a GPU machine's own Python and torch (the project's pins not installed):
    PYTHONPATH=src python3 benchmarks/gpu_check.py [--out data/benchmarks/gpu-check.json] [--skip tests,bench]

It runs, in this order, and records for each step whether it passed, its error and its seconds:

1. ``tests``: the test suite (``pytest -q``; with ``-n 8`` when pytest-xdist is installed);
2. ``chapters``: every chapter of the book through ``flatrob run`` with ``device cuda`` (where the chapter
   has that parameter) and its test-size parameters (``tests/helpers.py``);
3. ``paper-scale``: the uncanny-valley chapter down the paper's path, ResNet-18 with ``augment true`` on
   ``-p dataset cifar10``, from small CIFAR-format files the check writes (their checksums are not the
   official ones, so ``FLATROB_CIFAR_CHECKSUM=0``, as in the tests);
4. ``bench``: the GPU benchmarks: closed form against autograd (n = 128 and 1024), against the last
   layer's own forward (``bench_forward.py``), and PGD with and without tracking on ResNet-18.

The report (``--out``) holds the commit, the device name, the torch version and every step; the
benchmarks write their own files beside it (``data/benchmarks/*-cuda*.json``). Exit code 0 when every
step passed, 1 otherwise, 2 without CUDA.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
STEPS = ("tests", "chapters", "paper-scale", "bench")


def timed(fn, *args, **kwargs) -> dict:
    start = time.perf_counter()
    try:
        detail = fn(*args, **kwargs)
        out = {"ok": True}
        if detail:
            out["detail"] = detail
    except Exception as err:  # the report says what failed; the check goes on with the next step
        out = {
            "ok": False,
            "error": f"{type(err).__name__}: {err}"[-2000:],
            "traceback": traceback.format_exc()[-4000:],
        }
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def run_tests() -> str:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests")]
    if importlib.util.find_spec("xdist") is not None:
        cmd += ["-n", "8"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    summary = (proc.stdout.strip().splitlines() or ["no output"])[-1]
    if proc.returncode != 0:
        failed = [line for line in proc.stdout.splitlines() if line.startswith("FAILED")]
        raise RuntimeError(f"{summary}; " + "; ".join(failed)[:1500])
    return summary


def run_chapter(name: str, params: dict, out_root: Path) -> str:
    from flatrob.jobs.run import run_chapter as run

    return str(run(name, params, out_root=out_root, progress=False))


def chapters(out_root: Path, device: str) -> dict:
    from flatrob.jobs.params import chapters as known
    from flatrob.jobs.params import parameter_spec
    from helpers import FAST

    report = {}
    for name in known():
        params = dict(FAST[name])
        if "device" in parameter_spec(name):
            params["device"] = device
        report[name] = timed(run_chapter, name, params, out_root)
        print(
            f"  chapter {name:20s} {'ok' if report[name]['ok'] else 'FAILED'} ({report[name]['seconds']} s)", flush=True
        )
    return report


def paper_scale(out_root: Path, device: str) -> str:
    from helpers import write_cifar

    data = Path(tempfile.mkdtemp(prefix="cifar-"))
    write_cifar(data, "cifar10", n_train=256, n_test=128)
    os.environ["FLATROB_CIFAR_CHECKSUM"] = "0"
    params = {
        "dataset": "cifar10",
        "data_root": str(data),
        "architecture": "resnet18",
        "augment": True,
        "epochs": 1,
        "batch_size": 128,
        "lr": 0.1,
        "adv_eps": 8 / 255,
        "adv_steps": 2,
        "adv_step_size": 2 / 255,
        "attack_eps": 8 / 255,
        "attack_steps": 10,
        "attack_step_size": 2 / 255,
        "n_samples": 64,
        "noise_steps": 4,
        "device": device,
    }
    return run_chapter("uncanny-valley", params, out_root)


def benchmarks(out_dir: Path, device: str) -> dict:
    b = ROOT / "benchmarks"
    jobs = {
        "flatness-n128": [
            b / "bench_flatness.py",
            "--n",
            "128",
            "--device",
            device,
            "--out",
            out_dir / f"flatness-{device}-n128.json",
        ],
        "flatness-n1024": [
            b / "bench_flatness.py",
            "--n",
            "1024",
            "--chunk",
            "8",
            "--repeat",
            "2",
            "--device",
            device,
            "--out",
            out_dir / f"flatness-{device}-n1024.json",
        ],
        "forward": [b / "bench_forward.py", "--device", device, "--out", out_dir / f"forward-{device}.json"],
        "pgd-resnet18": [
            b / "bench_pgd.py",
            "--arch",
            "resnet18",
            "--batch",
            "256",
            "--steps",
            "10",
            "--repeat",
            "15",
            "--device",
            device,
            "--out",
            out_dir / f"pgd-tracking-resnet18-{device}.json",
        ],
    }
    report = {}
    for name, args in jobs.items():

        def one(args=args):
            proc = subprocess.run(
                [sys.executable, *map(str, args)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])),
            )
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-1500:])
            return proc.stdout.strip()

        report[name] = timed(one)
        print(
            f"  bench {name:16s} {'ok' if report[name]['ok'] else 'FAILED'} ({report[name]['seconds']} s)", flush=True
        )
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "benchmarks" / "gpu-check.json")
    ap.add_argument("--skip", default="", help=f"comma-separated steps to skip, of {', '.join(STEPS)}")
    ap.add_argument(
        "--device",
        default="cuda",
        choices=["cuda", "cpu"],
        help="cpu: a dry run of the check itself on a machine without a GPU (slow; the report says cpu)",
    )
    args = ap.parse_args()
    skip = {s for s in args.skip.split(",") if s}
    if skip - set(STEPS):
        ap.error(f"--skip takes steps of {STEPS}; got {sorted(skip - set(STEPS))}")

    os.environ.setdefault("FLATROB_ROOT", str(ROOT))  # chapters, runs and the model cache of this repository
    import torch

    from flatrob.util.io import save_results
    from flatrob.util.provenance import git_commit

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device here; the GPU check needs one (--device cpu for a dry run)", file=sys.stderr)
        return 2
    runs = Path(tempfile.mkdtemp(prefix="gpu-check-runs-"))
    report = {
        "commit": git_commit(ROOT),
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu (dry run)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda if args.device == "cuda" else None,
        "python": platform.python_version(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "steps": {},
    }
    started = time.perf_counter()
    if "tests" not in skip:
        print("tests ...", flush=True)
        report["steps"]["tests"] = timed(run_tests)
    if "chapters" not in skip:
        print("chapters ...", flush=True)
        report["steps"]["chapters"] = chapters(runs, args.device)
    if "paper-scale" not in skip:
        print("paper-scale path ...", flush=True)
        report["steps"]["paper-scale"] = timed(paper_scale, runs, args.device)
    if "bench" not in skip:
        print("benchmarks ...", flush=True)
        report["steps"]["bench"] = benchmarks(args.out.parent, args.device)
    report["seconds"] = round(time.perf_counter() - started, 1)

    def failures(node, path=""):
        if isinstance(node, dict) and "ok" in node:
            return [] if node["ok"] else [path]
        if isinstance(node, dict):
            return [f for k, v in node.items() for f in failures(v, f"{path}/{k}" if path else k)]
        return []

    report["failed"] = failures(report["steps"])
    save_results(args.out.parent, {args.out.name: report})
    print(json.dumps({"failed": report["failed"], "seconds": report["seconds"]}))
    print(f"report written to {args.out}")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
